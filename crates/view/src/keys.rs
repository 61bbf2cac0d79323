//! What identifies each kind of kernel object, and how to read that identity from a message.
//!
//! | table | key | source |
//! |---|---|---|
//! | links | ifindex | `ifinfomsg.ifi_index` |
//! | addresses | family, ifindex, prefix length, local address | `ifaddrmsg` + `IFA_LOCAL` (else `IFA_ADDRESS`) |
//! | routes | family, table, dst, dst_len, src, src_len, tos, priority | `rtmsg` + `RTA_TABLE`, `RTA_DST`, `RTA_SRC`, `RTA_PRIORITY` |
//! | neighbours | family, ifindex, dst | `ndmsg` + `NDA_DST` |
//! | nexthop objects | id | `NHA_ID` |
//! | policy rules | none: one list per family in the kernel's order (see `rules`) | — |
//! | conntrack | original tuple + zone | `CTA_TUPLE_ORIG`, `CTA_ZONE` |
//!
//! Routes: an IPv6 multipath (ECMP) route is one kernel object with several nexthops, dumped
//! and notified as one message with `RTA_MULTIPATH`; deleting one of its nexthops is notified
//! as a `RTM_DELROUTE` naming that nexthop only, so the sync code re-dumps IPv6 routes when such
//! a partial delete arrives. IPv4 `ip route append` can create several routes with the same
//! key; a route entry therefore holds one *or more* messages (see `store`).
//!
//! The fields are read by the key views of `nlkit-route` ([`RouteKeyView`], [`AddrKeyView`],
//! [`NeighKeyView`]) and the tuple decoder of `nlkit-conntrack` ([`nlkit_conntrack::Tuple`]);
//! this module only turns them into the fixed-size keys of the mirror's tables.
//!
//! Nothing here panics on any input: a message that does not carry a valid key yields `None`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nlkit_conntrack::L4;
use nlkit_route::{AddrKeyView, NeighKeyView, NexthopObjectView, RouteKeyView};
use nlkit_table::{ConnKey, TableKey};
use nlkit_wire::consts::*;
use nlkit_wire::{Attr, IfInfoMsg, Message};

fn ip_words(a: &IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(v4) => (0, u64::from(u32::from(*v4))),
        IpAddr::V6(v6) => {
            let x = u128::from(*v6);
            ((x >> 64) as u64, x as u64)
        }
    }
}

fn words_ip(hi: u64, lo: u64, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(u128::from(hi) << 64 | u128::from(lo)))
    } else {
        IpAddr::V4(Ipv4Addr::from(lo as u32))
    }
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// Whether `family` is IPv6 (`Some(false)` for IPv4, `None` for any other family).
fn inet6(family: u8) -> Option<bool> {
    match family {
        AF_INET => Some(false),
        AF_INET6 => Some(true),
        _ => None,
    }
}

/// A link: its interface index.
///
/// ```
/// use nlkit_view::LinkKey;
/// use nlkit_table::TableKey;
/// let k = LinkKey { ifindex: 7 };
/// assert_eq!(LinkKey::from_words(&k.to_words()), k);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkKey {
    /// `ifi_index`.
    pub ifindex: u32,
}

impl TableKey for LinkKey {
    type Words = [u64; 1];
    fn to_words(&self) -> [u64; 1] {
        [u64::from(self.ifindex)]
    }
    fn from_words(w: &[u64; 1]) -> Self {
        LinkKey {
            ifindex: w[0] as u32,
        }
    }
}

impl LinkKey {
    /// The key of a `RTM_NEWLINK`/`RTM_DELLINK` message.
    pub fn from_msg(msg: &Message<'_>) -> Option<Self> {
        let (h, _) = msg.family_header::<IfInfoMsg>().ok()?;
        (h.index > 0).then_some(LinkKey {
            ifindex: h.index as u32,
        })
    }
}

/// An address: family, interface, prefix length and local address.
///
/// ```
/// use nlkit_view::AddrKey;
/// use nlkit_table::TableKey;
/// let k = AddrKey { ifindex: 2, prefix_len: 64, local: "fd00::1".parse().unwrap() };
/// assert_eq!(AddrKey::from_words(&k.to_words()), k);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrKey {
    /// `ifa_index`.
    pub ifindex: u32,
    /// `ifa_prefixlen`.
    pub prefix_len: u8,
    /// `IFA_LOCAL`, or `IFA_ADDRESS` when there is no local address (IPv6).
    pub local: IpAddr,
}

