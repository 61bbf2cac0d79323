//! The request handlers: gets and dumps answered from the tables, writes passed to the kernel.

use std::time::Instant;

use nlkit_table::ConnKey;
use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, IfInfoMsg, Message, Messages, NdMsg, NfGenMsg, RtMsg};

use super::out::Out;
use super::registry::{Ctx, HandlerResult, Reject};
use crate::keys::{parse_tuple, route_info, AddrKey, LinkKey, NeighKey, RouteKey, StoreKey};
use crate::route_store::RouteStore;
use crate::store::Store;
use crate::tables::family_index;
use nlkit_table::ChangeSeq;

pub(super) fn io_reject(e: std::io::Error) -> Reject {
    (e.raw_os_error().unwrap_or(libc::EIO), String::new())
}

pub(super) fn bad(what: &str) -> Reject {
    (libc::EINVAL, format!("invalid request: {what}"))
}

/// Which of the two per-family stores a request's family selects.
pub(super) fn families(family: u8) -> Result<&'static [usize], Reject> {
    match family {
        AF_UNSPEC => Ok(&[0, 1]),
        AF_INET => Ok(&[0]),
        AF_INET6 => Ok(&[1]),
        _ => Err((
            libc::EAFNOSUPPORT,
            format!("address family {family} is not mirrored"),
        )),
    }
}

