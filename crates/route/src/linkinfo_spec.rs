//! Owned specs that create or change links of any kind ([`LinkKind`], [`LinkSpec`]), and the
//! words `ip link` uses for kind options ([`kind_names`]).

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

use crate::netns::NetnsRef;

/// Bridge options for create or change (`ip link add … type bridge vlan_filtering 1 stp_state 1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct BridgeOpts {
    pub vlan_filtering: Option<bool>,
    pub stp: Option<bool>,
    /// Centiseconds, as `ip` takes them.
    pub ageing_time: Option<u32>,
    pub forward_delay: Option<u32>,
    pub priority: Option<u16>,
}

/// VLAN options (`type vlan id N protocol 802.1Q|802.1ad`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct VlanOpts {
    pub id: Option<u16>,
    /// `ETH_P_8021Q` (default in the kernel) or `ETH_P_8021AD`.
    pub protocol: Option<u16>,
}

/// VXLAN options (`type vxlan id N local A remote|group A dev D dstport P [no]learning`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct VxlanOpts {
    pub id: Option<u32>,
    pub local: Option<IpAddr>,
    /// The unicast remote or the multicast group (`IFLA_VXLAN_GROUP`).
    pub remote: Option<IpAddr>,
    /// The underlay device index.
    pub dev: Option<u32>,
    pub dstport: Option<u16>,
    pub learning: Option<bool>,
    pub ttl: Option<u8>,
}

/// macvlan / macvtap options (`mode private|vepa|bridge|passthru|source`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacvlanOpts {
    /// `MACVLAN_MODE_*`.
    pub mode: Option<u32>,
}

/// ipvlan options (`mode l2|l3|l3s [bridge|private|vepa]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpvlanOpts {
    /// `IPVLAN_MODE_*`.
    pub mode: Option<u16>,
    /// `IPVLAN_F_*`.
    pub flags: Option<u16>,
}

/// Bond options (`mode M miimon N`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct BondOpts {
    /// `BOND_MODE_*` (see [`kind_names::BOND_MODES`]).
    pub mode: Option<u8>,
    pub miimon: Option<u32>,
}

/// A link kind and its options, for create (`ip link add … type KIND …`) or change
/// (`ip link set DEV type KIND …`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkKind {
    /// A veth pair; the peer may be created directly in another namespace.
    Veth {
        /// The peer's name.
        peer: String,
        /// The namespace the peer is created in (default: the same one).
        peer_netns: Option<NetnsRef>,
    },
    /// A bridge.
    Bridge(BridgeOpts),
    /// An 802.1Q/802.1ad VLAN on [`LinkSpec::parent`].
    Vlan(VlanOpts),
    /// A VXLAN device.
    Vxlan(VxlanOpts),
    /// A macvlan on [`LinkSpec::parent`].
    Macvlan(MacvlanOpts),
    /// A macvtap on [`LinkSpec::parent`].
    Macvtap(MacvlanOpts),
    /// An ipvlan on [`LinkSpec::parent`].
    Ipvlan(IpvlanOpts),
    /// A bond.
    Bond(BondOpts),
    /// A VRF device bound to a routing table.
    Vrf {
        /// The table.
        table: Option<u32>,
    },
    /// Any kind without options here (`ifb`, …), by its kernel name.
    Other(String),
}

