//! `nlkit route show|get|add|replace|append|del`.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Result;
use nlkit_route::fmt::{route_json, route_text, LinkNames, RouteFmt};
use nlkit_route::names::{parse_protocol, parse_route_type, parse_scope, parse_table};
use nlkit_route::request::{self, RouteFilter, RouteLookup, RouteOp};
use nlkit_route::{ops, NextHop, Route, RouteView};
use nlkit_socket::Protocol;
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

use super::shared::SharedListing;
use super::{action, ifindex, link_names, ordered, stdout, unknown_action, Ctx, Sink, Source};
use crate::args::{Keywords, Prefix, UsageError};
use crate::cli::ObjectArgs;

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    match action(&a.action) {
        "show" => show(ctx, &a.args),
        "get" => get(ctx, &a.args),
        "add" => change(ctx, &a.args, Some(RouteOp::Add)),
        "replace" | "change" => change(ctx, &a.args, Some(RouteOp::Replace)),
        "append" => change(ctx, &a.args, Some(RouteOp::Append)),
        "del" => change(ctx, &a.args, None),
        other => Err(unknown_action(
            "route",
            other,
            "show, get, add, replace, append, del",
        )),
    }
}

/// What `route show` selects, parsed once.
struct Selection {
    /// Families to dump: IPv4 by default, as iproute2 does when a table is selected; both
    /// for `table all`.
    families: Vec<u8>,
    filter: RouteFilter,
    exact: Option<Prefix>,
    fmt: RouteFmt,
}

impl Selection {
    fn keep(&self, r: &RouteView<'_>) -> bool {
        // Like ip(8): `dev D` selects routes whose RTA_OIF is D (multipath routes have none).
        self.filter.oif.is_none_or(|o| r.oif() == Some(o))
            && self.filter.matches(r)
            && self
                .exact
                .is_none_or(|p| r.dst() == p.addr && r.dst_len() == p.len)
    }
}

fn selection(ctx: &Ctx, args: &[String], names: &LinkNames) -> Result<Selection> {
    let k = Keywords::parse(
        args,
        &["table", "dev", "oif", "proto", "type", "exact"],
        &[],
    )?;
    let table = match k.get("table") {
        None => Some(RT_TABLE_MAIN as u32),
        Some("all") => None,
        Some(t) => {
            Some(parse_table(t).ok_or_else(|| UsageError(format!("invalid table \"{t}\"")))?)
        }
    };
    let dev = k.get("dev").or(k.get("oif"));
    let filter = RouteFilter {
        table,
        oif: dev.map(|d| ifindex(names, d)).transpose()?,
        protocol: k
            .get("proto")
            .map(|p| {
                parse_protocol(p).ok_or_else(|| UsageError(format!("invalid protocol \"{p}\"")))
            })
            .transpose()?,
        route_type: k
            .get("type")
            .map(|t| parse_route_type(t).ok_or_else(|| UsageError(format!("invalid type \"{t}\""))))
            .transpose()?,
    };
    let exact = match (k.get("exact"), k.positional.first().map(String::as_str)) {
        (Some(p), _) | (None, Some(p)) => Some(p.parse::<Prefix>()?),
        _ => None,
    };
    k.at_most(1)?;
    let families = match (ctx.family, exact.and_then(|p| p.addr)) {
        (Some(f), _) => vec![f],
        (None, Some(IpAddr::V6(_))) => vec![AF_INET6],
        (None, Some(IpAddr::V4(_))) => vec![AF_INET],
        (None, None) if table.is_none() => vec![AF_INET, AF_INET6],
        (None, None) => vec![AF_INET],
    };
    Ok(Selection {
        families,
        filter,
        exact,
        fmt: RouteFmt {
            show_table: k.get("table").is_none_or(|t| t == "all"),
            show_dev: dev.is_none(),
            show_proto: k.get("proto").is_none(),
        },
    })
}

