//! Request builders: each function appends one complete request message to a
//! [`MessageBuilder`] and returns its byte range (or the build error).
//!
//! Several requests may be appended to one builder to form a batch. Change requests carry
//! `NLM_F_ACK`; dumps carry `NLM_F_DUMP`.
//!
//! # Per-family dumps and kernel-side filters
//!
//! Routes and addresses are dumped per family (`AF_INET`, `AF_INET6`): on current kernels
//! (since the `RTNL_FLAG_DUMP_UNLOCKED` work, about 6.9) the IPv4 and IPv6 address and route
//! dump handlers run under RCU without the RTNL mutex, while an `AF_UNSPEC` dump goes through
//! `rtnl_dump_all`, which takes RTNL for each chunk and so serialises against every
//! route, address and link writer on the machine. Ask for the two families one after the
//! other instead.
//!
//! The filters ([`RouteFilter`], [`AddrFilter`], [`NeighFilter`], [`LinkFilter`]) are written
//! in the form the kernel's strict validators accept. The kernel applies them only when the
//! socket has `NETLINK_GET_STRICT_CHK` set; **without it they are silently ignored**, so the
//! filters also offer a `matches` method to re-check each message in user space.
//!
//! ```
//! use nlkit_wire::{consts::*, MessageBuilder};
//! use nlkit_route::request::{self, RouteFilter};
//! let mut b = MessageBuilder::new();
//! let f = RouteFilter { table: Some(1000), ..Default::default() };
//! request::dump_routes(&mut b, 1, AF_INET, &f).unwrap();
//! request::dump_routes(&mut b, 2, AF_INET6, &f).unwrap();
//! assert_eq!(b.message_count(), 2);
//! ```

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, IfInfoMsg, MessageBuilder, NdMsg};

use crate::{AddrView, Address, LinkView, NeighView, Neighbour};

mod bridge;
mod linkinfo;
mod netns;
mod nexthop;
mod routes;
mod rule;
pub use bridge::{
    add_bridge_vlan, add_fdb, del_bridge_vlan, del_fdb, dump_bridge_vlans, dump_fdb, FdbFilter,
};
pub use linkinfo::{add_link, set_link};
pub use netns::{dump_nsids, get_nsid, set_nsid};
pub use nexthop::{add_nexthop, del_nexthop, dump_nexthops, get_nexthop, NexthopFilter};
pub use routes::{add_route, del_route, dump_routes, get_route, RouteFilter, RouteLookup, RouteOp};
pub use rule::{add_rule, del_rule, dump_rules, RuleFilter};

pub use nlkit_wire::Built;

const CHANGE: u16 = NLM_F_REQUEST | NLM_F_ACK;
const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

// ---------------------------------------------------------------------------------------------
// Links

/// Kernel-side link dump filter (strict checking): by master and by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFilter<'a> {
    /// Only links enslaved to this index (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// Only links of this kind (`IFLA_LINKINFO` / `IFLA_INFO_KIND`).
    pub kind: Option<&'a str>,
}

impl LinkFilter<'_> {
    /// The same test in user space.
    pub fn matches(&self, l: &LinkView<'_>) -> bool {
        self.master.is_none_or(|m| l.master() == Some(m))
            && self.kind.is_none_or(|k| l.kind() == Some(k))
    }
}

/// How a single link is named in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRef<'a> {
    /// By interface index.
    Index(u32),
    /// By name (`IFLA_IFNAME`).
    Name(&'a str),
}

fn link_msg(b: &mut MessageBuilder, ty: u16, flags: u16, seq: u32, link: LinkRef<'_>) {
    let index = match link {
        LinkRef::Index(i) => i as i32,
        LinkRef::Name(_) => 0,
    };
    b.begin(ty, flags, seq);
    b.header(&IfInfoMsg {
        family: AF_UNSPEC,
        index,
        ..Default::default()
    });
    if let LinkRef::Name(n) = link {
        b.attr_str(IFLA_IFNAME, n);
    }
}

/// `RTM_GETLINK` dump (takes RTNL in the kernel, unlike address and route dumps).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::dump_links(&mut b, 1, &Default::default()).unwrap();
/// ```
pub fn dump_links(b: &mut MessageBuilder, seq: u32, filter: &LinkFilter<'_>) -> Built {
    b.begin(RTM_GETLINK, DUMP, seq);
    b.header(&IfInfoMsg::default());
    if let Some(m) = filter.master {
        b.attr_u32(IFLA_MASTER, m);
    }
    if let Some(k) = filter.kind {
        let n = b.nest_begin(IFLA_LINKINFO);
        b.attr_str(IFLA_INFO_KIND, k);
        b.nest_end(n);
    }
    b.finish()
}

/// `RTM_GETLINK` for one link; the reply is an `RTM_NEWLINK`.
///
/// ```
/// use nlkit_route::request::{get_link, LinkRef};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// get_link(&mut b, 1, LinkRef::Name("lo")).unwrap();
/// ```
pub fn get_link(b: &mut MessageBuilder, seq: u32, link: LinkRef<'_>) -> Built {
    link_msg(b, RTM_GETLINK, NLM_F_REQUEST, seq, link);
    b.finish()
}

