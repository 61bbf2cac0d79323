//! `--mirror` reads through the mirror's shared memory ([`nlkit_view::MirrorView`]).
//!
//! [`Source`](super::Source) answers a show command's dump request from the mapped tables
//! when it can map them, with the same messages the mirror's socket sends for the request:
//! the same tables, in the same order (families IPv4 then IPv6; nexthops by id, rules by
//! rank), with the filters the mirror applies for it (route table, address and neighbour
//! interface, nexthop family/device/master/groups). Commands filter and format the messages
//! exactly as they do for the socket, so the output is the same. Requests it does not know
//! go over the socket.
//!
//! Through the view: `link show`, `addr show`, `route show`, `neigh show`, `nexthop show`
//! (and `nexthop show id N` / `nexthop get id N`), `rule show`, `ct list` (`-s ADDR` through
//! the address index, sorted back into the socket's slot order), `ct get` and `ct count`,
//! plus the interface-name map those commands print with. Over the socket still: every
//! write, `route get` (a FIB lookup the mirror forwards), `--threads N` listings (a
//! `SharedDump` over a socket pool), `nexthop flush`, `rule flush`, `monitor` (the socket
//! feed), and a `ct get`/`nexthop get` the view does not find (for the mirror's error).
//!
//! `route show` and `ct list` through the view format on several threads
//! ([`ordered`](super::ordered)); the other shows format in the walking thread.
//!
//! The view is not used when `NLKIT_MIRROR_NO_VIEW=1` is set (tests compare both paths), or
//! when the mirror does not hand its region over (another uid than the mirror's: `EPERM`;
//! an older mirror): then everything goes over the socket, as before. `NLKIT_MIRROR_VIEW=1`
//! (tests) makes a view that cannot be opened an error rather than a fallback.
//!
//! A walk that skipped a slot the mirror kept mid-change (`Walk::skipped`: it may have
//! missed an entry) is an interrupted dump, as one the mirror's socket flags
//! `NLM_F_DUMP_INTR`: the listing is printed and [`warn_interrupted`] says so on stderr.

use std::cell::Cell;

use anyhow::Result;
use nlkit_route::NexthopObjectView;
use nlkit_view::{MirrorView, ViewError, Walk};
use nlkit_wire::consts::*;
use nlkit_wire::{FibRuleHdr, IfAddrMsg, IfInfoMsg, Message, Messages, NdMsg, NhMsg, RtMsg};

/// The environment variable that, set to `1`, makes `--mirror` read over the socket only.
pub const NO_VIEW_ENV: &str = "NLKIT_MIRROR_NO_VIEW";

/// The environment variable that, set to `1`, makes a view that cannot be opened an error.
pub const REQUIRE_VIEW_ENV: &str = "NLKIT_MIRROR_VIEW";

/// Whether the view is switched off (`NLKIT_MIRROR_NO_VIEW=1`).
pub fn disabled() -> bool {
    std::env::var_os(NO_VIEW_ENV).is_some_and(|v| v == "1")
}

/// Whether the view must be used (`NLKIT_MIRROR_VIEW=1`).
pub fn required() -> bool {
    std::env::var_os(REQUIRE_VIEW_ENV).is_some_and(|v| v == "1")
}

/// Tells the user a listing may be incomplete: the dump was flagged `NLM_F_DUMP_INTR` (over
/// the socket), or a walk of the view skipped an entry being changed (iproute2's message).
pub fn warn_interrupted() {
    eprintln!("Dump was interrupted and may be inconsistent.");
}

/// Adds a view walk's skipped slots to `skipped`.
fn note(skipped: &Cell<u64>, w: Walk) {
    skipped.set(skipped.get() + w.skipped);
}

