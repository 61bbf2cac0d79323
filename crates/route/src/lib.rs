//! `nlkit-route`: typed rtnetlink for links, addresses, routes, neighbours, nexthop objects
//! and policy rules; link kinds
//! (bridge, vlan, vxlan, macvlan/macvtap, ipvlan, bond, vrf, veth: [`KindInfo`] views and
//! [`LinkSpec`] / [`LinkKind`] specs), namespaces (moving links by namespace fd or pid,
//! namespace ids: [`NetnsRef`], [`NsidView`]) and the bridge FDB and VLANs ([`Fdb`],
//! [`BridgeVlanSpec`], [`bridge_vlans`]).
//!
//! * **Views** ([`LinkView`], [`AddrView`], [`RouteView`], [`NeighView`],
//!   [`NexthopObjectView`], [`RuleView`]) borrow a received
//!   message and decode it in one pass over its attributes. Nothing is copied; `to_owned()`
//!   gives an owned value when the caller needs one. Attributes a view does not decode — in
//!   particular those added by newer kernels — are skipped and counted (`unknown_attrs()`),
//!   and struct-valued attributes may be longer than this crate knows: neither is an error.
//!   Malformed bytes give a typed [`WireError`], never a panic. The key views
//!   ([`RouteKeyView`], [`AddrKeyView`], [`NeighKeyView`]) read only the fields that identify
//!   an object, for code that files many of them by key.
//! * **Requests** ([`request`]) append dump, get, add/replace/delete and link-setting
//!   requests to a [`MessageBuilder`](nlkit_wire::MessageBuilder), with the kernel-side
//!   filters that strict checking (`NETLINK_GET_STRICT_CHK`) enables. [`Route`],
//!   [`Address`], [`Neighbour`], [`NexthopObject`] and [`Rule`] are the owned request specs.
//! * **Formatting** ([`fmt`]) prints like iproute2 (`ip route`, `ip link`, `ip addr`,
//!   `ip neigh`) and serializes JSON shaped like `ip -j`; [`names`] maps numbers to the words
//!   iproute2 uses and back.
//! * **Socket operations** ([`ops`]) run those requests on an
//!   [`nlkit_socket::Socket`]: streaming dumps into a closure (flat memory), gets and changes.
//!
//! # Errors
//! This crate adds no failure of its own, so it has no error type of its own: views fail
//! with [`WireError`], operations with [`nlkit_socket::Error`] (whose
//! [`Protocol`](nlkit_socket::Error::Protocol) carries the `WireError` of a reply that does
//! not decode, and [`InvalidRequest`](nlkit_socket::Error::InvalidRequest) a request that
//! cannot be sent, such as [`ops::add_link`] without a name).
//!
//! ```
//! use nlkit_wire::{consts::*, MessageBuilder, Messages};
//! use nlkit_route::{request, Route, RouteView};
//!
//! let r = Route::new("10.1.0.0".parse().unwrap(), 24).via("10.0.0.2".parse().unwrap()).dev(2);
//! let mut b = MessageBuilder::new();
//! request::add_route(&mut b, 1, &r, request::RouteOp::Replace).unwrap();
//! let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
//! let v = RouteView::parse(&m).unwrap();
//! assert_eq!(v.to_owned(), r);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::IpAddr;

use nlkit_wire::consts::{AF_INET, AF_INET6};
use nlkit_wire::{Attr, Message, WireError};

mod addr;
mod bridge;
pub mod fmt;
mod key;
mod link;
mod linkinfo;
mod linkinfo_spec;
pub mod names;
mod neigh;
mod netns;
pub mod nexthop;
pub mod ops;
pub mod request;
pub mod route;
mod rule;

pub use addr::{AddrCacheInfo, AddrView, Address};
pub use bridge::{bridge_vlans, BridgeVlan, BridgeVlanSpec, Fdb, FdbOp};
pub use key::{AddrKeyView, NeighKeyView, RouteKeyView};
pub use link::{Link, LinkStats64, LinkView};
pub use linkinfo::{
    BondInfo, BridgeInfo, IpvlanInfo, KindInfo, MacvlanInfo, VlanInfo, VrfInfo, VxlanInfo,
};
pub use linkinfo_spec::{
    kind_names, BondOpts, BridgeOpts, IpvlanOpts, LinkKind, LinkSpec, MacvlanOpts, VlanOpts,
    VxlanOpts,
};
pub use neigh::{NeighView, Neighbour};
pub use netns::{NetnsRef, NsidView};
pub use nexthop::{NexthopObject, NexthopObjectView};
pub use route::{NextHop, NexthopView, Route, RouteCacheInfo, RouteView};
pub use rule::{Rule, RuleView};

/// `AF_INET` or `AF_INET6` for an address.
///
/// ```
/// assert_eq!(nlkit_route::family_of("::1".parse().unwrap()), nlkit_wire::consts::AF_INET6);
/// ```
pub fn family_of(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// Checks that `msg` has one of the two expected types.
fn check_type(msg: &Message<'_>, new: u16, del: u16) -> Result<(), WireError> {
    if msg.ty() == new || msg.ty() == del {
        Ok(())
    } else {
        Err(WireError::UnexpectedType {
            expected: new,
            found: msg.ty(),
        })
    }
}

/// An address attribute of a message of `family`: IPv4 or IPv6 must have the right size;
/// other families (MPLS labels, bridge FDB entries) are decoded by length when they look like
/// an IP address and ignored otherwise.
fn ip_attr(family: u8, a: &Attr<'_>) -> Result<Option<IpAddr>, WireError> {
    match family {
        AF_INET => a.ipv4().map(|x| Some(x.into())),
        AF_INET6 => a.ipv6().map(|x| Some(x.into())),
        _ => Ok(a.ip().ok()),
    }
}