impl LinkKind {
    /// The kernel's kind name (`IFLA_INFO_KIND`).
    ///
    /// ```
    /// assert_eq!(nlkit_route::LinkKind::Vrf { table: Some(10) }.name(), "vrf");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            LinkKind::Veth { .. } => "veth",
            LinkKind::Bridge(_) => "bridge",
            LinkKind::Vlan(_) => "vlan",
            LinkKind::Vxlan(_) => "vxlan",
            LinkKind::Macvlan(_) => "macvlan",
            LinkKind::Macvtap(_) => "macvtap",
            LinkKind::Ipvlan(_) => "ipvlan",
            LinkKind::Bond(_) => "bond",
            LinkKind::Vrf { .. } => "vrf",
            LinkKind::Other(k) => k,
        }
    }

    /// Appends `IFLA_LINKINFO` (kind and data) to the message being built.
    pub(crate) fn write(&self, b: &mut MessageBuilder) {
        let info = b.nest_begin(IFLA_LINKINFO);
        b.attr_str(IFLA_INFO_KIND, self.name());
        let data = b.nest_begin(IFLA_INFO_DATA);
        match self {
            LinkKind::Veth { peer, peer_netns } => {
                let p = b.nest_begin(VETH_INFO_PEER);
                b.header(&nlkit_wire::IfInfoMsg::default());
                b.attr_str(IFLA_IFNAME, peer);
                if let Some(ns) = peer_netns {
                    ns.write_link_attr(b);
                }
                b.nest_end(p);
            }
            LinkKind::Bridge(o) => {
                if let Some(v) = o.forward_delay {
                    b.attr_u32(IFLA_BR_FORWARD_DELAY, v);
                }
                if let Some(v) = o.ageing_time {
                    b.attr_u32(IFLA_BR_AGEING_TIME, v);
                }
                if let Some(v) = o.stp {
                    b.attr_u32(IFLA_BR_STP_STATE, v as u32);
                }
                if let Some(v) = o.priority {
                    b.attr_u16(IFLA_BR_PRIORITY, v);
                }
                if let Some(v) = o.vlan_filtering {
                    b.attr_u8(IFLA_BR_VLAN_FILTERING, v as u8);
                }
            }
            LinkKind::Vlan(o) => {
                if let Some(v) = o.id {
                    b.attr_u16(IFLA_VLAN_ID, v);
                }
                if let Some(v) = o.protocol {
                    b.attr_be16(IFLA_VLAN_PROTOCOL, v);
                }
            }
            LinkKind::Vxlan(o) => {
                if let Some(v) = o.id {
                    b.attr_u32(IFLA_VXLAN_ID, v);
                }
                match o.local {
                    Some(IpAddr::V4(a)) => b.attr_bytes(IFLA_VXLAN_LOCAL, &a.octets()),
                    Some(IpAddr::V6(a)) => b.attr_bytes(IFLA_VXLAN_LOCAL6, &a.octets()),
                    None => b,
                };
                match o.remote {
                    Some(IpAddr::V4(a)) => b.attr_bytes(IFLA_VXLAN_GROUP, &a.octets()),
                    Some(IpAddr::V6(a)) => b.attr_bytes(IFLA_VXLAN_GROUP6, &a.octets()),
                    None => b,
                };
                if let Some(v) = o.dev {
                    b.attr_u32(IFLA_VXLAN_LINK, v);
                }
                if let Some(v) = o.dstport {
                    b.attr_be16(IFLA_VXLAN_PORT, v);
                }
                if let Some(v) = o.learning {
                    b.attr_u8(IFLA_VXLAN_LEARNING, v as u8);
                }
                if let Some(v) = o.ttl {
                    b.attr_u8(IFLA_VXLAN_TTL, v);
                }
            }
            LinkKind::Macvlan(o) | LinkKind::Macvtap(o) => {
                if let Some(v) = o.mode {
                    b.attr_u32(IFLA_MACVLAN_MODE, v);
                }
            }
            LinkKind::Ipvlan(o) => {
                if let Some(v) = o.mode {
                    b.attr_u16(IFLA_IPVLAN_MODE, v);
                }
                if let Some(v) = o.flags {
                    b.attr_u16(IFLA_IPVLAN_FLAGS, v);
                }
            }
            LinkKind::Bond(o) => {
                if let Some(v) = o.mode {
                    b.attr_u8(IFLA_BOND_MODE, v);
                }
                if let Some(v) = o.miimon {
                    b.attr_u32(IFLA_BOND_MIIMON, v);
                }
            }
            LinkKind::Vrf { table } => {
                if let Some(t) = table {
                    b.attr_u32(IFLA_VRF_TABLE, *t);
                }
            }
            LinkKind::Other(_) => {}
        }
        b.nest_end(data);
        b.nest_end(info);
    }
}

/// A link to create ([`request::add_link`](crate::request::add_link)) or the changes to make
/// to one ([`request::set_link`](crate::request::set_link)): every field is optional and only
/// the given ones are sent.
///
/// ```
/// use nlkit_route::{BridgeOpts, LinkKind, LinkSpec};
/// let br = LinkSpec::new("br0", LinkKind::Bridge(BridgeOpts { stp: Some(false), ..Default::default() }))
///     .mtu(1450).up(true);
/// assert_eq!(br.kind.as_ref().map(LinkKind::name), Some("bridge"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSpec {
    /// `IFLA_IFNAME`: the name to create, or the new name on a change (`set DEV name N`).
    pub name: Option<String>,
    /// `IFLA_LINKINFO`: the kind and its options.
    pub kind: Option<LinkKind>,
    /// `IFLA_LINK`: the lower device (vlan, macvlan, ipvlan).
    pub parent: Option<u32>,
    /// `IFLA_MTU`.
    pub mtu: Option<u32>,
    /// `IFLA_ADDRESS`.
    pub address: Option<Vec<u8>>,
    /// `IFLA_IFALIAS` (an empty string removes the alias).
    pub alias: Option<String>,
    /// `IFLA_TXQLEN`.
    pub txqlen: Option<u32>,
    /// `IFLA_MASTER`: enslave to this bridge/bond/vrf; `Some(0)` releases (`nomaster`).
    pub master: Option<u32>,
    /// Administrative state (`IFF_UP` in `ifi_flags`/`ifi_change`).
    pub up: Option<bool>,
    /// Move the link into this namespace (`IFLA_NET_NS_FD` / `IFLA_NET_NS_PID`).
    pub netns: Option<NetnsRef>,
}

