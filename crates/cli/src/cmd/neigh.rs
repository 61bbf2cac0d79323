//! `nlkit neigh show|add|replace|del`.

use std::net::IpAddr;

use anyhow::Result;
use nlkit_route::fmt::{neigh_json, neigh_text};
use nlkit_route::names::parse_nud;
use nlkit_route::request::{self, NeighFilter};
use nlkit_route::{ops, NeighView, Neighbour};
use nlkit_socket::Protocol;
use nlkit_wire::consts::{NUD_NOARP, NUD_PERMANENT};
use nlkit_wire::MessageBuilder;

use super::{action, ifindex, link_names, unknown_action, Ctx, Sink, Source};
use crate::args::{parse_mac, Keywords, UsageError};
use crate::cli::ObjectArgs;

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    match action(&a.action) {
        "show" => show(ctx, &a.args),
        "add" => change(ctx, &a.args, Some(false)),
        "replace" => change(ctx, &a.args, Some(true)),
        "del" => change(ctx, &a.args, None),
        other => Err(unknown_action(
            "neighbour",
            other,
            "show, add, replace, del",
        )),
    }
}

fn show(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["dev", "nud"], &[])?;
    k.at_most(0)?;
    let mut src = Source::open(ctx, Protocol::Route)?;
    let names = src.link_names()?;
    let filter = NeighFilter {
        ifindex: k.get("dev").map(|d| ifindex(&names, d)).transpose()?,
        master: None,
    };
    let nud = k
        .get("nud")
        .map(|s| {
            match s {
                "all" => Some(0xff),
                _ => parse_nud(s),
            }
            .ok_or_else(|| UsageError(format!("invalid nud state \"{s}\"")))
        })
        .transpose()?;
    let mut sink = Sink::new(ctx.json);
    let mut res = Ok(());
    for fam in ctx.families() {
        let mut req = MessageBuilder::new();
        request::dump_neighs(&mut req, 0, fam, &filter)?;
        res = src.dump(&mut req, |m| {
            let n = NeighView::parse(m)?;
            // Like ip(8): NOARP entries only when asked for with `nud`.
            let hide = match nud {
                Some(s) => n.state() & s == 0 && !(s == 0xff && n.state() == 0),
                None => n.state() == NUD_NOARP,
            };
            if hide || !filter.matches(&n) {
                return Ok(());
            }
            let text = neigh_text(&n, &names);
            let text = if filter.ifindex.is_some() {
                text.without_dev()
            } else {
                text
            };
            sink.item(text, neigh_json(&n, &names))
        });
        if res.is_err() {
            break;
        }
    }
    sink.finish(res)
}

fn change(ctx: &Ctx, args: &[String], add: Option<bool>) -> Result<()> {
    let k = Keywords::parse(args, &["dev", "lladdr", "nud", "to"], &[])?;
    let dst: IpAddr = k
        .get("to")
        .or(k.positional.first().map(String::as_str))
        .ok_or_else(|| UsageError("neigh needs an address".into()))?
        .parse()
        .map_err(|_| UsageError("neigh: invalid address".into()))?;
    k.at_most(1)?;
    let dev = k
        .get("dev")
        .ok_or_else(|| UsageError("neigh needs \"dev DEVICE\"".into()))?;
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let mut n = Neighbour::new(ifindex(&names, dev)?, dst);
    if let Some(l) = k.get("lladdr") {
        n = n.lladdr(&parse_mac(l)?);
    }
    let state = match k.get("nud") {
        Some(s) => parse_nud(s).ok_or_else(|| UsageError(format!("invalid nud state \"{s}\"")))?,
        None => NUD_PERMANENT,
    };
    n = n.state(state);
    match add {
        Some(replace) => ops::add_neigh(&mut sock, &n, replace)?,
        None => ops::del_neigh(&mut sock, &n)?,
    }
    Ok(())
}