/// Sets a link administratively up or down (`ip link set DEV up|down`).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::set_link_up(&mut b, 1, 3, true).unwrap();
/// ```
pub fn set_link_up(b: &mut MessageBuilder, seq: u32, index: u32, up: bool) -> Built {
    b.begin(RTM_NEWLINK, CHANGE, seq);
    b.header(&IfInfoMsg {
        family: AF_UNSPEC,
        index: index as i32,
        flags: if up { IFF_UP } else { 0 },
        change: IFF_UP,
        ..Default::default()
    });
    b.finish()
}

/// Sets a link's MTU (`ip link set DEV mtu N`).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::set_link_mtu(&mut b, 1, 3, 1400).unwrap();
/// ```
pub fn set_link_mtu(b: &mut MessageBuilder, seq: u32, index: u32, mtu: u32) -> Built {
    link_msg(b, RTM_NEWLINK, CHANGE, seq, LinkRef::Index(index));
    b.attr_u32(IFLA_MTU, mtu);
    b.finish()
}

/// Creates a veth pair `name` ↔ `peer` (`ip link add NAME type veth peer name PEER`).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::add_veth(&mut b, 1, "va", "vb").unwrap();
/// ```
pub fn add_veth(b: &mut MessageBuilder, seq: u32, name: &str, peer: &str) -> Built {
    b.begin(RTM_NEWLINK, CHANGE | NLM_F_CREATE | NLM_F_EXCL, seq);
    b.header(&IfInfoMsg::default());
    b.attr_str(IFLA_IFNAME, name);
    let info = b.nest_begin(IFLA_LINKINFO);
    b.attr_str(IFLA_INFO_KIND, "veth");
    let data = b.nest_begin(IFLA_INFO_DATA);
    let p = b.nest_begin(VETH_INFO_PEER);
    b.header(&IfInfoMsg::default());
    b.attr_str(IFLA_IFNAME, peer);
    b.nest_end(p);
    b.nest_end(data);
    b.nest_end(info);
    b.finish()
}

/// Deletes a link (`ip link del`); deleting one end of a veth pair deletes both.
///
/// ```
/// use nlkit_route::request::{del_link, LinkRef};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// del_link(&mut b, 1, LinkRef::Index(4)).unwrap();
/// ```
pub fn del_link(b: &mut MessageBuilder, seq: u32, link: LinkRef<'_>) -> Built {
    link_msg(b, RTM_DELLINK, CHANGE, seq, link);
    b.finish()
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// Kernel-side address dump filter (strict checking): by interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrFilter {
    /// Only addresses on this interface (`ifa_index`).
    pub ifindex: Option<u32>,
}

impl AddrFilter {
    /// The same test in user space.
    pub fn matches(&self, a: &AddrView<'_>) -> bool {
        self.ifindex.is_none_or(|i| a.index() == i)
    }
}

/// `RTM_GETADDR` dump of one family (`AF_INET` or `AF_INET6`; see the module docs on why not
/// `AF_UNSPEC`).
///
/// ```
/// use nlkit_route::request::{dump_addrs, AddrFilter};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// dump_addrs(&mut b, 1, nlkit_wire::consts::AF_INET, &AddrFilter { ifindex: Some(2) }).unwrap();
/// ```
pub fn dump_addrs(b: &mut MessageBuilder, seq: u32, family: u8, filter: &AddrFilter) -> Built {
    b.begin(RTM_GETADDR, DUMP, seq);
    b.header(&IfAddrMsg {
        family,
        index: filter.ifindex.unwrap_or(0),
        ..Default::default()
    });
    b.finish()
}

fn addr_msg(b: &mut MessageBuilder, ty: u16, flags: u16, seq: u32, a: &Address) {
    b.begin(ty, flags, seq);
    b.header(&IfAddrMsg {
        family: a.family(),
        prefixlen: a.prefix_len,
        flags: (a.flags & 0xff) as u8,
        scope: a.scope,
        index: a.index,
    });
    b.attr_ip(IFA_LOCAL, a.local);
    b.attr_ip(IFA_ADDRESS, a.peer.unwrap_or(a.local));
}

/// `RTM_NEWADDR` (`ip addr add`, or `ip addr replace` when `replace`).
///
/// ```
/// use nlkit_route::{request::add_addr, Address};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// add_addr(&mut b, 1, &Address::new(2, "10.0.0.1".parse().unwrap(), 24), false).unwrap();
/// ```
pub fn add_addr(b: &mut MessageBuilder, seq: u32, a: &Address, replace: bool) -> Built {
    let mode = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
    addr_msg(b, RTM_NEWADDR, CHANGE | NLM_F_CREATE | mode, seq, a);
    if let Some(brd) = a.broadcast {
        b.attr_ip(IFA_BROADCAST, brd);
    }
    if let Some(l) = &a.label {
        b.attr_str(IFA_LABEL, l);
    }
    if a.flags > 0xff {
        b.attr_u32(IFA_FLAGS, a.flags);
    }
    if a.valid_lft.is_some() || a.preferred_lft.is_some() {
        let valid = a.valid_lft.unwrap_or(u32::MAX);
        let pref = a.preferred_lft.unwrap_or(valid);
        let mut ci = [0u8; 16];
        ci[0..4].copy_from_slice(&pref.to_ne_bytes());
        ci[4..8].copy_from_slice(&valid.to_ne_bytes());
        b.attr_bytes(IFA_CACHEINFO, &ci);
    }
    if let Some(m) = a.metric {
        b.attr_u32(IFA_RT_PRIORITY, m);
    }
    b.finish()
}

