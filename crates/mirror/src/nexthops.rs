//! Nexthop objects: which of their events change routes without a route notification.
//!
//! Routes may use a nexthop object (`ip route add … nhid 20`). When the object is deleted the
//! kernel deletes those routes, and when it is replaced or a group it belongs to changes, the
//! kernel changes them, all without `RTM_DELROUTE`/`RTM_NEWROUTE` for the routes. Besides
//! keeping the objects themselves (the nexthops table), the sync thread watches
//! `RTNLGRP_NEXTHOP` for these and resyncs the routes of both families (a group mixes families, and IPv4 routes may use IPv6 gateways) on:
//!
//! - every `RTM_DELNEXTHOP` (deleting a member also changes its groups);
//! - an `RTM_NEWNEXTHOP` for an id that already existed (a replace, or a group whose members
//!   changed) — or that cannot be decoded.
//!
//! A new object is not yet used by any route, so creating one costs nothing. To tell the two
//! apart the sync thread keeps the set of existing ids: loaded by a nexthop dump before each
//! route resync (after the event socket joined the group, so no creation falls between the
//! two), then kept by the events. Without the dump (a kernel without nexthop objects), every
//! `RTM_NEWNEXTHOP` resyncs.

use std::collections::HashSet;

use nlkit_route::{request, NexthopObjectView};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder};

/// Dump attempts before an interrupted nexthop dump is given up (the set is then unknown).
const ATTEMPTS: u32 = 5;

/// The nexthop ids that exist in the kernel, as far as the sync thread knows.
///
/// Concurrency contract: owned by the sync thread.
#[derive(Debug, Default)]
pub(crate) struct NexthopIds {
    ids: HashSet<u32>,
    /// `ids` was loaded from a dump (else every new object is treated as a replace).
    loaded: bool,
}

impl NexthopIds {
    /// Reloads the set from a kernel dump; when that fails the set is marked unknown.
    pub(crate) fn reload(&mut self) {
        match dump_ids() {
            Ok(Some(ids)) => {
                self.ids = ids;
                self.loaded = true;
            }
            r => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "nexthop dump failed: every nexthop event resyncs routes");
                } else {
                    tracing::debug!(
                        "nexthop dump kept being interrupted: every nexthop event resyncs routes"
                    );
                }
                self.ids.clear();
                self.loaded = false;
            }
        }
    }

    /// Records one `RTM_NEWNEXTHOP`/`RTM_DELNEXTHOP` event; returns whether routes may have
    /// changed silently (the caller resyncs both route tables).
    pub(crate) fn on_event(&mut self, m: &Message<'_>) -> bool {
        let id = NexthopObjectView::parse(m).ok().and_then(|v| v.id());
        match (m.ty(), id) {
            (RTM_NEWNEXTHOP, Some(id)) => !self.ids.insert(id) || !self.loaded,
            (RTM_DELNEXTHOP, Some(id)) => {
                self.ids.remove(&id);
                true
            }
            _ => true,
        }
    }
}

/// Whether `ty` is a nexthop-object message.
pub(crate) fn is_nexthop_event(ty: u16) -> bool {
    matches!(ty, RTM_NEWNEXTHOP | RTM_DELNEXTHOP)
}

/// The ids of every nexthop object; `None` when every attempt was interrupted or an object
/// did not decode (a missed id would skip a needed resync, so a partial set is not used).
fn dump_ids() -> Result<Option<HashSet<u32>>, nlkit_socket::Error> {
    let mut sock = Socket::open(Protocol::Route)?;
    for _ in 0..ATTEMPTS {
        let mut req = MessageBuilder::new();
        request::dump_nexthops(&mut req, 0, AF_UNSPEC, &request::NexthopFilter::default())?;
        let mut ids = HashSet::new();
        let mut undecoded = false;
        let end = sock.dump(&mut req, |m| {
            match NexthopObjectView::parse(m).ok().and_then(|v| v.id()) {
                Some(id) => {
                    ids.insert(id);
                }
                None => undecoded = true,
            }
            Ok::<(), nlkit_socket::Error>(())
        })?;
        if undecoded {
            return Ok(None);
        }
        if !end.interrupted {
            return Ok(Some(ids));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::Messages;
    use nlkit_wire::NhMsg;

    fn event(ty: u16, id: Option<u32>) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(ty, 0, 0);
        b.header(&NhMsg::default());
        if let Some(id) = id {
            b.attr_u32(NHA_ID, id);
        }
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    fn on(ids: &mut NexthopIds, ty: u16, id: Option<u32>) -> bool {
        let bytes = event(ty, id);
        let m = Messages::new(&bytes).next().unwrap().unwrap();
        ids.on_event(&m)
    }

    #[test]
    fn creation_is_free_replace_and_delete_resync() {
        let mut ids = NexthopIds {
            ids: HashSet::from([20]),
            loaded: true,
        };
        assert!(
            !on(&mut ids, RTM_NEWNEXTHOP, Some(21)),
            "a new object has no routes"
        );
        assert!(on(&mut ids, RTM_NEWNEXTHOP, Some(21)), "a replace");
        assert!(
            on(&mut ids, RTM_NEWNEXTHOP, Some(20)),
            "a replace of a dumped id"
        );
        assert!(on(&mut ids, RTM_DELNEXTHOP, Some(20)));
        assert!(
            on(&mut ids, RTM_DELNEXTHOP, Some(99)),
            "every deletion resyncs"
        );
        assert!(
            !on(&mut ids, RTM_NEWNEXTHOP, Some(20)),
            "re-created after its deletion"
        );
        assert!(on(&mut ids, RTM_NEWNEXTHOP, None), "undecodable: resync");
        let mut unknown = NexthopIds::default();
        assert!(
            on(&mut unknown, RTM_NEWNEXTHOP, Some(5)),
            "no dump: every event resyncs"
        );
    }
}