impl TableKey for AddrKey {
    type Words = [u64; 3];
    fn to_words(&self) -> [u64; 3] {
        let (hi, lo) = ip_words(&self.local);
        let v6 = u64::from(self.local.is_ipv6());
        [
            u64::from(self.ifindex) | u64::from(self.prefix_len) << 32 | v6 << 40,
            hi,
            lo,
        ]
    }
    fn from_words(w: &[u64; 3]) -> Self {
        AddrKey {
            ifindex: w[0] as u32,
            prefix_len: (w[0] >> 32) as u8,
            local: words_ip(w[1], w[2], w[0] >> 40 & 1 == 1),
        }
    }
}

impl AddrKey {
    /// The key of a `RTM_NEWADDR`/`RTM_DELADDR` message (IPv4 or IPv6 only).
    pub fn from_msg(msg: &Message<'_>) -> Option<Self> {
        let k = AddrKeyView::parse(msg).ok()?;
        inet6(k.family())?;
        Some(AddrKey {
            ifindex: k.index(),
            prefix_len: k.prefix_len(),
            local: k.local()?,
        })
    }
}

/// A route: family, table, destination and source prefixes, TOS and priority (metric).
///
/// ```
/// use nlkit_view::RouteKey;
/// use nlkit_table::TableKey;
/// let k = RouteKey {
///     table: 1000, dst: "10.1.0.0".parse().unwrap(), dst_len: 16,
///     src: "0.0.0.0".parse().unwrap(), src_len: 0, tos: 0, priority: 20,
/// };
/// assert_eq!(RouteKey::from_words(&k.to_words()), k);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// Routing table id (`RTA_TABLE`, else `rtm_table`).
    pub table: u32,
    /// Destination (unspecified address for a default route).
    pub dst: IpAddr,
    /// Destination prefix length.
    pub dst_len: u8,
    /// Source prefix (IPv6 source-specific routes), unspecified if none.
    pub src: IpAddr,
    /// Source prefix length.
    pub src_len: u8,
    /// `rtm_tos`.
    pub tos: u8,
    /// `RTA_PRIORITY` (0 when absent).
    pub priority: u32,
}

impl TableKey for RouteKey {
    type Words = [u64; 6];
    fn to_words(&self) -> [u64; 6] {
        let (d0, d1) = ip_words(&self.dst);
        let (s0, s1) = ip_words(&self.src);
        let v6 = u64::from(self.dst.is_ipv6());
        [
            u64::from(self.table) | u64::from(self.priority) << 32,
            u64::from(self.dst_len)
                | u64::from(self.src_len) << 8
                | u64::from(self.tos) << 16
                | v6 << 24,
            d0,
            d1,
            s0,
            s1,
        ]
    }
    fn from_words(w: &[u64; 6]) -> Self {
        let v6 = w[1] >> 24 & 1 == 1;
        RouteKey {
            table: w[0] as u32,
            priority: (w[0] >> 32) as u32,
            dst_len: w[1] as u8,
            src_len: (w[1] >> 8) as u8,
            tos: (w[1] >> 16) as u8,
            dst: words_ip(w[2], w[3], v6),
            src: words_ip(w[4], w[5], v6),
        }
    }
}

/// What the sync code needs of a route message: its key, whether it is a cloned (cache) route,
/// and its output interface.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// The route's key.
    pub key: RouteKey,
    /// `RTM_F_CLONED`: a cached route, not a FIB entry.
    pub cloned: bool,
    /// `RTA_OIF`, when present.
    pub oif: Option<u32>,
}

impl RouteKey {
    /// The key of a `RTM_NEWROUTE`/`RTM_DELROUTE` message (IPv4 or IPv6 only).
    pub fn from_msg(msg: &Message<'_>) -> Option<Self> {
        route_info(msg).map(|i| i.key)
    }
}