/// A table a dump handler streams: its change sequence and its entries.
pub(crate) trait Listing {
    /// The table's change sequence.
    fn seq(&self) -> &ChangeSeq;
    /// Calls `f` with each entry's messages until it returns `false`; returns whether the
    /// walk was complete (false: it may have missed an entry, see
    /// [`Store::for_each`](crate::Store::for_each)).
    fn each(&self, f: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

impl<K: StoreKey> Listing for Store<K> {
    fn seq(&self) -> &ChangeSeq {
        &self.seq
    }
    fn each(&self, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.for_each(|e| f(e.messages()))
    }
}

impl Listing for RouteStore {
    fn seq(&self) -> &ChangeSeq {
        RouteStore::seq(self)
    }
    fn each(&self, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.for_each(|e| f(e.messages()))
    }
}

/// A dump filter: gets an entry's first message and all its messages.
type Keep<'k> = &'k mut dyn FnMut(&Message<'_>, &[u8]) -> bool;

/// Streams tables (optionally filtered: `keep` gets the entry's first message and all its
/// messages), then `NLMSG_DONE`.
///
/// Each table is walked in slot order (its shared map's validated walk), each record copied
/// into the output with headers patched. The dump is watched from before the first read, so a change
/// to any of the tables meanwhile flags it `NLM_F_DUMP_INTR`; so does a walk that skipped a
/// slot the writer kept mid-change (the entry may be missing from the dump).
fn dump_stores<'a>(
    ctx: &'a Ctx,
    stores: &[&'a dyn Listing],
    out: &mut Out<'a>,
    mut keep: Option<Keep<'_>>,
) -> HandlerResult {
    let t0 = Instant::now();
    for s in stores {
        out.watch(s.seq());
    }
    let mut failed = None;
    for s in stores {
        let complete = s.each(&mut |msgs| {
            if let Some(keep) = keep.as_mut() {
                let first = Message::parse(msgs).ok();
                if !first.is_some_and(|(m, _)| keep(&m, msgs)) {
                    return true;
                }
            }
            match out.push(msgs, NLM_F_MULTI) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        });
        if let Some(e) = failed.take() {
            return Err(io_reject(e));
        }
        if !complete {
            out.interrupt();
        }
    }
    out.done().map_err(io_reject)?;
    ctx.metrics.observe_dump(t0.elapsed(), out.intr);
    Ok(true)
}

fn one<K: StoreKey>(
    store: &Store<K>,
    key: &K,
    out: &mut Out<'_>,
    missing: Reject,
) -> HandlerResult {
    let bytes = store.get_bytes(key).ok_or(missing)?;
    out.push(&bytes, 0).map_err(io_reject)?;
    Ok(false)
}

pub(crate) fn get_link(ctx: &Ctx, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    let (h, attrs) = m
        .family_header::<IfInfoMsg>()
        .map_err(|_| bad("ifinfomsg"))?;
    if h.index > 0 {
        let k = LinkKey {
            ifindex: h.index as u32,
        };
        return one(&ctx.tables.links, &k, out, (libc::ENODEV, String::new()));
    }
    let name = attrs
        .find(IFLA_IFNAME)
        .and_then(Result::ok)
        .and_then(|a| a.str().ok().map(str::to_owned))
        .ok_or((
            libc::EINVAL,
            String::from("need an interface index or name"),
        ))?;
    let mut found = None;
    let complete = ctx.tables.links.for_each(|e| {
        let hit = e.iter().flatten().any(|lm| {
            lm.family_header::<IfInfoMsg>().is_ok_and(|(_, a)| {
                a.find(IFLA_IFNAME)
                    .and_then(Result::ok)
                    .is_some_and(|n| n.str().is_ok_and(|s| s == name))
            })
        });
        if hit {
            found = Some(e.messages().to_vec());
        }
        !hit
    });
    if found.is_none() && !complete {
        // The walk skipped a link the writer kept mid-change: it may be this one.
        return Err((
            libc::EAGAIN,
            String::from("the links table is being changed; try again"),
        ));
    }
    let msgs = found.ok_or((libc::ENODEV, String::new()))?;
    out.push(&msgs, 0).map_err(io_reject)?;
    Ok(false)
}

pub(crate) fn dump_links<'a>(ctx: &'a Ctx, _m: &Message<'_>, out: &mut Out<'a>) -> HandlerResult {
    dump_stores(ctx, &[&ctx.tables.links as &dyn Listing], out, None)
}

pub(crate) fn get_addr(ctx: &Ctx, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    let k = AddrKey::from_msg(m)
        .ok_or_else(|| bad("need family, ifindex and IFA_LOCAL/IFA_ADDRESS"))?;
    let (h, _) = m
        .family_header::<IfAddrMsg>()
        .map_err(|_| bad("ifaddrmsg"))?;
    one(
        &ctx.tables.addrs[family_index(h.family)],
        &k,
        out,
        (libc::EADDRNOTAVAIL, String::new()),
    )
}

pub(crate) fn dump_addrs<'a>(ctx: &'a Ctx, m: &Message<'_>, out: &mut Out<'a>) -> HandlerResult {
    let (h, _) = m
        .family_header::<IfAddrMsg>()
        .map_err(|_| bad("ifaddrmsg"))?;
    let stores: Vec<_> = families(h.family)?
        .iter()
        .map(|i| &ctx.tables.addrs[*i] as &dyn Listing)
        .collect();
    let index = h.index;
    let mut on_link =
        |m: &Message<'_>, _: &[u8]| AddrKey::from_msg(m).is_some_and(|k| k.ifindex == index);
    dump_stores(ctx, &stores, out, (index != 0).then_some(&mut on_link as _))
}

pub(crate) fn get_route(ctx: &Ctx, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    let info = route_info(m).ok_or_else(|| bad("rtmsg"))?;
    let mut key = info.key;
    let v6 = key.dst.is_ipv6();
    if key.table == 0 {
        key.table = u32::from(RT_TABLE_MAIN);
    }
    let (_, attrs) = m.family_header::<RtMsg>().map_err(|_| bad("rtmsg"))?;
    let has_prio = attrs.clone().find(RTA_PRIORITY).is_some();
    let candidates: Vec<RouteKey> = if has_prio {
        vec![key]
    } else {
        let default_prio = if v6 { 1024 } else { 0 };
        vec![
            RouteKey {
                priority: default_prio,
                ..key
            },
            RouteKey { priority: 0, ..key },
        ]
    };
    let store = &ctx.tables.routes[usize::from(v6)];
    for k in &candidates {
        if let Some(b) = store.get_bytes(k) {
            out.push(&b, 0).map_err(io_reject)?;
            return Ok(false);
        }
    }
    // Not an exact prefix the mirror holds (e.g. `ip route get ADDR`): the kernel's FIB
    // lookup answers, through the writer (route gets run without RTNL in the kernel).
    forward(ctx, NETLINK_ROUTE as u8, m, out)
}

pub(crate) fn dump_routes<'a>(ctx: &'a Ctx, m: &Message<'_>, out: &mut Out<'a>) -> HandlerResult {
    let (h, attrs) = m.family_header::<RtMsg>().map_err(|_| bad("rtmsg"))?;
    let mut table = u32::from(h.table);
    let mut oif = None;
    for a in attrs {
        let a = a.map_err(|_| bad("attributes"))?;
        match a.ty() {
            RTA_TABLE => table = a.u32().map_err(|_| bad("RTA_TABLE"))?,
            RTA_OIF => oif = Some(a.u32().map_err(|_| bad("RTA_OIF"))?),
            _ => {}
        }
    }
    if h.flags & RTM_F_CLONED != 0 {
        // Route exceptions are not mirrored: an empty, consistent dump.
        out.done().map_err(io_reject)?;
        return Ok(true);
    }
    let stores: Vec<_> = families(h.family)?
        .iter()
        .map(|i| &ctx.tables.routes[*i] as &dyn Listing)
        .collect();
    let mut selected = |m: &Message<'_>, msgs: &[u8]| {
        RouteKey::from_msg(m).is_some_and(|k| table == 0 || k.table == table)
            && oif.is_none_or(|o| Messages::new(msgs).flatten().any(|rm| route_uses(&rm, o)))
    };
    let filtered = table != 0 || oif.is_some();
    dump_stores(ctx, &stores, out, filtered.then_some(&mut selected as _))
}

