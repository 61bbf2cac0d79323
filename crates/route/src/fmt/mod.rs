//! Text output in the style of iproute2 (`ip route`, `ip link`, `ip addr`, `ip neigh`,
//! `ip nexthop`, `ip rule`) and
//! JSON output shaped like `ip -j`.
//!
//! Every formatter is a small wrapper that borrows a view and implements
//! [`Display`](std::fmt::Display) or [`serde::Serialize`], so output is written straight
//! into the caller's writer without building intermediate strings. Route lines, which
//! listings print by the million, are also appended to a byte buffer by
//! [`RouteText::write_to`] without `core::fmt` (addresses and numbers from
//! [`nlkit_wire::text`]'s tables; its `Display` is built on it). Interface names come from
//! a [`LinkNames`] map (index → name), filled from a link dump; an unknown index prints as
//! `ifN`, as iproute2 does.
//!
//! ```
//! use nlkit_wire::{Messages, MessageBuilder};
//! use nlkit_route::{fmt::{route_text, LinkNames, RouteFmt}, request, Route, RouteView};
//! let mut names = LinkNames::new();
//! names.insert(3, "veth0");
//! let r = Route::new("10.1.0.0".parse().unwrap(), 24)
//!     .via("10.0.0.2".parse().unwrap()).dev(3).metric(100)
//!     .proto(nlkit_wire::consts::RTPROT_STATIC);
//! let mut b = MessageBuilder::new();
//! request::add_route(&mut b, 1, &r, request::RouteOp::Add).unwrap();
//! let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
//! let v = RouteView::parse(&m).unwrap();
//! assert_eq!(route_text(&v, &names, RouteFmt::default()).to_string(),
//!            "10.1.0.0/24 via 10.0.0.2 dev veth0 proto static metric 100 ");
//! ```

use std::collections::HashMap;
use std::fmt;

use crate::LinkView;

mod bridge;
mod link;
mod linkinfo;
mod linkinfo_bridge;
mod neigh;
mod nexthop;
mod route;
mod rule;

pub use bridge::{
    bridge_vlan_json, bridge_vlan_text, fdb_json, fdb_text, BridgeVlanJson, FdbJson, FdbText,
    VLAN_HEADER,
};
pub use link::{
    addr_json, addr_text, link_json, link_text, AddrJson, AddrText, LinkJson, LinkText,
};
pub use neigh::{neigh_json, neigh_text, NeighJson, NeighText};
pub use nexthop::{nexthop_json, nexthop_text, NexthopJson, NexthopText};
pub use route::{route_json, route_text, RouteFmt, RouteJson, RouteText};
pub use rule::{
    dsfield_name, ip_proto_name, parse_dsfield, parse_ip_proto, rule_json, rule_text, RuleJson,
    RuleText,
};

/// Interface index → name, for printing `dev NAME`.
///
/// ```
/// let mut n = nlkit_route::fmt::LinkNames::new();
/// n.insert(2, "eth0");
/// assert_eq!(n.name(2).to_string(), "eth0");
/// assert_eq!(n.name(9).to_string(), "if9");
/// ```
#[derive(Debug, Clone, Default)]
pub struct LinkNames {
    /// Looked up once per printed object: a multiplicative hash of the index, not SipHash
    /// (indexes come from the kernel, not from an attacker choosing keys).
    map: HashMap<u32, Name, std::hash::BuildHasherDefault<IndexHasher>>,
    /// nsid → name of the named namespace (`/run/netns/NAME`) with that id, for
    /// `link-netns NAME`.
    netns: HashMap<i32, String>,
    /// index → `IFF_*` flags, for `M-DOWN` (the lower device is down).
    flags: HashMap<u32, u32>,
}

/// Hasher of interface indexes for [`LinkNames`]: the index times a 64-bit odd constant
/// (Fibonacci hashing; the product's high bits, which the table's tags use, are well mixed).
#[derive(Debug, Clone, Copy, Default)]
struct IndexHasher(u64);

