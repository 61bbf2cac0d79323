//! How route events change a route entry that may hold several kernel routes.
//!
//! Several kernel routes can share a [`RouteKey`](crate::RouteKey):
//! - IPv4: `ip route append`/`prepend` add aliases with the same prefix, TOS and priority;
//! - IPv6: routes without a gateway (device routes, e.g. `fe80::/64` on every link) are
//!   separate routes per device, while gateway routes with the same key merge into one
//!   multipath (ECMP) route that is dumped and notified as one message with `RTA_MULTIPATH`.
//!
//! A sub-route is told apart by its *nexthop identity*: output interface, gateway, and whether
//! it is multipath. Deleting one nexthop of an IPv6 ECMP route is notified with that nexthop
//! only while the kernel keeps the rest; that case asks for a resync.

use nlkit_wire::consts::*;
use nlkit_wire::{Message, Messages, RtMsg};

use crate::store::body;

/// Output interface, gateway bytes, multipath.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    oif: Option<u32>,
    gateway: Option<Vec<u8>>,
    multipath: bool,
}

fn identity(m: &Message<'_>) -> Identity {
    let mut id = Identity {
        oif: None,
        gateway: None,
        multipath: false,
    };
    if let Ok((_, attrs)) = m.family_header::<RtMsg>() {
        for a in attrs.flatten() {
            match a.ty() {
                RTA_OIF => id.oif = a.u32().ok(),
                RTA_GATEWAY | RTA_VIA => id.gateway = Some(a.payload().to_vec()),
                RTA_MULTIPATH => id.multipath = true,
                _ => {}
            }
        }
    }
    id
}

fn parts(old: Option<&[u8]>) -> Vec<&[u8]> {
    match old {
        Some(o) => Messages::new(o).flatten().map(|m| m.bytes()).collect(),
        None => Vec::new(),
    }
}

fn id_of(bytes: &[u8]) -> Option<Identity> {
    Message::parse(bytes).ok().map(|(m, _)| identity(&m))
}

fn join(list: &[&[u8]], out: &mut Vec<u8>) {
    for p in list {
        out.extend_from_slice(p);
        out.resize(nlkit_wire::align(out.len()), 0);
    }
}

/// The entry after a `RTM_NEWROUTE` event carrying `new` (normalised) with notification
/// `flags`.
pub(crate) fn apply_new(old: Option<&[u8]>, new: &[u8], flags: u16, v6: bool) -> Vec<u8> {
    let olds = parts(old);
    let Some(nid) = id_of(new) else {
        return new.to_vec();
    };
    let mut out = Vec::with_capacity(new.len() + old.map_or(0, <[u8]>::len));
    if v6 {
        // One route per identity; a multipath route absorbs the gateway routes of its key.
        let keep: Vec<&[u8]> = olds
            .into_iter()
            .filter(|o| match id_of(o) {
                Some(oid) => {
                    oid != nid
                        && !(nid.multipath && (oid.multipath || oid.gateway.is_some()))
                        && !(nid.gateway.is_some() && oid.multipath && flags & NLM_F_REPLACE != 0)
                }
                None => false,
            })
            .collect();
        join(&keep, &mut out);
        out.extend_from_slice(new);
        return out;
    }
    if olds.is_empty() {
        return new.to_vec();
    }
    if flags & NLM_F_REPLACE != 0 {
        // The kernel replaced the first alias of the key.
        out.extend_from_slice(new);
        join(&olds[1..], &mut out);
    } else if flags & NLM_F_APPEND != 0 {
        let keep: Vec<&[u8]> = olds.into_iter().filter(|o| body(o) != body(new)).collect();
        join(&keep, &mut out);
        out.extend_from_slice(new);
    } else {
        let keep: Vec<&[u8]> = olds
            .into_iter()
            .filter(|o| id_of(o).as_ref() != Some(&nid))
            .collect();
        out.extend_from_slice(new);
        join(&keep, &mut out);
    }
    out
}

/// The entry after a `RTM_DELROUTE` event carrying `del` (normalised): `None` when the key is
/// gone, and whether the mirror cannot tell what the kernel kept (resync needed).
pub(crate) fn apply_del(old: &[u8], del: &[u8], v6: bool) -> (Option<Vec<u8>>, bool) {
    let olds = parts(Some(old));
    let Some(did) = id_of(del) else {
        return (None, true);
    };
    let pos = olds
        .iter()
        .position(|o| body(o) == body(del))
        .or_else(|| olds.iter().position(|o| id_of(o).as_ref() == Some(&did)));
    let resync = match pos {
        Some(_) => false,
        // One nexthop of an IPv6 ECMP route: the rest stays in the kernel.
        None if v6 && olds.iter().any(|o| id_of(o).is_some_and(|i| i.multipath)) => {
            return (Some(old.to_vec()), true);
        }
        None => olds.len() > 1,
    };
    let drop_at = pos.unwrap_or(0);
    let keep: Vec<&[u8]> = olds
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != drop_at)
        .map(|(_, o)| o)
        .collect();
    if keep.is_empty() {
        return (None, resync);
    }
    let mut out = Vec::new();
    join(&keep, &mut out);
    (Some(out), resync)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::MessageBuilder;

    fn route(oif: u32, gw: Option<[u8; 4]>) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWROUTE, 0, 0);
        b.header(&RtMsg {
            family: AF_INET,
            dst_len: 24,
            ..Default::default()
        });
        b.attr_bytes(RTA_DST, &[10, 0, 0, 0]);
        if let Some(g) = gw {
            b.attr_bytes(RTA_GATEWAY, &g);
        }
        b.attr_u32(RTA_OIF, oif);
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    #[test]
    fn append_then_delete_one_alias() {
        let a = route(2, None);
        let b = route(3, None);
        let e = apply_new(None, &a, NLM_F_CREATE, false);
        let e = apply_new(Some(&e), &b, NLM_F_CREATE | NLM_F_APPEND, false);
        assert_eq!(Messages::new(&e).count(), 2);
        let (left, resync) = apply_del(&e, &a, false);
        assert!(!resync);
        assert_eq!(left.unwrap(), b);
        let (left, _) = apply_del(&b, &b, false);
        assert!(left.is_none());
    }

    #[test]
    fn ipv6_device_routes_share_a_key() {
        let a = route(2, None);
        let b = route(3, None);
        let e = apply_new(None, &a, 0, true);
        let e = apply_new(Some(&e), &b, 0, true);
        assert_eq!(Messages::new(&e).count(), 2);
        let e = apply_new(Some(&e), &b, 0, true);
        assert_eq!(Messages::new(&e).count(), 2);
    }
}