fn show(ctx: &Ctx, args: &[String]) -> Result<()> {
    let mut src = Source::open(ctx, Protocol::Route)?;
    let names = src.link_names()?;
    let sel = selection(ctx, args, &names)?;
    if ctx.threads > 1 {
        return show_shared(ctx, &sel, &names);
    }
    if src.has_view() {
        // Through the view: walked in one thread, formatted on the others, in order.
        let mut reqs = Vec::new();
        for &fam in &sel.families {
            let mut req = MessageBuilder::new();
            request::dump_routes(&mut req, 0, fam, &sel.filter)?;
            reqs.push(req);
        }
        let walk = ordered::dumps(&mut src, &mut reqs);
        ordered::listing(walk, ctx.json, |m, chunk| {
            let parsed = RouteView::parse(m);
            let r = parsed_route(&parsed)?;
            if !sel.keep(r) {
                return Ok(false);
            }
            render(r, &names, sel.fmt, ctx.json, chunk)?;
            Ok(true)
        })?;
        return Ok(());
    }
    let mut sink = Sink::new(ctx.json);
    let mut res = Ok(());
    for &fam in &sel.families {
        let mut req = MessageBuilder::new();
        request::dump_routes(&mut req, 0, fam, &sel.filter)?;
        res = src.dump(&mut req, |m| {
            let parsed = RouteView::parse(m);
            let r = parsed_route(&parsed)?;
            if !sel.keep(r) {
                return Ok(());
            }
            sink.item_with(
                |line| route_text(r, &names, sel.fmt).write_to(line),
                route_json(r, &names, sel.fmt),
            )
        });
        if res.is_err() {
            break;
        }
    }
    sink.finish(res)
}

/// `--threads N`: see [`SharedListing`].
fn show_shared(ctx: &Ctx, sel: &Selection, names: &LinkNames) -> Result<()> {
    let listing = SharedListing::new(ctx.json)?;
    let pool = ctx.pool(Protocol::Route);
    for &fam in &sel.families {
        let mut req = MessageBuilder::new();
        request::dump_routes(&mut req, 0, fam, &sel.filter)?;
        listing.dump(&pool, &mut req, ctx.threads, |m, chunk| {
            let parsed = RouteView::parse(m);
            let r = parsed_route(&parsed)?;
            if !sel.keep(r) {
                return Ok(false);
            }
            render(r, names, sel.fmt, ctx.json, chunk)?;
            Ok(true)
        })?;
    }
    listing.finish()
}

/// The route of a parse, borrowed where the parse left it: moving the (large) view out of
/// the `Result` with `?` cost a store-forwarding stall per route (perf annotate).
fn parsed_route<'p, 'a>(
    parsed: &'p Result<RouteView<'a>, nlkit_wire::WireError>,
) -> Result<&'p RouteView<'a>, nlkit_wire::WireError> {
    parsed.as_ref().map_err(Clone::clone)
}

/// Appends one route's item to `chunk`: its text line, or its JSON value.
fn render(
    r: &RouteView<'_>,
    names: &LinkNames,
    fmt: RouteFmt,
    json: bool,
    chunk: &mut Vec<u8>,
) -> Result<()> {
    if json {
        serde_json::to_writer(&mut *chunk, &route_json(r, names, fmt))?;
    } else {
        route_text(r, names, fmt).write_to(chunk);
        chunk.push(b'\n');
    }
    Ok(())
}

