//! Recording changes: each table change of the sync thread and its dump threads is made
//! through a [`FeedWriter`](super::FeedWriter) and appended to the feed after the table write.
//!
//! * Kernel events are recorded as the kernel sent them (type, flags and bytes; sequence
//!   number and port id zeroed), once applied.
//! * What a resync dump changed becomes a `NEW` event flagged `FEED_SYNTHESIZED` (the dumped
//!   message), and what its sweep removed a `DEL` event flagged `FEED_SYNTHESIZED` (the stored
//!   message, retyped): routes gone with a link or an address, neighbours flushed with their
//!   link, conntrack entries a verification dump no longer lists.
//! * Addresses and neighbours the mirror drops with a deleted link become synthesized `DEL`
//!   events after the link's own `RTM_DELLINK`.

use nlkit_table::ConnKey;
use nlkit_wire::consts::*;
use nlkit_wire::feed::FEED_SYNTHESIZED;
use nlkit_wire::{IfInfoMsg, Message, MessageHeaderMut};

use super::Feed;
use crate::fill::Filled;
use crate::keys::{route_info, AddrKey, NeighKey, NexthopKey, StoreKey};
use crate::store::Store;
use crate::tables::{Followup, TableId, Tables};

/// The table a kernel event belongs to, if the mirror applies it.
fn event_table(m: &Message<'_>) -> Option<TableId> {
    Some(match m.ty() {
        RTM_NEWLINK | RTM_DELLINK => {
            let (h, _) = m.family_header::<IfInfoMsg>().ok()?;
            if h.family != AF_UNSPEC || h.index <= 0 {
                return None;
            }
            TableId::Links
        }
        RTM_NEWADDR | RTM_DELADDR => {
            let k = AddrKey::from_msg(m)?;
            if k.local.is_ipv6() {
                TableId::Addrs6
            } else {
                TableId::Addrs4
            }
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            let i = route_info(m)?;
            if i.cloned {
                return None;
            }
            if i.key.dst.is_ipv6() {
                TableId::Routes6
            } else {
                TableId::Routes4
            }
        }
        RTM_NEWNEXTHOP | RTM_DELNEXTHOP => {
            NexthopKey::from_msg(m)?;
            TableId::Nexthops
        }
        RTM_NEWNEIGH | RTM_DELNEIGH => {
            if NeighKey::from_msg(m)?.dst.is_ipv6() {
                TableId::Neigh6
            } else {
                TableId::Neigh4
            }
        }
        t if t == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW)
            || t == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE) =>
        {
            TableId::Conntrack
        }
        _ => return None,
    })
}

/// Applies one kernel event to the tables and records it (with the deletions it implied).
pub(crate) fn apply_event(tables: &Tables, feed: &Feed, m: &Message<'_>, gen: u64) -> Followup {
    let mut w = feed.writer();
    let mut f = tables.apply_event(m, gen);
    if w.recording() {
        if let Some(t) = event_table(m) {
            w.push(t, 0, m.bytes().to_vec());
        }
        for (t, msgs) in f.removed.drain(..) {
            w.push(t, FEED_SYNTHESIZED, as_deletion(t, msgs));
        }
    }
    f
}

/// Applies one dumped message and records what it changed (during a resync).
pub(crate) fn apply_dump(tables: &Tables, feed: &Feed, t: TableId, m: &Message<'_>, gen: u64) {
    let mut w = feed.writer();
    if tables.apply_dump(t, m, gen) && w.recording() {
        let mut b = m.bytes().to_vec();
        // A dumped object as an event: NLM_F_MULTI means nothing there; a conntrack entry the
        // mirror learns from a dump is reported on the "new" group.
        let flags = if t == TableId::Conntrack {
            NLM_F_CREATE
        } else {
            0
        };
        if let Ok(mut h) = MessageHeaderMut::new(&mut b) {
            h.set_flags(flags);
        }
        w.push(t, FEED_SYNTHESIZED, b);
    }
}

