//! `nlkit monitor [link|addr|route|neigh|ct …]`: kernel events as they happen, printed as
//! `ip monitor` and `conntrack -E` print them. rtnetlink and conntrack events arrive on their
//! own sockets (never the request socket) and are multiplexed with `poll`. With `--mirror`
//! the events come from the mirror's change feed (`join_group` on mirror sockets): the same
//! messages, after the mirror applied them, printed the same way.

use anyhow::Result;
use nlkit_conntrack::fmt::{entry_json, event_text};
use nlkit_conntrack::ops::Received;
use nlkit_route::fmt::{
    addr_json, addr_text, link_json, link_text, neigh_json, neigh_text, route_json, route_text,
    LinkNames, RouteFmt,
};
use nlkit_route::{AddrView, LinkView, NeighView, RouteView};
use nlkit_socket::{Event, EventSocket, Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::Message;
use rustix::event::{poll, PollFd, PollFlags};
use std::io::Write;

use super::{link_names, stdout, Ctx};
use crate::args::UsageError;

fn groups(objects: &[String], ctx: &Ctx) -> Result<(Vec<u32>, bool)> {
    let all = ["link", "addr", "route", "neigh"];
    let list: Vec<&str> = if objects.is_empty() || objects.iter().any(|o| o == "all") {
        all.to_vec()
    } else {
        objects.iter().map(String::as_str).collect()
    };
    let v4 = ctx.family != Some(AF_INET6);
    let v6 = ctx.family != Some(AF_INET);
    let mut g = Vec::new();
    let mut ct = false;
    for o in list {
        match o {
            "link" => g.push(RTNLGRP_LINK),
            "addr" | "address" => {
                v4.then(|| g.push(RTNLGRP_IPV4_IFADDR));
                v6.then(|| g.push(RTNLGRP_IPV6_IFADDR));
            }
            "route" => {
                v4.then(|| g.push(RTNLGRP_IPV4_ROUTE));
                v6.then(|| g.push(RTNLGRP_IPV6_ROUTE));
            }
            "neigh" => g.push(RTNLGRP_NEIGH),
            "ct" | "conntrack" => ct = true,
            other => {
                return Err(UsageError(format!("unknown object \"{other}\" to monitor")).into())
            }
        }
    }
    Ok((g, ct))
}

/// Prints one rtnetlink event; keeps the name map current for later lines.
fn print_rtnl(
    ctx: &Ctx,
    m: &Message<'_>,
    names: &mut LinkNames,
    out: &mut impl Write,
) -> Result<()> {
    match m.ty() {
        RTM_NEWLINK | RTM_DELLINK => {
            let l = LinkView::parse(m)?;
            if m.ty() == RTM_NEWLINK {
                names.insert_link(&l);
            }
            if ctx.json {
                serde_json::to_writer(&mut *out, &link_json(&l, names, None))?;
                writeln!(out)?;
            } else {
                let prefix = if m.ty() == RTM_DELLINK {
                    "Deleted "
                } else {
                    ""
                };
                writeln!(out, "{prefix}{}", link_text(&l, names, false))?;
            }
            if m.ty() == RTM_DELLINK {
                names.remove(l.index());
            }
        }
        RTM_NEWADDR | RTM_DELADDR => {
            let a = AddrView::parse(m)?;
            if ctx.json {
                serde_json::to_writer(&mut *out, &addr_json(&a, names))?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}: {}{}",
                    a.index(),
                    names.name(a.index()),
                    addr_text(&a, names)
                )?;
            }
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            let r = RouteView::parse(m)?;
            if ctx.json {
                serde_json::to_writer(&mut *out, &route_json(&r, names, RouteFmt::default()))?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", route_text(&r, names, RouteFmt::default()))?;
            }
        }
        RTM_NEWNEIGH | RTM_DELNEIGH => {
            let n = NeighView::parse(m)?;
            if ctx.json {
                serde_json::to_writer(&mut *out, &neigh_json(&n, names))?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", neigh_text(&n, names))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Prints one conntrack event (`conntrack -E` format).
fn print_ct(ctx: &Ctx, v: &nlkit_conntrack::CtEntryView<'_>, out: &mut impl Write) -> Result<()> {
    if ctx.json {
        serde_json::to_writer(&mut *out, &entry_json(v))?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", event_text(v))?;
    }
    Ok(())
}

/// `monitor --mirror`: the mirror's change feed, one mirror socket per protocol.
fn run_feed(ctx: &Ctx, rt_groups: &[u32], want_ct: bool, max: u64) -> Result<()> {
    let mut socks: Vec<(Socket, bool)> = Vec::new();
    if !rt_groups.is_empty() {
        let mut s = ctx.socket(Protocol::Route)?;
        for g in rt_groups {
            s.join_group(*g)?;
        }
        socks.push((s, false));
    }
    if want_ct {
        let mut s = ctx.socket(Protocol::Netfilter)?;
        for g in [
            NFNLGRP_CONNTRACK_NEW,
            NFNLGRP_CONNTRACK_UPDATE,
            NFNLGRP_CONNTRACK_DESTROY,
        ] {
            s.join_group(g)?;
        }
        socks.push((s, true));
    }
    let mut names = link_names(&mut ctx.socket(Protocol::Route)?)?;
    let mut buf = RecvBuffer::new();
    let mut out = stdout();
    let mut seen = 0u64;
    while seen < max {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = socks
                .iter()
                .map(|(s, _)| PollFd::new(s, PollFlags::IN))
                .collect();
            poll(&mut fds, None)?;
            fds.iter().map(|f| !f.revents().is_empty()).collect()
        };
        for (i, (s, is_ct)) in socks.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            s.recv(&mut buf)?;
            for m in buf.messages() {
                let m = m?;
                if m.ty() == NLMSG_ERROR {
                    let e = nlkit_wire::ErrorMsg::parse(&m)?;
                    if e.errno == libc::ENOBUFS {
                        anyhow::bail!("the mirror's feed overran: events were lost");
                    }
                    continue;
                }
                if *is_ct {
                    if nlkit_conntrack::EventKind::of(&m).is_some() {
                        print_ct(ctx, &nlkit_conntrack::CtEntryView::parse(&m)?, &mut out)?;
                        seen += 1;
                    }
                } else {
                    print_rtnl(ctx, &m, &mut names, &mut out)?;
                    seen += 1;
                }
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// Prints events until interrupted (or `NLKIT_EVENTS_MAX` events, for scripts and tests).
pub fn run(ctx: &Ctx, objects: &[String]) -> Result<()> {
    let (rt_groups, want_ct) = groups(objects, ctx)?;
    let max: u64 = std::env::var("NLKIT_EVENTS_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    if !ctx.is_kernel() {
        return run_feed(ctx, &rt_groups, want_ct, max);
    }
    let mut rt = if rt_groups.is_empty() {
        None
    } else {
        Some(ctx.rtnl_events("monitor", &rt_groups)?)
    };
    let mut ct = if want_ct {
        Some(ctx.ct_events("monitor")?)
    } else {
        None
    };
    let mut names = link_names(&mut ctx.socket(Protocol::Route)?)?;
    let mut buf = RecvBuffer::new();
    let mut out = stdout();
    let mut seen = 0u64;
    while seen < max {
        let (rt_ready, ct_ready) = {
            let mut fds = Vec::with_capacity(2);
            if let Some(s) = rt.as_ref() {
                fds.push(PollFd::new(s, PollFlags::IN));
            }
            if let Some(e) = ct.as_mut() {
                let sock: &EventSocket = e.socket();
                fds.push(PollFd::new(sock, PollFlags::IN));
            }
            poll(&mut fds, None)?;
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            let rt_r = rt.is_some() && ready[0];
            let ct_r = ct.is_some() && *ready.last().unwrap_or(&false);
            (rt_r, ct_r)
        };
        if rt_ready {
            if let Some(s) = rt.as_mut() {
                match s.recv_event(&mut buf)? {
                    Event::Overrun => eprintln!("nlkit: WARNING: events were lost (overrun)"),
                    Event::Messages { messages, .. } => {
                        for m in messages {
                            print_rtnl(ctx, &m?, &mut names, &mut out)?;
                            seen += 1;
                        }
                    }
                }
            }
        }
        if ct_ready {
            if let Some(e) = ct.as_mut() {
                let mut err = None;
                let r = e.recv(true, |v| {
                    seen += 1;
                    let w = if ctx.json {
                        serde_json::to_writer(&mut out, &entry_json(&v))
                            .map_err(std::io::Error::from)
                            .and_then(|_| writeln!(out))
                    } else {
                        writeln!(out, "{}", event_text(&v))
                    };
                    if let Err(x) = w {
                        err.get_or_insert(x);
                    }
                })?;
                if let Some(x) = err {
                    return Err(x.into());
                }
                if r == Received::Overrun {
                    eprintln!("nlkit: WARNING: conntrack events were lost (overrun)");
                }
            }
        }
        out.flush()?;
    }
    Ok(())
}
