//! `nlkit ct list|get|create|update|delete|flush|count|stats|events`, named and printed as
//! conntrack(8) does.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Result;
use nlkit_conntrack::fmt::{entry_json, entry_text, event_text};
use nlkit_conntrack::ops::{self, Received};
use nlkit_conntrack::request::{DumpFilter, TupleFilter};
use nlkit_conntrack::{CtEntry, CtEntryView, Tuple};
use nlkit_wire::consts::*;

use super::shared::SharedListing;
use super::{action, ordered, stdout, unknown_action, Ctx, Sink, Source};
use crate::args::UsageError;
use crate::cli::{CtArgs, CtFilter};
use nlkit_socket::Protocol;
use nlkit_wire::MessageBuilder;

pub fn run(ctx: &Ctx, a: CtArgs) -> Result<()> {
    let f = &a.filter;
    match action(&a.action) {
        "show" => list(ctx, f),
        "get" => get(ctx, f),
        "create" | "add" => create(ctx, f, false),
        "update" => create(ctx, f, true),
        "del" => delete(ctx, f),
        "flush" => flush(ctx, f),
        "count" => count(ctx),
        "stats" => stats(ctx),
        "events" => events(ctx, f),
        other => Err(unknown_action(
            "ct",
            other,
            "list, get, create, update, delete, flush, count, stats, events",
        )),
    }
}

fn proto_number(p: &str) -> Result<u8> {
    Ok(match p {
        "tcp" => IPPROTO_TCP,
        "udp" => IPPROTO_UDP,
        "icmp" => IPPROTO_ICMP,
        "icmpv6" | "ipv6-icmp" => IPPROTO_ICMPV6,
        "sctp" => IPPROTO_SCTP,
        "udplite" => IPPROTO_UDPLITE,
        "dccp" => IPPROTO_DCCP,
        "gre" => IPPROTO_GRE,
        n => n
            .parse()
            .map_err(|_| UsageError(format!("unknown protocol \"{p}\"")))?,
    })
}

/// `7` or `0x10/0xf0`.
fn parse_mark(s: &str) -> Result<(u32, u32)> {
    let num = |t: &str| -> Result<u32> {
        let r = match t.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16),
            None => t.parse(),
        };
        r.map_err(|_| UsageError(format!("invalid mark \"{s}\"")).into())
    };
    match s.split_once('/') {
        Some((v, m)) => Ok((num(v)?, num(m)?)),
        None => Ok((num(s)?, u32::MAX)),
    }
}

fn family(ctx: &Ctx, f: &CtFilter) -> Result<u8> {
    Ok(match f.family.as_deref() {
        Some("ipv4") => AF_INET,
        Some("ipv6") => AF_INET6,
        Some(other) => return Err(UsageError(format!("unknown family \"{other}\"")).into()),
        None => ctx.family.unwrap_or(0),
    })
}

fn dump_filter(ctx: &Ctx, f: &CtFilter) -> Result<DumpFilter> {
    let proto = f.proto.as_deref().map(proto_number).transpose()?;
    let tuple = |src, dst, sport, dport| -> Option<TupleFilter> {
        let t = TupleFilter {
            src,
            dst,
            proto,
            sport,
            dport,
        };
        (t != TupleFilter::default()).then_some(t)
    };
    Ok(DumpFilter {
        family: family(ctx, f)?,
        mark: f.mark.as_deref().map(parse_mark).transpose()?,
        zone: f.zone,
        status: None,
        orig: tuple(f.src, f.dst, f.sport, f.dport),
        reply: tuple(f.reply_src, f.reply_dst, f.reply_sport, f.reply_dport).filter(|r| {
            r.src.is_some() || r.dst.is_some() || r.sport.is_some() || r.dport.is_some()
        }),
    })
}