/// Retypes stored messages (`RTM_NEW*`, `IPCTNL_MSG_CT_NEW`) as the deletions of the same
/// objects, flags cleared.
pub(crate) fn as_deletion(t: TableId, mut msgs: Vec<u8>) -> Vec<u8> {
    let del = match t {
        TableId::Links => RTM_DELLINK,
        TableId::Addrs4 | TableId::Addrs6 => RTM_DELADDR,
        TableId::Routes4 | TableId::Routes6 => RTM_DELROUTE,
        TableId::Neigh4 | TableId::Neigh6 => RTM_DELNEIGH,
        TableId::Nexthops => RTM_DELNEXTHOP,
        TableId::Rules4 | TableId::Rules6 => RTM_DELRULE,
        TableId::Conntrack => nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE),
    };
    // A walk stopped by a malformed length leaves the rest as it was (stored messages come
    // from the kernel and were validated when they were stored).
    let _ = MessageHeaderMut::for_each(&mut msgs, |_, mut h| {
        h.set_ty(del);
        h.set_flags(0);
    });
    msgs
}

/// Sweeps one store, each removal recorded as a synthesized deletion.
fn sweep_store<K: StoreKey>(store: &Store<K>, feed: &Feed, t: TableId, gen: u64) -> usize {
    let mut doomed = Vec::new();
    store.sweep(gen, |k, e| {
        doomed.push((*k, e.messages().to_vec()));
        false // collected only: each is removed below, under the feed's writer
    });
    let mut n = 0;
    for (k, msgs) in doomed {
        let mut w = feed.writer();
        if store.remove(&k) {
            n += 1;
            w.push(t, FEED_SYNTHESIZED, as_deletion(t, msgs));
        }
    }
    n
}

fn sweep_ct(tables: &Tables, feed: &Feed, gen: u64) -> usize {
    let doomed: Vec<(ConnKey, Vec<u8>)> = tables.ct.unconfirmed(gen);
    let mut n = 0;
    for (tuple, msg) in doomed {
        let mut w = feed.writer();
        if tables.ct.remove(&tuple) {
            n += 1;
            w.push(
                TableId::Conntrack,
                FEED_SYNTHESIZED,
                as_deletion(TableId::Conntrack, msg),
            );
        }
    }
    n
}

/// Removes what a fill did not confirm, recording each removal (the plain, faster sweep of
/// [`crate::fill::sweep`] while the feed does not record yet).
pub(crate) fn sweep(tables: &Tables, feed: &Feed, f: &Filled) -> usize {
    if !feed.is_recording() {
        return crate::fill::sweep(tables, f);
    }
    let g = f.gen;
    match f.table {
        TableId::Links => sweep_store(&tables.links, feed, f.table, g),
        TableId::Addrs4 => sweep_store(&tables.addrs[0], feed, f.table, g),
        TableId::Addrs6 => sweep_store(&tables.addrs[1], feed, f.table, g),
        TableId::Routes4 | TableId::Routes6 => {
            let store = &tables.routes[usize::from(f.table == TableId::Routes6)];
            let mut doomed = Vec::new();
            store.sweep(g, |k, e| {
                doomed.push((*k, e.messages().to_vec()));
                false
            });
            let mut n = 0;
            for (k, msgs) in doomed {
                let mut w = feed.writer();
                if store.remove(&k) {
                    n += 1;
                    w.push(f.table, FEED_SYNTHESIZED, as_deletion(f.table, msgs));
                }
            }
            n
        }
        TableId::Neigh4 => sweep_store(&tables.neigh[0], feed, f.table, g),
        TableId::Neigh6 => sweep_store(&tables.neigh[1], feed, f.table, g),
        TableId::Nexthops => sweep_store(&tables.nexthops, feed, f.table, g),
        // Policy rules are not in the feed (their lists have no per-rule key yet).
        TableId::Rules4 | TableId::Rules6 => crate::fill::sweep(tables, f),
        TableId::Conntrack => sweep_ct(tables, feed, g),
    }
}