/// Whether a route message goes through interface `oif` (directly or by one of its nexthops).
pub(crate) fn route_uses(m: &Message<'_>, oif: u32) -> bool {
    let Some(i) = route_info(m) else { return false };
    if i.oif == Some(oif) {
        return true;
    }
    let Ok((_, attrs)) = m.family_header::<RtMsg>() else {
        return false;
    };
    let Some(Ok(mp)) = attrs.find(RTA_MULTIPATH) else {
        return false;
    };
    // struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex; } followed by attributes.
    let p = mp.payload();
    let mut off = 0;
    while off + 8 <= p.len() {
        let len = usize::from(u16::from_ne_bytes([p[off], p[off + 1]]));
        let ifi = u32::from_ne_bytes([p[off + 4], p[off + 5], p[off + 6], p[off + 7]]);
        if ifi == oif {
            return true;
        }
        if len < 8 {
            break;
        }
        off += nlkit_wire::align(len);
    }
    false
}

pub(crate) fn get_neigh(ctx: &Ctx, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    let k = NeighKey::from_msg(m).ok_or_else(|| bad("need family, ifindex and NDA_DST"))?;
    let (h, _) = m.family_header::<NdMsg>().map_err(|_| bad("ndmsg"))?;
    one(
        &ctx.tables.neigh[family_index(h.family)],
        &k,
        out,
        (libc::ENOENT, String::new()),
    )
}

pub(crate) fn dump_neigh<'a>(ctx: &'a Ctx, m: &Message<'_>, out: &mut Out<'a>) -> HandlerResult {
    let (h, attrs) = m.family_header::<NdMsg>().map_err(|_| bad("ndmsg"))?;
    if h.flags & NTF_PROXY != 0 {
        out.done().map_err(io_reject)?;
        return Ok(true);
    }
    let mut index = u32::try_from(h.ifindex).unwrap_or(0);
    if let Some(Ok(a)) = attrs.find(NDA_IFINDEX) {
        index = a.u32().map_err(|_| bad("NDA_IFINDEX"))?;
    }
    let stores: Vec<_> = families(h.family)?
        .iter()
        .map(|i| &ctx.tables.neigh[*i] as &dyn Listing)
        .collect();
    let mut on_link =
        |m: &Message<'_>, _: &[u8]| NeighKey::from_msg(m).is_some_and(|k| k.ifindex == index);
    dump_stores(ctx, &stores, out, (index != 0).then_some(&mut on_link as _))
}

fn ct_enabled(ctx: &Ctx) -> Result<(), Reject> {
    if ctx.conntrack {
        Ok(())
    } else {
        Err((
            libc::EOPNOTSUPP,
            String::from("this mirror does not mirror conntrack"),
        ))
    }
}

/// The tuple a ctnetlink get names (`CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`, with `CTA_ZONE`).
fn request_tuple(m: &Message<'_>) -> Result<ConnKey, Reject> {
    let (_, attrs) = m.family_header::<NfGenMsg>().map_err(|_| bad("nfgenmsg"))?;
    let (mut t, mut zone) = (None, 0u16);
    for a in attrs {
        let a = a.map_err(|_| bad("attributes"))?;
        match a.ty() {
            CTA_TUPLE_ORIG | CTA_TUPLE_REPLY if t.is_none() => {
                t = Some(parse_tuple(&a).ok_or_else(|| bad("tuple"))?);
            }
            CTA_ZONE => zone = a.be16().map_err(|_| bad("CTA_ZONE"))?,
            _ => {}
        }
    }
    let t = t.ok_or((
        libc::EINVAL,
        String::from("need CTA_TUPLE_ORIG or CTA_TUPLE_REPLY"),
    ))?;
    Ok(if t.zone == 0 { t.with_zone(zone) } else { t })
}

pub(crate) fn get_ct(ctx: &Ctx, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    ct_enabled(ctx)?;
    let t = request_tuple(m)?;
    let mut found = false;
    out.push_with(0, |buf| found = ctx.tables.ct.get_into(&t, buf))
        .map_err(io_reject)?;
    if !found {
        return Err((libc::ENOENT, String::new()));
    }
    Ok(false)
}