/// Reads a route message's [`RouteInfo`].
pub fn route_info(msg: &Message<'_>) -> Option<RouteInfo> {
    let k = RouteKeyView::parse(msg).ok()?;
    let v6 = inet6(k.family())?;
    Some(RouteInfo {
        key: RouteKey {
            table: k.table(),
            dst: k.dst().unwrap_or_else(|| unspecified(v6)),
            dst_len: k.dst_len(),
            src: k.src().unwrap_or_else(|| unspecified(v6)),
            src_len: k.src_len(),
            tos: k.tos(),
            priority: k.priority().unwrap_or(0),
        },
        cloned: k.is_cloned(),
        oif: k.oif(),
    })
}

/// A neighbour: family, interface and destination address.
///
/// ```
/// use nlkit_view::NeighKey;
/// use nlkit_table::TableKey;
/// let k = NeighKey { ifindex: 3, dst: "10.0.0.9".parse().unwrap() };
/// assert_eq!(NeighKey::from_words(&k.to_words()), k);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighKey {
    /// `ndm_ifindex`.
    pub ifindex: u32,
    /// `NDA_DST`.
    pub dst: IpAddr,
}

impl TableKey for NeighKey {
    type Words = [u64; 3];
    fn to_words(&self) -> [u64; 3] {
        let (hi, lo) = ip_words(&self.dst);
        [
            u64::from(self.ifindex) | u64::from(self.dst.is_ipv6()) << 32,
            hi,
            lo,
        ]
    }
    fn from_words(w: &[u64; 3]) -> Self {
        NeighKey {
            ifindex: w[0] as u32,
            dst: words_ip(w[1], w[2], w[0] >> 32 & 1 == 1),
        }
    }
}

impl NeighKey {
    /// The key of a `RTM_NEWNEIGH`/`RTM_DELNEIGH` message (IPv4/IPv6, not proxy entries).
    pub fn from_msg(msg: &Message<'_>) -> Option<Self> {
        let k = NeighKeyView::parse(msg).ok()?;
        inet6(k.family())?;
        if k.is_proxy() || k.ifindex() <= 0 {
            return None;
        }
        Some(NeighKey {
            ifindex: k.ifindex() as u32,
            dst: k.dst()?,
        })
    }
}

/// A nexthop object (`ip nexthop`): its id.
///
/// ```
/// use nlkit_view::NexthopKey;
/// use nlkit_table::TableKey;
/// let k = NexthopKey { id: 20 };
/// assert_eq!(NexthopKey::from_words(&k.to_words()), k);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NexthopKey {
    /// `NHA_ID`.
    pub id: u32,
}

impl TableKey for NexthopKey {
    type Words = [u64; 1];
    fn to_words(&self) -> [u64; 1] {
        [u64::from(self.id)]
    }
    fn from_words(w: &[u64; 1]) -> Self {
        NexthopKey { id: w[0] as u32 }
    }
}

impl NexthopKey {
    /// The key of a `RTM_NEWNEXTHOP`/`RTM_DELNEXTHOP` message (`None` without an id).
    pub fn from_msg(msg: &Message<'_>) -> Option<Self> {
        let id = NexthopObjectView::parse(msg).ok()?.id()?;
        (id != 0).then_some(NexthopKey { id })
    }
}