impl std::hash::Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0 ^ u64::from(i)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl LinkNames {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records a name.
    pub fn insert(&mut self, index: u32, name: &str) {
        self.map.insert(index, Name::new(name));
    }
    /// Records the name of a link from a link dump (links without a name are ignored).
    pub fn insert_link(&mut self, link: &LinkView<'_>) {
        if let Some(n) = link.name() {
            self.insert(link.index(), n);
        }
        self.flags.insert(link.index(), link.flags());
    }
    /// Records that namespace id `nsid` is the named namespace `name` (then links whose
    /// peer is there print `link-netns NAME`, as `ip` does, instead of `link-netnsid N`).
    ///
    /// ```
    /// let mut n = nlkit_route::fmt::LinkNames::new();
    /// n.insert_netns(0, "blue");
    /// assert_eq!(n.netns_name(0), Some("blue"));
    /// ```
    pub fn insert_netns(&mut self, nsid: i32, name: &str) {
        self.netns.insert(nsid, name.to_owned());
    }
    /// The `IFF_*` flags of link `index`, when it came from a link dump.
    pub fn flags(&self, index: u32) -> Option<u32> {
        self.flags.get(&index).copied()
    }
    /// The name of the named namespace with id `nsid`, if known.
    pub fn netns_name(&self, nsid: i32) -> Option<&str> {
        self.netns.get(&nsid).map(String::as_str)
    }
    /// Forgets an index (e.g. on `RTM_DELLINK`).
    pub fn remove(&mut self, index: u32) {
        self.map.remove(&index);
    }
    /// The name of `index`, if known.
    pub fn get(&self, index: u32) -> Option<&str> {
        self.map.get(&index).map(|n| n.text.as_str())
    }
    /// The index of a name, if known.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.map
            .iter()
            .find(|(_, n)| n.text == name)
            .map(|(i, _)| *i)
    }
    /// A displayable name: the known name or `ifN`.
    pub fn name(&self, index: u32) -> IfName<'_> {
        let n = self.map.get(&index);
        IfName {
            name: n.map(|n| n.text.as_str()),
            padded: n.and_then(|n| n.padded.as_ref()),
            index,
        }
    }
}

/// An interface name of [`LinkNames`], with a padded copy for fast appending.
#[derive(Debug, Clone)]
struct Name {
    text: String,
    /// `text` padded with zeros to 16 bytes, when it fits (kernel names do: `IFNAMSIZ` is
    /// 16 with the terminating NUL), so [`IfName::push_to`] appends it with one copy of a
    /// constant size.
    padded: Option<[u8; 16]>,
}

impl Name {
    fn new(text: &str) -> Self {
        let padded = (text.len() <= 16).then(|| {
            let mut p = [0u8; 16];
            p[..text.len()].copy_from_slice(text.as_bytes());
            p
        });
        Name {
            text: text.to_owned(),
            padded,
        }
    }
}

/// An interface name for display: the name, or `ifN` when unknown.
#[derive(Debug, Clone, Copy)]
pub struct IfName<'a> {
    name: Option<&'a str>,
    /// The name padded to 16 bytes, when it fits.
    padded: Option<&'a [u8; 16]>,
    index: u32,
}

impl IfName<'_> {
    /// Appends the name (what `Display` writes) to `out`.
    ///
    /// ```
    /// let mut n = nlkit_route::fmt::LinkNames::new();
    /// n.insert(2, "eth0");
    /// let mut out = Vec::new();
    /// n.name(2).push_to(&mut out);
    /// n.name(9).push_to(&mut out);
    /// assert_eq!(out, b"eth0if9");
    /// ```
    pub fn push_to(&self, out: &mut Vec<u8>) {
        match (self.name, self.padded) {
            (Some(n), Some(p)) => nlkit_wire::text::push_fixed(out, p, n.len()),
            (Some(n), None) => out.extend_from_slice(n.as_bytes()),
            (None, _) => {
                out.extend_from_slice(b"if");
                nlkit_wire::text::push_num(out, self.index);
            }
        }
    }
}

impl fmt::Display for IfName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(n) => f.write_str(n),
            None => write!(f, "if{}", nlkit_wire::text::Num(self.index)),
        }
    }
}

impl serde::Serialize for IfName<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A link-layer address printed as `aa:bb:cc:dd:ee:ff`.
///
/// ```
/// assert_eq!(nlkit_route::fmt::Mac(&[0xaa, 0, 1]).to_string(), "aa:00:01");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Mac<'a>(pub &'a [u8]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Mac<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Serializes a list of static names (flags) as a JSON array without allocating.
pub(crate) struct NameList<I>(pub std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = &'static str>> serde::Serialize for NameList<I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(it) => s.collect_seq(it),
            None => s.collect_seq(std::iter::empty::<&str>()),
        }
    }
}

pub(crate) fn name_list<I: Iterator<Item = &'static str>>(it: I) -> NameList<I> {
    NameList(std::cell::Cell::new(Some(it)))
}

/// Serializes anything `Display` as a JSON string.
pub(crate) struct AsStr<T>(pub T);

impl<T: fmt::Display> serde::Serialize for AsStr<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}