/// `CTA_MARK` of a conntrack message (0 when it has none, as the kernel leaves a zero mark
/// out of events).
fn ct_mark(msg: &[u8]) -> u32 {
    Message::parse(msg)
        .ok()
        .and_then(|(m, _)| {
            let (_, attrs) = m.family_header::<NfGenMsg>().ok()?;
            let a = attrs.find(CTA_MARK)?.ok()?;
            a.be32().ok()
        })
        .unwrap_or(0)
}

pub(crate) fn dump_ct<'a>(ctx: &'a Ctx, m: &Message<'_>, out: &mut Out<'a>) -> HandlerResult {
    ct_enabled(ctx)?;
    let (h, attrs) = m.family_header::<NfGenMsg>().map_err(|_| bad("nfgenmsg"))?;
    let (mut mark, mut mask) = (None, u32::MAX);
    let mut zone = None;
    for a in attrs {
        let a = a.map_err(|_| bad("attributes"))?;
        match a.ty() {
            CTA_MARK => mark = Some(a.be32().map_err(|_| bad("CTA_MARK"))?),
            CTA_MARK_MASK => mask = a.be32().map_err(|_| bad("CTA_MARK_MASK"))?,
            CTA_ZONE => zone = Some(a.be16().map_err(|_| bad("CTA_ZONE"))?),
            _ => {}
        }
    }
    let family = h.family;
    let t0 = Instant::now();
    out.watch(&ctx.tables.ct.seq);
    let mut sent = Ok(());
    let keep = |o: &ConnKey| {
        let fam_ok = match family {
            AF_INET => o.src.is_ipv4(),
            AF_INET6 => o.src.is_ipv6(),
            _ => true,
        };
        fam_ok && zone.is_none_or(|z| o.zone == z)
    };
    let complete = ctx.tables.ct.for_each_matching(keep, |_, msg| {
        if mark.is_none_or(|mk| ct_mark(msg) & mask == mk & mask) {
            sent = out.push(msg, NLM_F_MULTI);
        }
        sent.is_ok()
    });
    sent.map_err(io_reject)?;
    if !complete {
        out.interrupt();
    }
    out.done().map_err(io_reject)?;
    ctx.metrics.observe_dump(t0.elapsed(), out.intr);
    Ok(true)
}

/// `IPCTNL_MSG_CT_GET_STATS` (`conntrack -C`): the number of entries the mirror holds and would
/// list, in the kernel's reply format. `CTA_STATS_GLOBAL_MAX_ENTRIES`
/// is left out: the kernel's `nf_conntrack_max` is not the mirror's to report.
pub(crate) fn ct_count(ctx: &Ctx, _m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    ct_enabled(ctx)?;
    let live = ctx.tables.ct.len();
    let mut b = nlkit_wire::MessageBuilder::new();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS),
        0,
        0,
    );
    b.header(&NfGenMsg {
        family: AF_UNSPEC,
        version: NFNETLINK_V0,
        res_id: 0,
    });
    b.attr_be32(
        CTA_STATS_GLOBAL_ENTRIES,
        u32::try_from(live).unwrap_or(u32::MAX),
    );
    b.finish().map_err(|_| bad("reply"))?;
    out.push(b.as_bytes(), 0).map_err(io_reject)?;
    Ok(false)
}

/// Passes a request to the kernel through the writer and relays the kernel's reply.
fn forward(ctx: &Ctx, proto: u8, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    let wanted_ack = m.flags() & NLM_F_ACK != 0;
    let reply = ctx.writer.transact(proto, m.bytes())?;
    for r in Messages::new(&reply) {
        let Ok(r) = r else { break };
        if r.ty() == NLMSG_ERROR && !wanted_ack {
            let is_ack = nlkit_wire::ErrorMsg::parse(&r).is_ok_and(|e| e.is_ack());
            if is_ack {
                continue;
            }
        }
        out.push_raw_reply(r.bytes()).map_err(io_reject)?;
    }
    Ok(true)
}

/// A write request (routes, addresses, neighbours, links, nexthop objects, rules, conntrack
/// entries and flushes): to
/// the kernel through the worker; the kernel's ack or error goes back.
pub(crate) fn write(ctx: &Ctx, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    let proto = if m.ty() >> 8 == u16::from(NFNL_SUBSYS_CTNETLINK) {
        ct_enabled(ctx)?;
        NETLINK_NETFILTER as u8
    } else {
        NETLINK_ROUTE as u8
    };
    ctx.metrics
        .writes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    forward(ctx, proto, m, out)
}
