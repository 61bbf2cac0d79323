//! `nlkit nexthop show|get|add|replace|del|flush`, like `ip nexthop`.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Result;
use nlkit_route::fmt::{nexthop_json, nexthop_text, LinkNames};
use nlkit_route::names::parse_protocol;
use nlkit_route::nexthop::{GroupMember, ResilientGroup};
use nlkit_route::request::{self, NexthopFilter};
use nlkit_route::{ops, NexthopObject, NexthopObjectView};
use nlkit_socket::Protocol;
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

use super::{action, ifindex, link_names, stdout, unknown_action, Ctx, Sink, Source};
use crate::args::UsageError;
use crate::cli::ObjectArgs;

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    match action(&a.action) {
        "show" => show(ctx, &a.args),
        "get" => get(ctx, &a.args),
        "add" => change(ctx, &a.args, false),
        "replace" => change(ctx, &a.args, true),
        "del" => del(ctx, &a.args),
        "flush" => flush(ctx, &a.args),
        other => Err(unknown_action(
            "nexthop",
            other,
            "show, get, add, replace, del, flush",
        )),
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn parse_id(v: Option<&String>) -> Result<u32> {
    let v = v.ok_or_else(|| usage("\"id\" needs a value"))?;
    v.parse()
        .map_err(|_| usage(format!("invalid id value \"{v}\"")))
}

/// `ip nexthop show` selectors: the kernel filter, an id (a get instead of a dump), and a
/// protocol (checked here, as iproute2 does).
struct Selection {
    filter: NexthopFilter,
    id: Option<u32>,
    protocol: Option<u8>,
}

fn selection(args: &[String], names: &LinkNames) -> Result<Selection> {
    let mut s = Selection {
        filter: NexthopFilter::default(),
        id: None,
        protocol: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "dev" => s.filter.oif = Some(ifindex(names, value(&mut it, a)?)?),
            "master" | "vrf" => s.filter.master = Some(ifindex(names, value(&mut it, a)?)?),
            "groups" => s.filter.groups = true,
            "fdb" => s.filter.fdb = true,
            "id" => s.id = Some(parse_id(it.next())?),
            "protocol" | "proto" => {
                let p = value(&mut it, a)?;
                s.protocol = Some(
                    parse_protocol(p).ok_or_else(|| usage(format!("invalid protocol \"{p}\"")))?,
                );
            }
            other => return Err(usage(format!("unexpected argument \"{other}\""))),
        }
    }
    Ok(s)
}

fn value<'a>(it: &mut std::slice::Iter<'a, String>, key: &str) -> Result<&'a str> {
    it.next()
        .map(String::as_str)
        .ok_or_else(|| usage(format!("\"{key}\" needs a value")))
}

fn family(ctx: &Ctx) -> u8 {
    ctx.family.unwrap_or(AF_UNSPEC)
}

fn show(ctx: &Ctx, args: &[String]) -> Result<()> {
    let mut src = Source::open(ctx, Protocol::Route)?;
    let names = src.link_names()?;
    let sel = selection(args, &names)?;
    if let Some(id) = sel.id {
        return get_one(ctx, id);
    }
    let mut req = MessageBuilder::new();
    request::dump_nexthops(&mut req, 0, family(ctx), &sel.filter)?;
    let mut sink = Sink::new(ctx.json);
    let res = src.dump(&mut req, |m| {
        let v = NexthopObjectView::parse(m)?;
        if !sel.filter.matches(&v) || sel.protocol.is_some_and(|p| v.protocol() != p) {
            return Ok(());
        }
        sink.item(nexthop_text(&v, &names), nexthop_json(&v, &names))
    });
    sink.finish(res)
}

fn get(ctx: &Ctx, args: &[String]) -> Result<()> {
    match args {
        [k, v] if k == "id" => get_one(ctx, parse_id(Some(v))?),
        _ => Err(usage("usage: nexthop get id ID")),
    }
}