impl LinkSpec {
    /// A link called `name` of `kind`, with nothing else set.
    pub fn new(name: &str, kind: LinkKind) -> Self {
        LinkSpec {
            name: Some(name.to_owned()),
            kind: Some(kind),
            ..Default::default()
        }
    }
    /// Sets the lower device.
    pub fn parent(mut self, index: u32) -> Self {
        self.parent = Some(index);
        self
    }
    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// Sets the master (`0`: none).
    pub fn master(mut self, index: u32) -> Self {
        self.master = Some(index);
        self
    }
    /// Sets the administrative state.
    pub fn up(mut self, up: bool) -> Self {
        self.up = Some(up);
        self
    }
    /// Sets the link-layer address.
    pub fn address(mut self, mac: &[u8]) -> Self {
        self.address = Some(mac.to_vec());
        self
    }
    /// Moves the link into a namespace.
    pub fn netns(mut self, ns: NetnsRef) -> Self {
        self.netns = Some(ns);
        self
    }

    /// `(ifi_flags, ifi_change)` for the header.
    pub(crate) fn flags(&self) -> (u32, u32) {
        match self.up {
            Some(true) => (IFF_UP, IFF_UP),
            Some(false) => (0, IFF_UP),
            None => (0, 0),
        }
    }

    /// Appends the attributes (everything but the header).
    pub(crate) fn write_attrs(&self, b: &mut MessageBuilder) {
        if let Some(n) = &self.name {
            b.attr_str(IFLA_IFNAME, n);
        }
        if let Some(p) = self.parent {
            b.attr_u32(IFLA_LINK, p);
        }
        if let Some(m) = self.mtu {
            b.attr_u32(IFLA_MTU, m);
        }
        if let Some(a) = &self.address {
            b.attr_bytes(IFLA_ADDRESS, a);
        }
        if let Some(a) = &self.alias {
            // Without a NUL, as `ip` sends it: an empty alias then removes it.
            b.attr_bytes(IFLA_IFALIAS, a.as_bytes());
        }
        if let Some(q) = self.txqlen {
            b.attr_u32(IFLA_TXQLEN, q);
        }
        if let Some(m) = self.master {
            b.attr_u32(IFLA_MASTER, m);
        }
        if let Some(ns) = &self.netns {
            ns.write_link_attr(b);
        }
        if let Some(k) = &self.kind {
            k.write(b);
        }
    }
}

/// The words `ip link` uses for kind options, both ways.
///
/// ```
/// use nlkit_route::kind_names::{lookup, name, BOND_MODES, MACVLAN_MODES};
/// assert_eq!(name(MACVLAN_MODES, 4), Some("bridge"));
/// assert_eq!(lookup(BOND_MODES, "802.3ad"), Some(4));
/// ```
pub mod kind_names {
    use nlkit_wire::consts::*;

    /// `MACVLAN_MODE_*`.
    pub const MACVLAN_MODES: &[(u32, &str)] = &[
        (MACVLAN_MODE_PRIVATE, "private"),
        (MACVLAN_MODE_VEPA, "vepa"),
        (MACVLAN_MODE_BRIDGE, "bridge"),
        (MACVLAN_MODE_PASSTHRU, "passthru"),
        (MACVLAN_MODE_SOURCE, "source"),
    ];
    /// `IPVLAN_MODE_*`.
    pub const IPVLAN_MODES: &[(u32, &str)] = &[
        (IPVLAN_MODE_L2 as u32, "l2"),
        (IPVLAN_MODE_L3 as u32, "l3"),
        (IPVLAN_MODE_L3S as u32, "l3s"),
    ];
    /// `IPVLAN_F_*` (0 is bridge).
    pub const IPVLAN_FLAGS: &[(u32, &str)] = &[
        (0, "bridge"),
        (IPVLAN_F_PRIVATE as u32, "private"),
        (IPVLAN_F_VEPA as u32, "vepa"),
    ];
    /// `BOND_MODE_*`.
    pub const BOND_MODES: &[(u32, &str)] = &[
        (0, "balance-rr"),
        (1, "active-backup"),
        (2, "balance-xor"),
        (3, "broadcast"),
        (4, "802.3ad"),
        (5, "balance-tlb"),
        (6, "balance-alb"),
    ];
    /// VLAN protocols.
    pub const VLAN_PROTOCOLS: &[(u32, &str)] = &[
        (ETH_P_8021Q as u32, "802.1Q"),
        (ETH_P_8021AD as u32, "802.1ad"),
    ];

    /// The word for `value` in `table`.
    pub fn name(table: &[(u32, &'static str)], value: u32) -> Option<&'static str> {
        table.iter().find(|e| e.0 == value).map(|e| e.1)
    }
    /// The value of `word` in `table` (case-insensitive, as `ip` accepts `802.1q`), or a
    /// number.
    pub fn lookup(table: &[(u32, &str)], word: &str) -> Option<u32> {
        table
            .iter()
            .find(|e| e.1.eq_ignore_ascii_case(word))
            .map(|e| e.0)
            .or_else(|| word.parse().ok())
    }
}