/// `RTM_DELADDR` (`ip addr del`).
///
/// ```
/// use nlkit_route::{request::del_addr, Address};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// del_addr(&mut b, 1, &Address::new(2, "10.0.0.1".parse().unwrap(), 24)).unwrap();
/// ```
pub fn del_addr(b: &mut MessageBuilder, seq: u32, a: &Address) -> Built {
    addr_msg(b, RTM_DELADDR, CHANGE, seq, a);
    b.finish()
}

// ---------------------------------------------------------------------------------------------
// Neighbours

/// Kernel-side neighbour dump filter (`NDA_IFINDEX`, `NDA_MASTER`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeighFilter {
    /// Only entries on this interface.
    pub ifindex: Option<u32>,
    /// Only entries on ports of this master.
    pub master: Option<u32>,
}

impl NeighFilter {
    /// The same test in user space (the master is known only when the kernel reports it).
    pub fn matches(&self, n: &NeighView<'_>) -> bool {
        self.ifindex.is_none_or(|i| n.ifindex() == i)
            && self
                .master
                .is_none_or(|m| n.master().is_none_or(|x| x == m))
    }
}

/// `RTM_GETNEIGH` dump (`AF_INET`, `AF_INET6`, or `AF_UNSPEC` for both; neighbour dumps run
/// without RTNL).
///
/// ```
/// use nlkit_route::request::{dump_neighs, NeighFilter};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// dump_neighs(&mut b, 1, nlkit_wire::consts::AF_INET, &NeighFilter::default()).unwrap();
/// ```
pub fn dump_neighs(b: &mut MessageBuilder, seq: u32, family: u8, filter: &NeighFilter) -> Built {
    b.begin(RTM_GETNEIGH, DUMP, seq);
    b.header(&NdMsg {
        family,
        ..Default::default()
    });
    if let Some(i) = filter.ifindex {
        b.attr_u32(NDA_IFINDEX, i);
    }
    if let Some(m) = filter.master {
        b.attr_u32(NDA_MASTER, m);
    }
    b.finish()
}

/// `RTM_GETNEIGH` for one entry (`ip neigh get`); the reply is an `RTM_NEWNEIGH`.
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::get_neigh(&mut b, 1, 3, "10.0.0.2".parse().unwrap()).unwrap();
/// ```
pub fn get_neigh(b: &mut MessageBuilder, seq: u32, ifindex: u32, dst: IpAddr) -> Built {
    b.begin(RTM_GETNEIGH, NLM_F_REQUEST, seq);
    b.header(&NdMsg {
        family: crate::family_of(dst),
        ifindex: ifindex as i32,
        ..Default::default()
    });
    b.attr_ip(NDA_DST, dst);
    b.finish()
}

fn neigh_msg(b: &mut MessageBuilder, ty: u16, flags: u16, seq: u32, n: &Neighbour) {
    b.begin(ty, flags, seq);
    b.header(&NdMsg {
        family: n.family(),
        ifindex: n.ifindex as i32,
        state: n.state,
        flags: n.flags,
        ty: 0,
    });
    b.attr_ip(NDA_DST, n.dst);
}

/// `RTM_NEWNEIGH` (`ip neigh add`, or `ip neigh replace` when `replace`).
///
/// ```
/// use nlkit_route::{request::add_neigh, Neighbour};
/// let n = Neighbour::new(3, "10.0.0.2".parse().unwrap()).lladdr(&[2, 0, 0, 0, 0, 1]);
/// let mut b = nlkit_wire::MessageBuilder::new();
/// add_neigh(&mut b, 1, &n, true).unwrap();
/// ```
pub fn add_neigh(b: &mut MessageBuilder, seq: u32, n: &Neighbour, replace: bool) -> Built {
    let mode = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
    neigh_msg(b, RTM_NEWNEIGH, CHANGE | NLM_F_CREATE | mode, seq, n);
    if let Some(ll) = &n.lladdr {
        b.attr_bytes(NDA_LLADDR, ll);
    }
    b.finish()
}

/// `RTM_DELNEIGH` (`ip neigh del`).
///
/// ```
/// use nlkit_route::{request::del_neigh, Neighbour};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// del_neigh(&mut b, 1, &Neighbour::new(3, "10.0.0.2".parse().unwrap())).unwrap();
/// ```
pub fn del_neigh(b: &mut MessageBuilder, seq: u32, n: &Neighbour) -> Built {
    neigh_msg(b, RTM_DELNEIGH, CHANGE, seq, n);
    b.finish()
}