fn get_one(ctx: &Ctx, id: u32) -> Result<()> {
    // Through the mirror's view when it holds the object; else the socket answers (the
    // object, or the error: the same output as ever).
    let mut bytes = Vec::new();
    let mut names = None;
    if let Some(view) = ctx.view()? {
        if id != 0 && view.nexthop(id, &mut bytes).unwrap_or(false) {
            names = Some(Source::from_view(ctx, view).link_names()?);
        } else {
            bytes.clear();
        }
    }
    let names = match names {
        Some(n) => n,
        None => {
            let mut sock = ctx.socket(Protocol::Route)?;
            let names = link_names(&mut sock)?;
            let mut req = MessageBuilder::new();
            request::get_nexthop(&mut req, 0, id)?;
            let reply = sock.transact(&mut req)?;
            for m in reply.messages() {
                bytes.extend_from_slice(m?.bytes());
            }
            names
        }
    };
    let mut out = stdout();
    for m in nlkit_wire::Messages::new(&bytes) {
        let v = NexthopObjectView::parse(&m?)?;
        if ctx.json {
            serde_json::to_writer(&mut out, &[nexthop_json(&v, &names)])?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", nexthop_text(&v, &names))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Parses `id ID { blackhole | [via [inet|inet6] ADDR] [dev DEV] [onlink] | group SPEC
/// [type mpath | type resilient [buckets N] [idle_timer S] [unbalanced_timer S]] } [fdb]
/// [protocol P]` as `ip nexthop add` does.
fn parse_nexthop(ctx: &Ctx, args: &[String], names: &LinkNames) -> Result<NexthopObject> {
    let mut nh = NexthopObject::group(0, &[]);
    nh.family = family(ctx);
    let mut resilient: Option<ResilientGroup> = None;
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "id" => nh.id = parse_id(it.next())?,
            "dev" => {
                let d = it.next().ok_or_else(|| usage("\"dev\" needs a value"))?;
                nh.oif = Some(ifindex(names, d)?);
                if nh.family == AF_UNSPEC {
                    nh.family = AF_INET;
                }
            }
            "via" => {
                let mut v = it.next().ok_or_else(|| usage("\"via\" needs a value"))?;
                if v == "inet" || v == "inet6" {
                    v = it.next().ok_or_else(|| usage("\"via\" needs an address"))?;
                }
                let gw: IpAddr = v
                    .parse()
                    .map_err(|_| usage(format!("invalid address \"{v}\"")))?;
                let f = nlkit_route::family_of(gw);
                if nh.family != AF_UNSPEC && nh.family != f {
                    return Err(usage(format!("address family mismatch: \"{v}\"")));
                }
                nh.family = f;
                nh.gateway = Some(gw);
            }
            "blackhole" => {
                nh.blackhole = true;
                if nh.family == AF_UNSPEC {
                    nh.family = AF_INET;
                }
            }
            "fdb" => nh.fdb = true,
            "onlink" => nh.flags |= RTNH_F_ONLINK as u32,
            "group" => {
                let spec = it.next().ok_or_else(|| usage("\"group\" needs a value"))?;
                nh.group = parse_group(spec)?;
            }
            "type" => match it.next().map(String::as_str) {
                Some("mpath") => resilient = None,
                Some("resilient") => {
                    // Timers not given keep the kernel's defaults (idle 120 s, unbalanced 0).
                    let mut r = ResilientGroup::new(0);
                    while let Some(k) = it.peek().map(|s| s.as_str()) {
                        if !matches!(k, "buckets" | "idle_timer" | "unbalanced_timer") {
                            break;
                        }
                        it.next();
                        let v = it
                            .next()
                            .ok_or_else(|| usage(format!("\"{k}\" needs a value")))?;
                        let bad = || usage(format!("invalid {k} value \"{v}\""));
                        match k {
                            "buckets" => r.buckets = v.parse().map_err(|_| bad())?,
                            "idle_timer" => r.idle_timer = secs_to_ticks(v).ok_or_else(bad)?,
                            _ => r.unbalanced_timer = secs_to_ticks(v).ok_or_else(bad)?,
                        }
                    }
                    resilient = Some(r);
                }
                other => {
                    return Err(usage(format!(
                        "\"type\" value is invalid: \"{}\"",
                        other.unwrap_or("")
                    )))
                }
            },
            "protocol" | "proto" => {
                let p = it
                    .next()
                    .ok_or_else(|| usage("\"protocol\" needs a value"))?;
                nh.protocol =
                    parse_protocol(p).ok_or_else(|| usage(format!("invalid protocol \"{p}\"")))?;
            }
            "encap" => return Err(usage("nexthop encap is not supported yet")),
            other => return Err(usage(format!("unexpected argument \"{other}\""))),
        }
    }
    nh.resilient = resilient;
    Ok(nh)
}

/// Whole seconds to clock ticks (`USER_HZ` = 100), as iproute2 converts them.
fn secs_to_ticks(v: &str) -> Option<u32> {
    v.parse::<u32>().ok()?.checked_mul(100)
}

/// `ID[,WEIGHT][/ID[,WEIGHT]]…`.
fn parse_group(spec: &str) -> Result<Vec<GroupMember>> {
    let bad = || usage(format!("\"group\" value is invalid: \"{spec}\""));
    spec.split('/')
        .map(|m| {
            let (id, w) = match m.split_once(',') {
                Some((id, w)) => (id, Some(w)),
                None => (m, None),
            };
            let mut g = GroupMember::new(id.parse().map_err(|_| bad())?);
            if let Some(w) = w {
                let w: u16 = w.parse().map_err(|_| bad())?;
                if !(1..=256).contains(&w) {
                    return Err(usage(format!("\"weight\" is invalid: \"{w}\"")));
                }
                g = g.weight(w);
            }
            Ok(g)
        })
        .collect()
}

fn change(ctx: &Ctx, args: &[String], replace: bool) -> Result<()> {
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let nh = parse_nexthop(ctx, args, &names)?;
    ops::add_nexthop(&mut sock, &nh, replace)?;
    Ok(())
}

fn del(ctx: &Ctx, args: &[String]) -> Result<()> {
    let id = match args {
        [k, v] if k == "id" => parse_id(Some(v))?,
        _ => return Err(usage("usage: nexthop del id ID")),
    };
    let mut sock = ctx.socket(Protocol::Route)?;
    ops::del_nexthop(&mut sock, id)?;
    Ok(())
}

fn flush(ctx: &Ctx, args: &[String]) -> Result<()> {
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let sel = selection(args, &names)?;
    if let Some(id) = sel.id {
        ops::del_nexthop(&mut sock, id)?;
        return Ok(());
    }
    if sel.protocol.is_some() {
        return Err(usage("nexthop flush protocol is not supported yet"));
    }
    let n = ops::flush_nexthops(&mut sock, family(ctx), &sel.filter)?;
    let mut out = stdout();
    if n == 0 {
        writeln!(out, "Nothing to flush")?;
    } else {
        writeln!(out, "Flushed {n} nexthops")?;
    }
    out.flush()?;
    Ok(())
}