fn get(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["from", "oif", "dev", "mark", "to"], &["fibmatch"])?;
    let dst: IpAddr = k
        .get("to")
        .or(k.positional.first().map(String::as_str))
        .ok_or_else(|| UsageError("route get needs an address".into()))?
        .parse()
        .map_err(|_| UsageError("route get: invalid address".into()))?;
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let q = RouteLookup {
        dst,
        src: k.parsed("from")?,
        oif: k
            .get("oif")
            .or(k.get("dev"))
            .map(|d| ifindex(&names, d))
            .transpose()?,
        mark: k.parsed("mark")?,
        fib_match: k.flag("fibmatch"),
    };
    let mut req = MessageBuilder::new();
    request::get_route(&mut req, 0, &q)?;
    let reply = sock.transact(&mut req)?;
    let mut out = stdout();
    for m in reply.messages() {
        let r = RouteView::parse(&m?)?;
        if ctx.json {
            serde_json::to_writer(&mut out, &[route_json(&r, &names, RouteFmt::default())])?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", route_text(&r, &names, RouteFmt::default()))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Parses `PREFIX [via GW] [dev D] [table T] [metric N] [proto P] [scope S] [src A] [mtu N]
/// [nhid ID] [nexthop via GW dev D weight W]…`, optionally led by a type (`blackhole`, `unreachable`…).
fn parse_route(ctx: &Ctx, args: &[String], names: &LinkNames) -> Result<Route> {
    let split = args
        .iter()
        .position(|a| a == "nexthop")
        .unwrap_or(args.len());
    let (main, hops) = args.split_at(split);
    let mut main: Vec<String> = main.to_vec();
    let mut kind = None;
    if let Some(t) = main.first().and_then(|t| parse_route_type(t)) {
        if main.len() > 1 {
            kind = Some(t);
            main.remove(0);
        }
    }
    let k = Keywords::parse(
        &main,
        &[
            "via",
            "dev",
            "oif",
            "table",
            "metric",
            "priority",
            "preference",
            "proto",
            "scope",
            "src",
            "mtu",
            "to",
            "nhid",
        ],
        &["onlink"],
    )?;
    let dst: Prefix = k
        .get("to")
        .or(k.positional.first().map(String::as_str))
        .ok_or_else(|| UsageError("route needs a destination prefix".into()))?
        .parse()?;
    k.at_most(1)?;
    let via: Option<IpAddr> = k.parsed("via")?;
    let family = match (dst.addr, via, ctx.family) {
        (Some(a), _, _) => nlkit_route::family_of(a),
        (None, Some(g), _) => nlkit_route::family_of(g),
        (None, None, Some(f)) => f,
        (None, None, None) => AF_INET,
    };
    let mut r = match dst.addr {
        Some(a) => Route::new(a, dst.len),
        None => Route::default_route(family),
    };
    if let Some(t) = kind {
        r = r.kind(t);
    }
    if let Some(g) = via {
        r = r.via(g);
    }
    if let Some(d) = k.get("dev").or(k.get("oif")) {
        r = r.dev(ifindex(names, d)?);
    }
    if let Some(t) = k.get("table") {
        r = r.table(parse_table(t).ok_or_else(|| UsageError(format!("invalid table \"{t}\"")))?);
    }
    let metric = k
        .get("metric")
        .or(k.get("priority"))
        .or(k.get("preference"));
    if let Some(m) = metric {
        r = r.metric(
            m.parse()
                .map_err(|_| UsageError(format!("invalid metric \"{m}\"")))?,
        );
    }
    if let Some(p) = k.get("proto") {
        r = r.proto(
            parse_protocol(p).ok_or_else(|| UsageError(format!("invalid protocol \"{p}\"")))?,
        );
    }
    if let Some(s) = k.get("scope") {
        r = r.scope(parse_scope(s).ok_or_else(|| UsageError(format!("invalid scope \"{s}\"")))?);
    }
    if let Some(s) = k.parsed::<IpAddr>("src")? {
        r = r.src(s);
    }
    if let Some(m) = k.parsed::<u32>("mtu")? {
        r = r.mtu(m);
    }
    if let Some(id) = k.parsed::<u32>("nhid")? {
        r = r.nhid(id);
    }
    for hop in hops.split(|a| a == "nexthop").filter(|h| !h.is_empty()) {
        let hk = Keywords::parse(hop, &["via", "dev", "weight"], &["onlink"])?;
        hk.at_most(0)?;
        let mut nh = match hk.parsed::<IpAddr>("via")? {
            Some(g) => NextHop::via(g),
            None => NextHop {
                gateway: None,
                ifindex: 0,
                weight: 1,
                flags: 0,
            },
        };
        if let Some(d) = hk.get("dev") {
            nh = nh.dev(ifindex(names, d)?);
        }
        if let Some(w) = hk.parsed::<u16>("weight")? {
            nh = nh.weight(w);
        }
        r = r.nexthop(nh);
    }
    Ok(r)
}

fn change(ctx: &Ctx, args: &[String], op: Option<RouteOp>) -> Result<()> {
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let r = parse_route(ctx, args, &names)?;
    match op {
        Some(op) => ops::add_route(&mut sock, &r, op),
        None => ops::del_route(&mut sock, &r),
    }?;
    Ok(())
}
