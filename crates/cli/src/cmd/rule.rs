//! `nlkit rule show|add|del|flush`, like `ip rule`.

use std::net::IpAddr;

use anyhow::Result;
use nlkit_route::fmt::{parse_dsfield, parse_ip_proto, rule_json, rule_text};
use nlkit_route::names::{parse_protocol, parse_route_type, parse_table};
use nlkit_route::request::{self, RuleFilter};
use nlkit_route::{ops, Rule, RuleView};
use nlkit_socket::Protocol;
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

use super::{action, unknown_action, Ctx, Sink, Source};
use crate::args::{Prefix, UsageError};
use crate::cli::ObjectArgs;

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    match action(&a.action) {
        "show" => show(ctx, &a.args),
        "add" => change(ctx, &a.args, true),
        "del" => change(ctx, &a.args, false),
        "flush" => flush(ctx, &a.args),
        other => Err(unknown_action("rule", other, "show, add, del, flush")),
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// A number as C's `strtoul(s, 0)` reads it: decimal, `0x` hex or leading-zero octal.
fn num(s: &str, what: &str) -> Result<u32> {
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    };
    r.ok_or_else(|| usage(format!("{what} value is invalid: \"{s}\"")))
}

/// `preference`, `priority` or `order`, or an abbreviation as iproute2 accepts (`pref`,
/// `prio`).
fn is_pref(w: &str) -> bool {
    !w.is_empty()
        && (("preference".starts_with(w) && w.len() >= 3)
            || ("priority".starts_with(w) && w.len() >= 3)
            || "order".starts_with(w))
}

/// `START-END` or `N` (= `N-N`).
fn port_range(s: &str) -> Result<(u16, u16)> {
    let bad = || usage(format!("invalid port range \"{s}\""));
    match s.split_once('-') {
        Some((a, b)) => Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
        None => {
            let p = s.parse().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}

/// The family a rule command works on: `-4`/`-6`, else IPv4 as `ip rule` does.
fn family(ctx: &Ctx) -> u8 {
    ctx.family.unwrap_or(AF_INET)
}

/// `ip rule show|flush` selectors, with iproute2's meanings.
fn filter(args: &[String]) -> Result<RuleFilter> {
    let mut f = RuleFilter::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| usage(format!("\"{a}\" needs a value")))
        };
        match a.as_str() {
            w if is_pref(w) => f.priority = Some(num(val()?, "preference")?),
            "not" => f.invert = true,
            "tos" | "dsfield" => {
                let t = val()?;
                f.tos = Some(
                    parse_dsfield(t)
                        .ok_or_else(|| usage(format!("TOS value is invalid: \"{t}\"")))?,
                );
            }
            "fwmark" => {
                let v = val()?;
                match v.split_once('/') {
                    Some((m, k)) => {
                        f.fwmark = Some(num(m, "fwmark")?);
                        f.fwmask = Some(num(k, "fwmask")?);
                    }
                    None => f.fwmark = Some(num(v, "fwmark")?),
                }
                // As in iproute2, a zero mark or mask selects nothing.
                f.fwmark = f.fwmark.filter(|&m| m != 0);
                f.fwmask = f.fwmask.filter(|&m| m != 0);
            }
            "iif" | "dev" => f.iif = Some(val()?.to_owned()),
            "oif" => f.oif = Some(val()?.to_owned()),
            "l3mdev" => f.l3mdev = true,
            "uidrange" => f.uid_range = Some(uid_range(val()?)?),
            "table" | "lookup" => {
                let t = val()?;
                f.table =
                    Some(parse_table(t).ok_or_else(|| usage(format!("invalid table \"{t}\"")))?);
            }
            "from" | "src" => f.src = prefix(val()?)?,
            "protocol" | "proto" => {
                let p = val()?;
                f.protocol = match p {
                    "all" => None,
                    _ => Some(
                        parse_protocol(p)
                            .ok_or_else(|| usage(format!("invalid protocol \"{p}\"")))?,
                    ),
                };
            }
            "ipproto" => f.ip_proto = Some(ip_proto(val()?)?),
            "sport" => f.sport = Some(port_range(val()?)?),
            "dport" => f.dport = Some(port_range(val()?)?),
            "dscp" => f.dscp = Some(dscp(val()?)?),
            "to" | "dst" => f.dst = prefix(val()?)?,
            p => f.dst = prefix(p)?,
        }
    }
    Ok(f)
}

