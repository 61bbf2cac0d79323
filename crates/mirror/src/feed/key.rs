//! [`FeedKey`]: which mirror entry a feed message or a stored entry concerns.

use nlkit_table::ConnKey;
use nlkit_wire::Message;

use crate::keys::{ct_info, AddrKey, LinkKey, NeighKey, NexthopKey, RouteKey};
use crate::tables::{TableId, Tables};

/// The identity of one mirror entry, across tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FeedKey {
    Link(LinkKey),
    Addr(AddrKey),
    Route(RouteKey),
    Neigh(NeighKey),
    Nexthop(NexthopKey),
    Ct(ConnKey),
}

impl FeedKey {
    /// The key of the entry the first message of `msgs` (of table `t`) concerns.
    pub(crate) fn of(t: TableId, msgs: &[u8]) -> Option<FeedKey> {
        let (m, _) = Message::parse(msgs).ok()?;
        Self::of_message(t, &m)
    }

    pub(crate) fn of_message(t: TableId, m: &Message<'_>) -> Option<FeedKey> {
        Some(match t {
            TableId::Links => FeedKey::Link(LinkKey::from_msg(m)?),
            TableId::Addrs4 | TableId::Addrs6 => FeedKey::Addr(AddrKey::from_msg(m)?),
            TableId::Routes4 | TableId::Routes6 => FeedKey::Route(RouteKey::from_msg(m)?),
            TableId::Neigh4 | TableId::Neigh6 => FeedKey::Neigh(NeighKey::from_msg(m)?),
            TableId::Nexthops => FeedKey::Nexthop(NexthopKey::from_msg(m)?),
            TableId::Rules4 | TableId::Rules6 => return None,
            TableId::Conntrack => FeedKey::Ct(ct_info(m)?.original),
        })
    }

    /// Appends the entry's current messages to `out`; returns whether it exists.
    pub(crate) fn read_into(&self, tables: &Tables, out: &mut Vec<u8>) -> bool {
        let got = match self {
            FeedKey::Link(k) => tables.links.get_bytes(k),
            FeedKey::Addr(k) => tables.addrs[usize::from(k.local.is_ipv6())].get_bytes(k),
            FeedKey::Route(k) => tables.routes[usize::from(k.dst.is_ipv6())].get_bytes(k),
            FeedKey::Neigh(k) => tables.neigh[usize::from(k.dst.is_ipv6())].get_bytes(k),
            FeedKey::Nexthop(k) => tables.nexthops.get_bytes(k),
            FeedKey::Ct(t) => return tables.ct.get_into(t, out),
        };
        match got {
            Some(b) => {
                out.extend_from_slice(&b);
                true
            }
            None => false,
        }
    }
}