fn list(ctx: &Ctx, f: &CtFilter) -> Result<()> {
    let filter = dump_filter(ctx, f)?;
    let mut req = MessageBuilder::new();
    nlkit_conntrack::request::dump(&mut req, 0, &filter)?;
    if ctx.threads > 1 {
        let listing = SharedListing::new(ctx.json)?;
        let shown = std::sync::atomic::AtomicU64::new(0);
        listing.dump(
            &ctx.pool(Protocol::Netfilter),
            &mut req,
            ctx.threads,
            |m, chunk| {
                let kept = render_entry(&filter, ctx.json, m, chunk)?;
                if kept {
                    shown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(kept)
            },
        )?;
        listing.finish()?;
        report_shown(ctx, shown.into_inner());
        return Ok(());
    }
    let mut src = Source::open(ctx, Protocol::Netfilter)?;
    let by_addr = filter.orig.and_then(|t| t.src);
    if src.has_view() {
        // Through the view: walked in one thread, formatted on the others, in order.
        let walk = |give: ordered::Give<'_>| src.ct_dump(&mut req, by_addr, give);
        let shown = ordered::listing(walk, ctx.json, |m, chunk| {
            render_entry(&filter, ctx.json, m, chunk)
        })?;
        report_shown(ctx, shown);
        return Ok(());
    }
    let mut sink = Sink::new(ctx.json);
    let mut shown = 0u64;
    let res = src.ct_dump(&mut req, by_addr, |m| {
        let e = CtEntryView::parse(m).map_err(|e| match e {
            nlkit_conntrack::Error::Wire(w) => nlkit_socket::Error::Protocol(w),
            e => nlkit_socket::Error::callback(e),
        })?;
        if !filter.matches(&e) {
            return Ok(());
        }
        shown += 1;
        sink.item_with(|line| entry_text(&e).write_to(line), entry_json(&e))
    });
    sink.finish(res)?;
    report_shown(ctx, shown);
    Ok(())
}

/// Appends `m`'s entry to `chunk` (a text line, or with `json` one JSON value) if it passes
/// `filter`; returns whether it did (a listing's render).
fn render_entry(
    filter: &DumpFilter,
    json: bool,
    m: &nlkit_wire::Message<'_>,
    chunk: &mut Vec<u8>,
) -> Result<bool> {
    let e = CtEntryView::parse(m)?;
    if !filter.matches(&e) {
        return Ok(false);
    }
    if json {
        serde_json::to_writer(&mut *chunk, &entry_json(&e))?;
    } else {
        entry_text(&e).write_to(chunk);
        chunk.push(b'\n');
    }
    Ok(true)
}

/// The count conntrack(8) prints on stderr after a text listing.
fn report_shown(ctx: &Ctx, shown: impl std::fmt::Display) {
    if !ctx.json {
        eprintln!("nlkit (conntrack): {shown} flow entries have been shown.");
    }
}

/// The original tuple given on the command line (`-p -s -d --sport --dport`, or ICMP fields).
fn orig_tuple(f: &CtFilter) -> Result<Tuple> {
    let p = proto_number(
        f.proto
            .as_deref()
            .ok_or_else(|| UsageError("a tuple needs -p PROTO".into()))?,
    )?;
    let src: IpAddr = f
        .src
        .ok_or_else(|| UsageError("a tuple needs -s SRC".into()))?;
    let dst: IpAddr = f
        .dst
        .ok_or_else(|| UsageError("a tuple needs -d DST".into()))?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(UsageError("-s and -d must be the same family".into()).into());
    }
    Ok(match p {
        IPPROTO_ICMP | IPPROTO_ICMPV6 => Tuple::icmp(
            src,
            dst,
            f.icmp_id.unwrap_or(0),
            f.icmp_type.unwrap_or(8),
            f.icmp_code.unwrap_or(0),
        ),
        _ => Tuple::with_ports(
            p,
            src,
            f.sport
                .ok_or_else(|| UsageError("a tuple needs --sport".into()))?,
            dst,
            f.dport
                .ok_or_else(|| UsageError("a tuple needs --dport".into()))?,
        ),
    })
}