/// A selector prefix; `all`/`default` select nothing.
fn prefix(s: &str) -> Result<Option<(IpAddr, u8)>> {
    let p: Prefix = s.parse()?;
    Ok(p.addr.map(|a| (a, p.len)))
}

fn uid_range(v: &str) -> Result<(u32, u32)> {
    let bad = || usage(format!("invalid UID range \"{v}\""));
    let (s, e) = v.split_once('-').ok_or_else(bad)?;
    Ok((s.parse().map_err(|_| bad())?, e.parse().map_err(|_| bad())?))
}

fn ip_proto(v: &str) -> Result<u8> {
    parse_ip_proto(v).ok_or_else(|| usage(format!("Invalid \"ipproto\" value \"{v}\"")))
}

/// A DSCP as a number or a DS field name (`AF11` is DSCP 10).
fn dscp(d: &str) -> Result<u8> {
    let v = match num(d, "dscp") {
        Ok(v) => u8::try_from(v).ok().filter(|&v| v < 64),
        Err(_) => parse_dsfield(d).map(|ds| ds >> 2),
    };
    v.ok_or_else(|| usage(format!("invalid dscp \"{d}\"")))
}

fn show(ctx: &Ctx, args: &[String]) -> Result<()> {
    let mut f = filter(args)?;
    // iproute2 applies `protocol` only to `flush`; `show` lists every protocol.
    f.protocol = None;
    let fam = family(ctx);
    let mut src = Source::open(ctx, Protocol::Route)?;
    let mut req = MessageBuilder::new();
    request::dump_rules(&mut req, 0, fam)?;
    let mut sink = Sink::new(ctx.json);
    let res = src.dump(&mut req, |m| {
        let r = RuleView::parse(m)?;
        if r.family() != fam || !f.matches(&r) {
            return Ok(());
        }
        sink.item(rule_text(&r), rule_json(&r))
    });
    sink.finish(res)
}

fn flush(ctx: &Ctx, args: &[String]) -> Result<()> {
    let f = filter(args)?;
    let mut sock = ctx.socket(Protocol::Route)?;
    ops::flush_rules(&mut sock, family(ctx), &f)?;
    Ok(())
}

