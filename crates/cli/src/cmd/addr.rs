//! `nlkit addr show|add|del`: links with their addresses, as `ip addr` prints them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::Result;
use nlkit_route::fmt::{addr_text, link_json, link_text, LinkNames};
use nlkit_route::request::{self, AddrFilter, LinkFilter};
use nlkit_route::{ops, AddrView, Address, LinkView};
use nlkit_socket::Protocol;
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages};

use super::{action, ifindex, link_names, unknown_action, Ctx, Sink, Source};
use crate::args::{Keywords, Prefix, UsageError};
use crate::cli::ObjectArgs;

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    match action(&a.action) {
        "show" => show(ctx, &a.args),
        "add" => change(ctx, &a.args, Some(false)),
        "replace" => change(ctx, &a.args, Some(true)),
        "del" => change(ctx, &a.args, None),
        other => Err(unknown_action("address", other, "show, add, replace, del")),
    }
}

fn show(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["dev"], &["up"])?;
    let dev = k.get("dev").or(k.positional.first().map(String::as_str));
    let mut src = Source::open(ctx, Protocol::Route)?;
    let names = src.link_names()?;
    let only = dev.map(|d| ifindex(&names, d)).transpose()?;
    // Addresses first (usually few), kept as message bytes per interface, so that each link
    // can be printed with its addresses below it.
    let mut by_link: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for fam in ctx.families() {
        let mut req = MessageBuilder::new();
        request::dump_addrs(&mut req, 0, fam, &AddrFilter { ifindex: only })?;
        src.dump(&mut req, |m| {
            let a = AddrView::parse(m)?;
            if only.is_none_or(|i| a.index() == i) {
                by_link
                    .entry(a.index())
                    .or_default()
                    .push(m.bytes().to_vec());
            }
            Ok(())
        })?;
    }
    let mut req = MessageBuilder::new();
    request::dump_links(&mut req, 0, &LinkFilter::default())?;
    let mut sink = Sink::new(ctx.json);
    let res = src.dump(&mut req, |m| {
        let l = LinkView::parse(m)?;
        if only.is_some_and(|i| i != l.index()) || (k.flag("up") && !l.is_up()) {
            return Ok(());
        }
        let raw = by_link.get(&l.index()).map(Vec::as_slice).unwrap_or(&[]);
        let views: Vec<AddrView<'_>> = raw
            .iter()
            .filter_map(|b| Messages::new(b).next()?.ok())
            .filter_map(|m| AddrView::parse(&m).ok())
            .collect();
        // With -4/-6, ip(8) lists only links that have such an address, without link/ lines.
        if ctx.family.is_some() && views.is_empty() {
            return Ok(());
        }
        let text = LinkWithAddrs {
            link: &l,
            addrs: &views,
            names: &names,
            link_line_only: ctx.family.is_some(),
        };
        sink.item(text, link_json(&l, &names, Some(&views)))
    });
    sink.finish(res)
}

/// A link's `ip link` lines followed by its address lines, as `ip addr` prints them.
struct LinkWithAddrs<'v, 'a, 'n> {
    link: &'v LinkView<'a>,
    addrs: &'v [AddrView<'a>],
    names: &'n LinkNames,
    /// Only the first line of the link (no `link/ether …`), as with `ip -4 addr`.
    link_line_only: bool,
}

impl std::fmt::Display for LinkWithAddrs<'_, '_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let link = link_text(self.link, self.names, false).to_string();
        if self.link_line_only {
            f.write_str(link.lines().next().unwrap_or_default())?;
        } else {
            f.write_str(&link)?;
        }
        for a in self.addrs {
            write!(f, "\n{}", addr_text(a, self.names))?;
        }
        Ok(())
    }
}

fn change(ctx: &Ctx, args: &[String], add: Option<bool>) -> Result<()> {
    let k = Keywords::parse(
        args,
        &[
            "dev",
            "label",
            "broadcast",
            "brd",
            "scope",
            "peer",
            "metric",
            "valid_lft",
            "preferred_lft",
            "local",
        ],
        &["nodad", "noprefixroute"],
    )?;
    let p: Prefix = k
        .get("local")
        .or(k.positional.first().map(String::as_str))
        .ok_or_else(|| UsageError("addr needs ADDRESS/PREFIX".into()))?
        .parse()?;
    k.at_most(1)?;
    let addr = p
        .addr
        .ok_or_else(|| UsageError("addr needs an address, not \"default\"".into()))?;
    let dev = k
        .get("dev")
        .ok_or_else(|| UsageError("addr needs \"dev DEVICE\"".into()))?;
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let mut a = Address::new(ifindex(&names, dev)?, addr, p.len);
    a.label = k.get("label").map(str::to_owned);
    a.broadcast = k
        .parsed::<IpAddr>("broadcast")?
        .or(k.parsed::<IpAddr>("brd")?);
    a.peer = k.parsed("peer")?;
    a.metric = k.parsed("metric")?;
    a.valid_lft = k.parsed("valid_lft")?;
    a.preferred_lft = k.parsed("preferred_lft")?;
    if let Some(s) = k.get("scope") {
        a.scope = nlkit_route::names::parse_scope(s)
            .ok_or_else(|| UsageError(format!("invalid scope \"{s}\"")))?;
    }
    if k.flag("nodad") {
        a.flags |= IFA_F_NODAD;
    }
    if k.flag("noprefixroute") {
        a.flags |= IFA_F_NOPREFIXROUTE;
    }
    match add {
        Some(replace) => ops::add_addr(&mut sock, &a, replace)?,
        None => ops::del_addr(&mut sock, &a)?,
    }
    Ok(())
}