/// A dump callback, as [`Source::dump`](super::Source::dump) takes it.
type Each<'f> = &'f mut dyn FnMut(&Message<'_>) -> nlkit_socket::Result<()>;

/// Answers the dump request `req` from `view`: `Ok(false)` when it is not a request the
/// view answers, or the mirror publishes no table for it (the caller sends it over the
/// socket, which answers as it always did).
pub fn dump(view: &MirrorView, req: &[u8], f: Each<'_>) -> Result<bool> {
    let Some(Ok(m)) = Messages::new(req).next() else {
        return Ok(false);
    };
    let mut failed: Option<nlkit_socket::Error> = None;
    // Hands a message to the command; stops the walk on its first error.
    let mut give = |msg: &Message<'_>| match f(msg) {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    };
    let skipped = Cell::new(0);
    let walked = walk(view, &m, &mut give, &skipped);
    if let Some(e) = failed {
        return Err(e.into());
    }
    if skipped.get() > 0 {
        warn_interrupted();
    }
    match walked {
        Ok(w) => Ok(w),
        // Before any message (tables are looked up first): the socket answers instead.
        Err(ViewError::NoTable(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Walks what the request `m` asks for; `give` returns false to stop.
fn walk(
    view: &MirrorView,
    m: &Message<'_>,
    give: &mut dyn FnMut(&Message<'_>) -> bool,
    skipped: &Cell<u64>,
) -> Result<bool, ViewError> {
    let stopped = std::cell::Cell::new(false);
    let mut give = |msg: &Message<'_>| {
        stopped.set(!give(msg));
        !stopped.get()
    };
    match m.ty() {
        RTM_GETLINK => {
            note(skipped, view.links(&mut give)?);
        }
        RTM_GETADDR => {
            let Ok((h, _)) = m.family_header::<IfAddrMsg>() else {
                return Ok(false);
            };
            let index = h.index;
            for fam in families(h.family) {
                let w = view.addrs(fam, |a| {
                    let on = index == 0
                        || a.family_header::<IfAddrMsg>()
                            .is_ok_and(|(h, _)| h.index == index);
                    !on || give(a)
                })?;
                note(skipped, w);
                if stopped.get() {
                    break;
                }
            }
        }
        RTM_GETROUTE => return route_dump(view, m, &mut give, skipped),
        RTM_GETNEIGH => {
            let Ok((h, attrs)) = m.family_header::<NdMsg>() else {
                return Ok(false);
            };
            if h.flags & NTF_PROXY != 0 {
                return Ok(true);
            }
            let mut index = u32::try_from(h.ifindex).unwrap_or(0);
            if let Some(Ok(a)) = attrs.find(NDA_IFINDEX) {
                index = a.u32().unwrap_or(0);
            }
            for fam in families(h.family) {
                let w = view.neighs(fam, |n| {
                    let on = index == 0
                        || n.family_header::<NdMsg>()
                            .is_ok_and(|(h, _)| u32::try_from(h.ifindex) == Ok(index));
                    !on || give(n)
                })?;
                note(skipped, w);
                if stopped.get() {
                    break;
                }
            }
        }
        RTM_GETNEXTHOP => return nexthop_dump(view, m, &mut give, skipped),
        RTM_GETRULE => {
            let Ok((h, _)) = m.family_header::<FibRuleHdr>() else {
                return Ok(false);
            };
            for fam in families(h.family) {
                note(skipped, view.rules(fam, &mut give)?);
                if stopped.get() {
                    break;
                }
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The families a request's family selects (the mirror's order: IPv4, then IPv6).
fn families(family: u8) -> Vec<u8> {
    match family {
        AF_INET => vec![AF_INET],
        AF_INET6 => vec![AF_INET6],
        _ => vec![AF_INET, AF_INET6],
    }
}

/// `RTM_GETROUTE` dump: the mirror's table filter (`rtm_table` or `RTA_TABLE`); cloned
/// routes are not mirrored (an empty answer). `RTA_OIF` is left to the command's own filter.
fn route_dump(
    view: &MirrorView,
    m: &Message<'_>,
    give: &mut dyn FnMut(&Message<'_>) -> bool,
    skipped: &Cell<u64>,
) -> Result<bool, ViewError> {
    let Ok((h, attrs)) = m.family_header::<RtMsg>() else {
        return Ok(false);
    };
    let mut table = u32::from(h.table);
    for a in attrs.flatten() {
        if a.ty() == RTA_TABLE {
            table = a.u32().unwrap_or(table);
        }
    }
    if h.flags & RTM_F_CLONED != 0 {
        return Ok(true);
    }
    let mut stopped = false;
    for fam in families(h.family) {
        let w = view.routes(fam, |r| {
            let keep = table == 0 || route_table(r) == Some(table);
            if keep && !give(r) {
                stopped = true;
            }
            !stopped
        })?;
        note(skipped, w);
        if stopped {
            break;
        }
    }
    Ok(true)
}

/// A route message's table, as [`RouteView::table`](nlkit_route::RouteView::table) reads it
/// (`RTA_TABLE`, else `rtm_table`), without parsing the rest: the attributes are read up to
/// the first `RTA_TABLE` (the kernel's first attribute); `None` when they do not parse.
/// (The command parses every message it gets and filters it again by its table.)
fn route_table(r: &Message<'_>) -> Option<u32> {
    let (h, attrs) = r.family_header::<RtMsg>().ok()?;
    for a in attrs {
        let a = a.ok()?;
        if a.ty() == RTA_TABLE {
            return a.u32().ok();
        }
    }
    Some(u32::from(h.table))
}

/// `RTM_GETNEXTHOP` dump with the kernel's filters (as the mirror applies them): groups only
/// (`NHA_GROUPS`); with a family, a device or a master, only single nexthops of that
/// family, out of that device, whose device has that master.
fn nexthop_dump(
    view: &MirrorView,
    m: &Message<'_>,
    give: &mut dyn FnMut(&Message<'_>) -> bool,
    skipped: &Cell<u64>,
) -> Result<bool, ViewError> {
    let Ok((h, attrs)) = m.family_header::<NhMsg>() else {
        return Ok(false);
    };
    let (mut oif, mut master, mut groups) = (0u32, 0u32, false);
    for a in attrs {
        let Ok(a) = a else { return Ok(false) };
        match a.ty() {
            NHA_OIF => oif = a.u32().unwrap_or(0),
            NHA_MASTER => master = a.u32().unwrap_or(0),
            NHA_GROUPS => groups = true,
            NHA_FDB | NHA_OP_FLAGS => {}
            // The mirror refuses what the kernel refuses: let the socket give that error.
            _ => return Ok(false),
        }
    }
    let family = h.family;
    let mut link = Vec::new();
    let mut master_of = |ifindex: u32| -> Option<u32> {
        link.clear();
        view.link(ifindex, &mut link).ok()?.then_some(())?;
        let msg = Messages::new(&link).next()?.ok()?;
        let (_, attrs) = msg.family_header::<IfInfoMsg>().ok()?;
        attrs
            .find(IFLA_MASTER)?
            .ok()?
            .u32()
            .ok()
            .filter(|&m| m != 0)
    };
    let mut filtered = |v: &NexthopObjectView<'_>| -> bool {
        if groups && !v.is_group() {
            return true;
        }
        if oif == 0 && master == 0 && family == AF_UNSPEC {
            return false;
        }
        if v.is_group() || (family != AF_UNSPEC && v.family() != family) {
            return true;
        }
        let dev = v.oif();
        if oif != 0 && dev != Some(oif) {
            return true;
        }
        master != 0 && dev.and_then(&mut master_of) != Some(master)
    };
    let w = view.nexthops(|n| match NexthopObjectView::parse(n) {
        Ok(v) if v.id().is_some() && !filtered(&v) => give(n),
        _ => true,
    })?;
    note(skipped, w);
    Ok(true)
}

/// `ct list` through the view: the conntrack dump request `req` as the mirror answers it
/// (family from the request's `nfgenmsg`, `CTA_MARK`/`CTA_MARK_MASK`, `CTA_ZONE`), and with
/// `src` (the original source address the command filters on) only that address's entries,
/// read through the address index instead of a walk of the table. `Ok(false)`: the mirror
/// publishes no conntrack table, or an empty one (the socket answers: nothing, or that it
/// does not mirror conntrack).
pub fn ct_dump(
    view: &MirrorView,
    req: &[u8],
    src: Option<std::net::IpAddr>,
    f: Each<'_>,
) -> Result<bool> {
    // A mirror that does not mirror conntrack (ctnetlink unavailable) still has an empty
    // table in its region, but answers conntrack requests on its socket with an error: an
    // empty table goes to the socket, which lists nothing or gives that error.
    match view.ct_count() {
        Ok(0) | Err(ViewError::NoTable(_)) => return Ok(false),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(Ok(m)) = Messages::new(req).next() else {
        return Ok(false);
    };
    let Ok((h, attrs)) = m.family_header::<nlkit_wire::NfGenMsg>() else {
        return Ok(false);
    };
    let mut filter = nlkit_view::CtFilter {
        family: Some(h.family),
        src,
        ..Default::default()
    };
    let (mut mark, mut mask) = (None, u32::MAX);
    for a in attrs {
        let Ok(a) = a else { return Ok(false) };
        match a.ty() {
            CTA_MARK => mark = a.be32().ok(),
            CTA_MARK_MASK => mask = a.be32().unwrap_or(u32::MAX),
            CTA_ZONE => filter.zone = a.be16().ok(),
            _ => {}
        }
    }
    filter.mark = mark.map(|m| (m, mask));
    let mut failed = None;
    let mut give = |msg: &[u8]| {
        let r = match Messages::new(msg).next() {
            Some(Ok(m)) => f(&m),
            Some(Err(e)) => Err(nlkit_socket::Error::Protocol(e)),
            None => Err(nlkit_socket::Error::Protocol(
                nlkit_wire::WireError::Truncated {
                    what: "nlmsghdr",
                    needed: nlkit_wire::NLMSG_HDRLEN,
                    available: msg.len(),
                },
            )),
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    };
    let walked = if src.is_some() {
        // The index hands entries out in chain order; the socket lists them in slot order.
        // Sorted by slot, the listing is the socket's, line for line.
        // The messages back to back in one buffer (no allocation per entry), sorted by
        // their slots' positions.
        let (mut found, mut bytes) = (Vec::new(), Vec::new());
        let w = view.ct_walk(&filter, |e, msg| {
            found.push((e.slot, bytes.len(), msg.len()));
            bytes.extend_from_slice(msg);
            true
        });
        found.sort_unstable_by_key(|&(slot, _, _)| slot);
        for &(_, at, len) in &found {
            if !give(&bytes[at..at + len]) {
                break;
            }
        }
        w
    } else {
        view.ct_walk(&filter, |_, msg| give(msg))
    };
    if let Some(e) = failed {
        return Err(e.into());
    }
    match walked {
        Ok(w) => {
            if w.skipped > 0 {
                warn_interrupted();
            }
            Ok(true)
        }
        Err(ViewError::NoTable(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `ct get` through the view: the tuple of the conntrack get request `req`, read as the
/// mirror reads it (its `CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`, with `CTA_ZONE`), looked up
/// by original or reply tuple. `Ok(None)`: not found, or no conntrack table (the socket
/// answers, with the mirror's own error).
pub fn ct_get(view: &MirrorView, req: &[u8], out: &mut Vec<u8>) -> Result<Option<()>> {
    let Some(Ok(m)) = Messages::new(req).next() else {
        return Ok(None);
    };
    let Ok((_, attrs)) = m.family_header::<nlkit_wire::NfGenMsg>() else {
        return Ok(None);
    };
    let (mut tuple, mut zone) = (None, 0u16);
    for a in attrs.flatten() {
        match a.ty() {
            CTA_TUPLE_ORIG | CTA_TUPLE_REPLY if tuple.is_none() => {
                tuple = nlkit_view::keys::parse_tuple(&a);
            }
            CTA_ZONE => zone = a.be16().unwrap_or(0),
            _ => {}
        }
    }
    let Some(t) = tuple else { return Ok(None) };
    let t = if t.zone == 0 { t.with_zone(zone) } else { t };
    match view.ct_get(&t, out) {
        Ok(Some(_)) => Ok(Some(())),
        Ok(None) | Err(ViewError::NoTable(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