fn print_entry(ctx: &Ctx, e: &CtEntryView<'_>) -> Result<()> {
    let mut out = stdout();
    if ctx.json {
        serde_json::to_writer(&mut out, &entry_json(e))?;
        writeln!(out)?;
    } else {
        let mut line = Vec::with_capacity(256);
        entry_text(e).write_to(&mut line);
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(())
}

fn get(ctx: &Ctx, f: &CtFilter) -> Result<()> {
    let t = orig_tuple(f)?;
    let mut req = nlkit_wire::MessageBuilder::new();
    nlkit_conntrack::request::get(&mut req, 0, &t, f.zone)?;
    // Through the mirror's view when it holds the entry; else the socket answers (the
    // entry, or the mirror's error: the same output as ever).
    if let Some(view) = ctx.view()? {
        let mut msg = Vec::new();
        if super::view::ct_get(&view, req.as_bytes(), &mut msg)?.is_some() {
            if let Some(m) = nlkit_wire::Messages::new(&msg).next() {
                return print_entry(ctx, &CtEntryView::parse(&m?)?);
            }
        }
    }
    let mut sock = ctx.socket(Protocol::Netfilter)?;
    let reply = sock.transact(&mut req)?;
    for m in reply.messages() {
        print_entry(ctx, &CtEntryView::parse(&m?)?)?;
    }
    Ok(())
}

fn create(ctx: &Ctx, f: &CtFilter, update: bool) -> Result<()> {
    let orig = orig_tuple(f)?;
    let mut reply = orig.reversed();
    if let Some(a) = f.reply_src {
        reply.src = a;
    }
    if let Some(a) = f.reply_dst {
        reply.dst = a;
    }
    if f.reply_sport.is_some() || f.reply_dport.is_some() {
        reply = Tuple::with_ports(
            reply.proto,
            reply.src,
            f.reply_sport.or(reply.sport()).unwrap_or(0),
            reply.dst,
            f.reply_dport.or(reply.dport()).unwrap_or(0),
        );
    }
    let mut e = CtEntry::with_reply(orig, reply);
    if let Some(t) = f.timeout {
        e = e.timeout(t);
    } else if !update {
        return Err(UsageError("create needs -t TIMEOUT".into()).into());
    }
    if let Some(m) = f.mark.as_deref() {
        e = e.mark(parse_mark(m)?.0);
    }
    if let Some(z) = f.zone {
        e = e.zone(z);
    }
    if let Some(s) = f.state.as_deref() {
        let st = (0..=9u8)
            .find(|&i| nlkit_conntrack::fmt::tcp_state_name(i).eq_ignore_ascii_case(s))
            .ok_or_else(|| UsageError(format!("unknown TCP state \"{s}\"")))?;
        e = e.tcp_state(st);
    }
    let mut sock = ctx.socket(Protocol::Netfilter)?;
    if update {
        ops::update(&mut sock, &e)?;
    } else {
        ops::create(&mut sock, &e)?;
    }
    eprintln!(
        "nlkit (conntrack): 1 flow entry has been {}.",
        if update { "updated" } else { "created" }
    );
    Ok(())
}

/// What conntrack(8) prints after deleting; none deleted is a failure (exit 1), as there.
fn deleted(n: u64) -> Result<()> {
    let text = format!("nlkit (conntrack): {n} flow entries have been deleted.");
    if n == 0 {
        return Err(anyhow::anyhow!(text));
    }
    eprintln!("{text}");
    Ok(())
}

fn delete(ctx: &Ctx, f: &CtFilter) -> Result<()> {
    let full = f.proto.is_some() && f.src.is_some() && f.dst.is_some();
    if full && (f.sport.is_some() || f.icmp_id.is_some()) {
        let t = orig_tuple(f)?;
        let gone = ops::delete(&mut ctx.socket(Protocol::Netfilter)?, &t, f.zone)?;
        return deleted(u64::from(gone));
    }
    // Everything that matches: streamed dump, batched deletes (a spinner on a terminal).
    let spinner = {
        use std::io::IsTerminal;
        std::io::stderr()
            .is_terminal()
            .then(|| crate::output::progress(None, "deleting"))
    };
    if let Some(p) = &spinner {
        p.enable_steady_tick(std::time::Duration::from_millis(100));
    }
    let filter = dump_filter(
        &Ctx {
            family: None,
            ..ctx.clone()
        },
        f,
    )?;
    let s = ops::delete_matching(
        &mut ctx.socket(Protocol::Netfilter)?,
        &mut ctx.socket(Protocol::Netfilter)?,
        &filter,
        |e| filter.matches(e),
        ops::DEFAULT_DELETE_BATCH,
    )?;
    if let Some(p) = spinner {
        p.finish_and_clear();
    }
    deleted(s.deleted)
}

fn flush(ctx: &Ctx, f: &CtFilter) -> Result<()> {
    let fam = family(ctx, f)?;
    let mut sock = ctx.socket(Protocol::Netfilter)?;
    match (f.mark.as_deref(), f.zone) {
        (Some(m), None) => {
            let (v, mask) = parse_mark(m)?;
            ops::flush_mark(&mut sock, fam, v, mask)?;
        }
        (None, Some(z)) => {
            ops::flush_zone(&mut sock, &mut ctx.socket(Protocol::Netfilter)?, z)?;
        }
        (Some(_), Some(_)) => return delete(ctx, f),
        (None, None) => ops::flush(&mut sock, fam)?,
    }
    eprintln!("nlkit (conntrack): connection tracking table has been emptied.");
    Ok(())
}

/// `ct count`: with `--mirror`, the entries the mirror holds (what `ct list` would show).
fn count(ctx: &Ctx) -> Result<()> {
    let n = match ctx.view()?.map(|v| v.ct_count()) {
        Some(Ok(n)) if n > 0 => n,
        // No view, or an empty table (a mirror that does not mirror conntrack has one too):
        // the socket answers (or refuses).
        _ => u64::from(ops::count(&mut ctx.socket(Protocol::Netfilter)?)?),
    };
    println!("{n}");
    Ok(())
}

fn stats(ctx: &Ctx) -> Result<()> {
    ctx.kernel_only(
        "ct stats",
        "per-CPU conntrack statistics are kernel counters the mirror does not keep",
    )?;
    let cpus = ops::stats_cpu(&mut ctx.socket(Protocol::Netfilter)?)?;
    let mut out = stdout();
    for c in &cpus {
        if ctx.json {
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({
                    "cpu": c.cpu, "found": c.found, "invalid": c.invalid, "insert": c.insert,
                    "insert_failed": c.insert_failed, "drop": c.drop, "early_drop": c.early_drop,
                    "error": c.error, "search_restart": c.search_restart,
                    "clash_resolve": c.clash_resolve, "chaintoolong": c.chain_toolong,
                }),
            )?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "cpu={:<4}\tfound={} invalid={} insert={} insert_failed={} drop={} early_drop={} error={} search_restart={} clash_resolve={} chaintoolong={} ",
                c.cpu, c.found, c.invalid, c.insert, c.insert_failed, c.drop, c.early_drop,
                c.error, c.search_restart, c.clash_resolve, c.chain_toolong
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `nlkit ct events`: prints events until interrupted (or `NLKIT_EVENTS_MAX` events, for
/// scripts and tests).
fn events(ctx: &Ctx, f: &CtFilter) -> Result<()> {
    let filter = dump_filter(ctx, f)?;
    let max: u64 = std::env::var("NLKIT_EVENTS_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let mut ev = ctx.ct_events("ct events")?;
    let mut seen = 0u64;
    let mut out = stdout();
    let mut line = Vec::with_capacity(256);
    while seen < max {
        let mut err = None;
        let r = ev.recv(false, |e| {
            if !filter.matches(&e) || seen >= max {
                return;
            }
            seen += 1;
            let w = if ctx.json {
                serde_json::to_writer(&mut out, &entry_json(&e))
                    .map_err(std::io::Error::from)
                    .and_then(|_| writeln!(out))
            } else {
                line.clear();
                event_text(&e).write_to(&mut line);
                line.push(b'\n');
                out.write_all(&line)
            };
            if let Err(e) = w {
                err.get_or_insert(e);
            }
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        if r == Received::Overrun {
            eprintln!("nlkit: WARNING: events were lost (receive buffer overrun)");
        }
        out.flush()?;
    }
    Ok(())
}