/// Parses `ip rule add|del` arguments. `add` starts from a lookup of the main table, `del`
/// from a wildcard, as iproute2 does.
fn parse_rule(ctx: &Ctx, args: &[String], add: bool) -> Result<Rule> {
    let mut r = if add {
        Rule::new(AF_UNSPEC)
    } else {
        Rule::any(AF_UNSPEC)
    };
    r.family = ctx.family.unwrap_or(AF_UNSPEC);
    let mut table_given = false;
    let mut it = args.iter();
    let set_family = |r: &mut Rule, a: IpAddr, word: &str| -> Result<()> {
        let f = nlkit_route::family_of(a);
        if r.family != AF_UNSPEC && r.family != f {
            return Err(usage(format!("{word}: address family mismatch")));
        }
        r.family = f;
        Ok(())
    };
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| usage(format!("\"{a}\" needs a value")))
        };
        match a.as_str() {
            "not" => r.invert = true,
            "from" | "to" => {
                let p: Prefix = val()?.parse()?;
                if let Some(addr) = p.addr {
                    set_family(&mut r, addr, a)?;
                    if a == "from" {
                        r = r.from(addr, p.len);
                    } else {
                        r = r.to(addr, p.len);
                    }
                }
            }
            w if is_pref(w) => r.priority = Some(num(val()?, "preference")?),
            "tos" | "dsfield" => {
                let t = val()?;
                r.tos = parse_dsfield(t)
                    .ok_or_else(|| usage(format!("TOS value is invalid: \"{t}\"")))?;
            }
            "dscp" => r.dscp = Some(dscp(val()?)?),
            "fwmark" => {
                let v = val()?;
                let (mark, mask) = match v.split_once('/') {
                    Some((m, k)) => (num(m, "fwmark")?, Some(num(k, "fwmask")?)),
                    None => (num(v, "fwmark")?, None),
                };
                r.fwmark = Some(mark);
                r.fwmask = mask;
            }
            "realms" => {
                let v = val()?;
                let realm = |s: &str| -> Result<u32> {
                    match s {
                        "cosmos" => Ok(0),
                        _ => num(s, "realm"),
                    }
                };
                r.realms = Some(match v.split_once('/') {
                    Some((from, to)) => realm(from)? << 16 | realm(to)?,
                    None => realm(v)?,
                });
            }
            "protocol" | "proto" => {
                let p = val()?;
                r.protocol = Some(
                    parse_protocol(p).ok_or_else(|| usage(format!("invalid protocol \"{p}\"")))?,
                );
            }
            "table" | "lookup" => {
                let t = val()?;
                r.table =
                    parse_table(t).ok_or_else(|| usage(format!("invalid table ID \"{t}\"")))?;
                table_given = true;
            }
            "suppress_prefixlength" | "sup_pl" => {
                let v = val()?;
                r.suppress_prefixlen = Some(
                    v.parse::<i32>()
                        .ok()
                        .and_then(|p| u32::try_from(p).ok())
                        .ok_or_else(|| {
                            usage(format!("suppress_prefixlength value is invalid: \"{v}\""))
                        })?,
                );
            }
            "suppress_ifgroup" | "sup_group" => {
                let v = val()?;
                r.suppress_ifgroup = Some(match v {
                    "default" => 0,
                    _ => num(v, "suppress_ifgroup")?,
                });
            }
            "iif" | "dev" => r.iif = Some(val()?.to_owned()),
            "oif" => r.oif = Some(val()?.to_owned()),
            "l3mdev" => {
                r.l3mdev = true;
                table_given = true;
            }
            "uidrange" => r.uid_range = Some(uid_range(val()?)?),
            "ipproto" => r.ip_proto = Some(ip_proto(val()?)?),
            "sport" => r.sport = Some(port_range(val()?)?),
            "dport" => r.dport = Some(port_range(val()?)?),
            "goto" => {
                let t = val()?;
                r.goto = Some(num(t, "goto target")?);
                r.action = FR_ACT_GOTO;
                table_given = true;
            }
            "nop" => {
                r.action = FR_ACT_NOP;
                table_given = true;
            }
            "nat" | "map-to" => return Err(usage("rule nat is not supported (deprecated)")),
            word => {
                let word = if word == "type" { val()? } else { word };
                let t = parse_route_type(word)
                    .ok_or_else(|| usage(format!("Failed to parse rule type \"{word}\"")))?;
                r.action = t;
                table_given = true;
            }
        }
    }
    if r.l3mdev && table_given && r.table != 0 && r.table != RT_TABLE_MAIN as u32 {
        return Err(usage("table can not be specified for l3mdev rules"));
    }
    if add && table_given && (r.action != FR_ACT_TO_TBL || r.l3mdev) {
        // A non-lookup action (or l3mdev) replaces the default main table.
        if !args.iter().any(|a| a == "table" || a == "lookup") {
            r.table = 0;
        }
    }
    if r.family == AF_UNSPEC {
        r.family = AF_INET;
    }
    Ok(r)
}

fn change(ctx: &Ctx, args: &[String], add: bool) -> Result<()> {
    if args.is_empty() {
        let what = if add { "add" } else { "del" };
        return Err(usage(format!("\"rule {what}\" requires arguments")));
    }
    let r = parse_rule(ctx, args, add)?;
    let mut sock = ctx.socket(Protocol::Route)?;
    if add {
        ops::add_rule(&mut sock, &r)
    } else {
        ops::del_rule(&mut sock, &r)
    }?;
    Ok(())
}