/// A mirror table's key: read from the (first) message of an entry.
///
/// Every entry of a mirror store is filed under the key of its own first message,
/// so the store can re-file an entry from its bytes alone (when its log compacts).
///
/// ```
/// use nlkit_view::{LinkKey, StoreKey};
/// use nlkit_wire::{consts::*, IfInfoMsg, Message, MessageBuilder};
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWLINK, 0, 0);
/// b.header(&IfInfoMsg { index: 3, ..Default::default() });
/// b.finish().unwrap();
/// let (m, _) = Message::parse(b.as_bytes()).unwrap();
/// assert_eq!(LinkKey::of_message(&m), Some(LinkKey { ifindex: 3 }));
/// ```
pub trait StoreKey: TableKey + Copy + PartialEq + std::fmt::Debug {
    /// The key of the entry whose first message is `msg`.
    fn of_message(msg: &Message<'_>) -> Option<Self>;
}

impl StoreKey for LinkKey {
    fn of_message(msg: &Message<'_>) -> Option<Self> {
        LinkKey::from_msg(msg)
    }
}

impl StoreKey for AddrKey {
    fn of_message(msg: &Message<'_>) -> Option<Self> {
        AddrKey::from_msg(msg)
    }
}

impl StoreKey for RouteKey {
    fn of_message(msg: &Message<'_>) -> Option<Self> {
        RouteKey::from_msg(msg)
    }
}

impl StoreKey for NexthopKey {
    fn of_message(msg: &Message<'_>) -> Option<Self> {
        NexthopKey::from_msg(msg)
    }
}

impl StoreKey for NeighKey {
    fn of_message(msg: &Message<'_>) -> Option<Self> {
        NeighKey::from_msg(msg)
    }
}

/// What a conntrack message says about an entry.
#[derive(Debug, Clone, Copy)]
pub struct CtInfo {
    /// The original tuple, with the zone applied.
    pub original: ConnKey,
    /// The reply tuple, with the zone applied, when present.
    pub reply: Option<ConnKey>,
    /// `CTA_TIMEOUT` in seconds.
    pub timeout_s: Option<u32>,
    /// Offset of `CTA_TIMEOUT`'s 4-byte value within the message.
    pub timeout_off: Option<usize>,
    /// `CTA_MARK`, when present.
    pub mark: Option<u32>,
}

/// Parses a `CTA_TUPLE_*` nest into the table's tuple (zone 0 unless the nest carries one;
/// the message's `CTA_ZONE` is applied by the caller): ports, or for ICMP the id as the
/// source port and type and code as the destination port.
pub fn parse_tuple(nest: &Attr<'_>) -> Option<ConnKey> {
    let mut unknown = 0;
    let t = nlkit_conntrack::Tuple::parse(nest, &mut unknown).ok()?;
    if t.src.is_ipv6() != t.dst.is_ipv6() {
        return None;
    }
    let (sport, dport) = match t.l4 {
        L4::Ports { sport, dport } => (sport, dport),
        L4::Icmp { id, ty, code } => (id, u16::from(ty) << 8 | u16::from(code)),
        L4::Other => (0, 0),
    };
    Some(ConnKey::new(t.src, sport, t.dst, dport, t.proto).with_zone(t.zone.unwrap_or(0)))
}

/// A tuple's zone: its own `CTA_TUPLE_ZONE`, else the message's `CTA_ZONE`.
fn zoned(t: ConnKey, zone: u16) -> ConnKey {
    if t.zone == 0 {
        t.with_zone(zone)
    } else {
        t
    }
}

/// Reads the tuples, zone, timeout and mark of a ctnetlink message.
pub fn ct_info(msg: &Message<'_>) -> Option<CtInfo> {
    let (_, attrs) = msg.family_header::<nlkit_wire::NfGenMsg>().ok()?;
    let mut off = nlkit_wire::NLMSG_HDRLEN + 4;
    let (mut orig, mut reply, mut zone) = (None, None, None::<u16>);
    let mut info = CtInfo {
        original: ConnKey::new(unspecified(false), 0, unspecified(false), 0, 0),
        reply: None,
        timeout_s: None,
        timeout_off: None,
        mark: None,
    };
    for a in attrs {
        let a = a.ok()?;
        let here = off;
        off += nlkit_wire::align(nlkit_wire::NLA_HDRLEN + a.payload().len());
        match a.ty() {
            CTA_TUPLE_ORIG => orig = parse_tuple(&a),
            CTA_TUPLE_REPLY => reply = parse_tuple(&a),
            CTA_ZONE => zone = a.be16().ok(),
            CTA_TIMEOUT => {
                info.timeout_s = a.be32().ok();
                info.timeout_off = Some(here + nlkit_wire::NLA_HDRLEN);
            }
            CTA_MARK => info.mark = a.be32().ok(),
            _ => {}
        }
    }
    let z = zone.unwrap_or(0);
    info.original = zoned(orig?, z);
    info.reply = reply.map(|t| zoned(t, z));
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::{MessageBuilder, Messages, RtMsg};

    #[test]
    fn route_key_reads_table_and_priority() {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWROUTE, 0, 1);
        b.header(&RtMsg {
            family: AF_INET6,
            dst_len: 64,
            table: RT_TABLE_MAIN,
            ..Default::default()
        });
        b.attr_bytes(
            RTA_DST,
            &[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        b.attr_u32(RTA_TABLE, 4000);
        b.attr_u32(RTA_PRIORITY, 1024);
        b.finish().unwrap();
        let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
        let k = RouteKey::from_msg(&m).unwrap();
        assert_eq!((k.table, k.priority, k.dst_len), (4000, 1024, 64));
        assert_eq!(k.dst, "fd00:1::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ct_tuples_map_icmp_and_zones() {
        let mut b = MessageBuilder::new();
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            0,
            1,
        );
        b.header(&nlkit_wire::NfGenMsg {
            family: AF_INET,
            version: NFNETLINK_V0,
            res_id: 0,
        });
        let (a, c) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let icmp = nlkit_conntrack::Tuple::icmp(a, c, 77, 8, 0);
        icmp.write(&mut b, CTA_TUPLE_ORIG);
        icmp.reversed().write(&mut b, CTA_TUPLE_REPLY);
        b.attr_be16(CTA_ZONE, 5);
        b.attr_be32(CTA_TIMEOUT, 30);
        b.finish().unwrap();
        let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
        let i = ct_info(&m).unwrap();
        assert_eq!(
            i.original,
            ConnKey::new(a, 77, c, 8 << 8, IPPROTO_ICMP).with_zone(5)
        );
        assert_eq!(
            i.reply.unwrap(),
            ConnKey::new(c, 77, a, 0, IPPROTO_ICMP).with_zone(5)
        );
        assert_eq!(i.timeout_s, Some(30));
        let off = i.timeout_off.unwrap();
        assert_eq!(&m.bytes()[off..off + 4], &30u32.to_be_bytes());
    }

    #[test]
    fn garbage_gives_no_key() {
        let m = Message::parse(&[20, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        if let Ok((m, _)) = m {
            assert!(RouteKey::from_msg(&m).is_none());
            assert!(ct_info(&m).is_none());
        }
    }
}

/// An IPv4 route's key, as the IPv4 route store's index files it (three words).
///
/// ```
/// use nlkit_view::{Route4Key, RouteKey};
/// use nlkit_table::TableKey;
/// let k = RouteKey {
///     table: 254, dst: "10.1.2.0".parse().unwrap(), dst_len: 24,
///     src: "0.0.0.0".parse().unwrap(), src_len: 0, tos: 0, priority: 100,
/// };
/// let c = Route4Key::new(k).unwrap();
/// assert_eq!(Route4Key::from_words(&c.to_words()).key(), k);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route4Key(RouteKey);

impl Route4Key {
    /// The compact form of an IPv4 route key (`None` for an IPv6 one).
    pub fn new(k: RouteKey) -> Option<Self> {
        (k.dst.is_ipv4() && k.src.is_ipv4()).then_some(Route4Key(k))
    }

    /// The full key.
    pub fn key(self) -> RouteKey {
        self.0
    }
}

fn v4(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(_) => 0,
    }
}

impl TableKey for Route4Key {
    type Words = [u64; 3];
    fn to_words(&self) -> [u64; 3] {
        let k = &self.0;
        [
            u64::from(k.table) | u64::from(k.priority) << 32,
            v4(k.dst) | v4(k.src) << 32,
            u64::from(k.dst_len) | u64::from(k.src_len) << 8 | u64::from(k.tos) << 16,
        ]
    }
    fn from_words(w: &[u64; 3]) -> Self {
        Route4Key(RouteKey {
            table: w[0] as u32,
            priority: (w[0] >> 32) as u32,
            dst: IpAddr::V4(Ipv4Addr::from(w[1] as u32)),
            src: IpAddr::V4(Ipv4Addr::from((w[1] >> 32) as u32)),
            dst_len: w[2] as u8,
            src_len: (w[2] >> 8) as u8,
            tos: (w[2] >> 16) as u8,
        })
    }
}

impl StoreKey for Route4Key {
    fn of_message(msg: &Message<'_>) -> Option<Self> {
        RouteKey::from_msg(msg).and_then(Route4Key::new)
    }
}
