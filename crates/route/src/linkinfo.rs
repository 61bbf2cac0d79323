//! Link kinds: typed views of `IFLA_LINKINFO` / `IFLA_INFO_DATA` (bridge, vlan, vxlan,
//! macvlan/macvtap, ipvlan/ipvtap, bond, vrf) and the owned specs that create or change
//! them ([`LinkKind`], [`LinkSpec`]).
//!
//! The views decode the kind-specific attributes of a received link message in one pass;
//! attributes they do not know (newer kernels) are skipped and counted, never an error.
//!
//! ```
//! use nlkit_wire::{Messages, MessageBuilder};
//! use nlkit_route::{request, KindInfo, LinkKind, LinkSpec, LinkView, VxlanOpts};
//! let spec = LinkSpec::new("vx0", LinkKind::Vxlan(VxlanOpts {
//!     id: Some(42), dstport: Some(4789), learning: Some(false), ..Default::default()
//! }));
//! let mut b = MessageBuilder::new();
//! request::add_link(&mut b, 1, &spec).unwrap();
//! let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
//! let l = LinkView::parse_any(&m).unwrap();
//! let Some(KindInfo::Vxlan(v)) = l.kind_info().unwrap() else { panic!() };
//! assert_eq!((v.id, v.port, v.learning), (Some(42), Some(4789), Some(false)));
//! ```

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{Attrs, MessageBuilder, WireError};

use crate::netns::NetnsRef;

/// The decoded `IFLA_INFO_DATA` of a link, by kind; see [`LinkView::kind_info`](crate::LinkView::kind_info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindInfo<'a> {
    /// `bridge`.
    Bridge(BridgeInfo),
    /// `vlan` (802.1Q or 802.1ad).
    Vlan(VlanInfo),
    /// `vxlan`.
    Vxlan(VxlanInfo),
    /// `macvlan` or `macvtap` (the kind string tells which).
    Macvlan(MacvlanInfo),
    /// `ipvlan` or `ipvtap`.
    Ipvlan(IpvlanInfo),
    /// `bond`.
    Bond(BondInfo),
    /// `vrf`.
    Vrf(VrfInfo),
    /// Any other kind (veth, ifb, …): its raw `IFLA_INFO_DATA` attributes, if any.
    Other {
        /// `IFLA_INFO_KIND`.
        kind: &'a str,
        /// The raw nested attributes.
        data: &'a [u8],
    },
}

impl<'a> KindInfo<'a> {
    /// Decodes `data` (the payload of `IFLA_INFO_DATA`) for `kind`.
    ///
    /// ```
    /// use nlkit_route::KindInfo;
    /// // IFLA_VRF_TABLE = 10
    /// let data = [8, 0, 1, 0, 10, 0, 0, 0];
    /// let KindInfo::Vrf(v) = KindInfo::parse("vrf", &data).unwrap() else { panic!() };
    /// assert_eq!(v.table, Some(10));
    /// ```
    pub fn parse(kind: &'a str, data: &'a [u8]) -> Result<Self, WireError> {
        Ok(match kind {
            "bridge" => KindInfo::Bridge(BridgeInfo::parse(data)?),
            "vlan" => KindInfo::Vlan(VlanInfo::parse(data)?),
            "vxlan" => KindInfo::Vxlan(VxlanInfo::parse(data)?),
            "macvlan" | "macvtap" => KindInfo::Macvlan(MacvlanInfo::parse(data)?),
            "ipvlan" | "ipvtap" => KindInfo::Ipvlan(IpvlanInfo::parse(data)?),
            "bond" => KindInfo::Bond(BondInfo::parse(data)?),
            "vrf" => KindInfo::Vrf(VrfInfo::parse(data)?),
            _ => KindInfo::Other { kind, data },
        })
    }
}

/// Bridge settings (`IFLA_BR_*`). Times are in centiseconds (USER_HZ), as the kernel sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct BridgeInfo {
    pub forward_delay: Option<u32>,
    pub hello_time: Option<u32>,
    pub max_age: Option<u32>,
    pub ageing_time: Option<u32>,
    pub stp_state: Option<u32>,
    pub priority: Option<u16>,
    pub vlan_filtering: Option<bool>,
    /// `IFLA_BR_VLAN_PROTOCOL` (`ETH_P_8021Q` or `ETH_P_8021AD`), host order.
    pub vlan_protocol: Option<u16>,
    pub group_fwd_mask: Option<u16>,
    pub root_port: Option<u16>,
    pub mcast_snooping: Option<bool>,
    pub default_pvid: Option<u16>,
    /// Attributes not decoded here.
    pub unknown_attrs: u32,
}

impl BridgeInfo {
    /// Decodes bridge `IFLA_INFO_DATA`.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut v = BridgeInfo::default();
        for a in Attrs::new(data) {
            let a = a?;
            match a.ty() {
                IFLA_BR_FORWARD_DELAY => v.forward_delay = Some(a.u32()?),
                IFLA_BR_HELLO_TIME => v.hello_time = Some(a.u32()?),
                IFLA_BR_MAX_AGE => v.max_age = Some(a.u32()?),
                IFLA_BR_AGEING_TIME => v.ageing_time = Some(a.u32()?),
                IFLA_BR_STP_STATE => v.stp_state = Some(a.u32()?),
                IFLA_BR_PRIORITY => v.priority = Some(a.u16()?),
                IFLA_BR_VLAN_FILTERING => v.vlan_filtering = Some(a.u8()? != 0),
                IFLA_BR_VLAN_PROTOCOL => v.vlan_protocol = Some(a.be16()?),
                IFLA_BR_GROUP_FWD_MASK => v.group_fwd_mask = Some(a.u16()?),
                IFLA_BR_ROOT_PORT => v.root_port = Some(a.u16()?),
                IFLA_BR_MCAST_SNOOPING => v.mcast_snooping = Some(a.u8()? != 0),
                IFLA_BR_VLAN_DEFAULT_PVID => v.default_pvid = Some(a.u16()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }
}

/// VLAN settings (`IFLA_VLAN_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct VlanInfo {
    pub id: Option<u16>,
    /// `ETH_P_8021Q` or `ETH_P_8021AD`, host order.
    pub protocol: Option<u16>,
    /// `struct ifla_vlan_flags` `flags` (`VLAN_FLAG_*`).
    pub flags: Option<u32>,
    pub unknown_attrs: u32,
}

impl VlanInfo {
    /// Decodes vlan `IFLA_INFO_DATA`.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut v = VlanInfo::default();
        for a in Attrs::new(data) {
            let a = a?;
            match a.ty() {
                IFLA_VLAN_ID => v.id = Some(a.u16()?),
                IFLA_VLAN_PROTOCOL => v.protocol = Some(a.be16()?),
                IFLA_VLAN_FLAGS => {
                    let p = a.prefix(4)?;
                    v.flags = Some(u32::from_ne_bytes([p[0], p[1], p[2], p[3]]));
                }
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }
}

/// VXLAN settings (`IFLA_VXLAN_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct VxlanInfo {
    /// The VNI.
    pub id: Option<u32>,
    /// `IFLA_VXLAN_GROUP`/`GROUP6`: the multicast group or the unicast remote.
    pub group: Option<IpAddr>,
    /// `IFLA_VXLAN_LOCAL`/`LOCAL6`.
    pub local: Option<IpAddr>,
    /// `IFLA_VXLAN_LINK`: the underlay device.
    pub link: Option<u32>,
    pub ttl: Option<u8>,
    pub tos: Option<u8>,
    pub learning: Option<bool>,
    pub ageing: Option<u32>,
    pub limit: Option<u32>,
    /// `IFLA_VXLAN_PORT`: the destination UDP port (host order).
    pub port: Option<u16>,
    /// `IFLA_VXLAN_PORT_RANGE`: source port range `(low, high)`, host order.
    pub port_range: Option<(u16, u16)>,
    pub udp_csum: Option<bool>,
    pub collect_metadata: Option<bool>,
    pub proxy: Option<bool>,
    pub rsc: Option<bool>,
    pub l2miss: Option<bool>,
    pub l3miss: Option<bool>,
    pub udp_zero_csum6_tx: Option<bool>,
    pub udp_zero_csum6_rx: Option<bool>,
    pub remcsum_tx: Option<bool>,
    pub remcsum_rx: Option<bool>,
    /// `IFLA_VXLAN_GBP` present.
    pub gbp: bool,
    /// `IFLA_VXLAN_GPE` present.
    pub gpe: bool,
    pub ttl_inherit: Option<bool>,
    /// `VXLAN_DF_*`: 0 unset, 1 set, 2 inherit.
    pub df: Option<u8>,
    /// The flow label (host order).
    pub label: Option<u32>,
    pub vnifilter: Option<bool>,
    pub unknown_attrs: u32,
}

impl VxlanInfo {
    /// Decodes vxlan `IFLA_INFO_DATA`.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut v = VxlanInfo::default();
        for a in Attrs::new(data) {
            let a = a?;
            match a.ty() {
                IFLA_VXLAN_ID => v.id = Some(a.u32()?),
                IFLA_VXLAN_GROUP => v.group = Some(a.ipv4()?.into()),
                IFLA_VXLAN_GROUP6 => v.group = Some(a.ipv6()?.into()),
                IFLA_VXLAN_LOCAL => v.local = Some(a.ipv4()?.into()),
                IFLA_VXLAN_LOCAL6 => v.local = Some(a.ipv6()?.into()),
                IFLA_VXLAN_LINK => v.link = Some(a.u32()?),
                IFLA_VXLAN_TTL => v.ttl = Some(a.u8()?),
                IFLA_VXLAN_TOS => v.tos = Some(a.u8()?),
                IFLA_VXLAN_LEARNING => v.learning = Some(a.u8()? != 0),
                IFLA_VXLAN_AGEING => v.ageing = Some(a.u32()?),
                IFLA_VXLAN_LIMIT => v.limit = Some(a.u32()?),
                IFLA_VXLAN_PORT => v.port = Some(a.be16()?),
                IFLA_VXLAN_PORT_RANGE => {
                    let p = a.prefix(4)?;
                    v.port_range = Some((
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    ));
                }
                IFLA_VXLAN_UDP_CSUM => v.udp_csum = Some(a.u8()? != 0),
                IFLA_VXLAN_COLLECT_METADATA => v.collect_metadata = Some(a.u8()? != 0),
                IFLA_VXLAN_PROXY => v.proxy = Some(a.u8()? != 0),
                IFLA_VXLAN_RSC => v.rsc = Some(a.u8()? != 0),
                IFLA_VXLAN_L2MISS => v.l2miss = Some(a.u8()? != 0),
                IFLA_VXLAN_L3MISS => v.l3miss = Some(a.u8()? != 0),
                IFLA_VXLAN_UDP_ZERO_CSUM6_TX => v.udp_zero_csum6_tx = Some(a.u8()? != 0),
                IFLA_VXLAN_UDP_ZERO_CSUM6_RX => v.udp_zero_csum6_rx = Some(a.u8()? != 0),
                IFLA_VXLAN_REMCSUM_TX => v.remcsum_tx = Some(a.u8()? != 0),
                IFLA_VXLAN_REMCSUM_RX => v.remcsum_rx = Some(a.u8()? != 0),
                IFLA_VXLAN_GBP => v.gbp = true,
                IFLA_VXLAN_GPE => v.gpe = true,
                IFLA_VXLAN_TTL_INHERIT => v.ttl_inherit = Some(a.u8()? != 0),
                IFLA_VXLAN_DF => v.df = Some(a.u8()?),
                IFLA_VXLAN_LABEL => v.label = Some(a.be32()?),
                IFLA_VXLAN_VNIFILTER => v.vnifilter = Some(a.u8()? != 0),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }
}

/// macvlan / macvtap settings (`IFLA_MACVLAN_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct MacvlanInfo {
    /// `MACVLAN_MODE_*`.
    pub mode: Option<u32>,
    /// `MACVLAN_FLAG_*`.
    pub flags: Option<u16>,
    pub bc_queue_len: Option<u32>,
    pub bc_queue_len_used: Option<u32>,
    pub unknown_attrs: u32,
}

impl MacvlanInfo {
    /// Decodes macvlan `IFLA_INFO_DATA`.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut v = MacvlanInfo::default();
        for a in Attrs::new(data) {
            let a = a?;
            match a.ty() {
                IFLA_MACVLAN_MODE => v.mode = Some(a.u32()?),
                IFLA_MACVLAN_FLAGS => v.flags = Some(a.u16()?),
                IFLA_MACVLAN_BC_QUEUE_LEN => v.bc_queue_len = Some(a.u32()?),
                IFLA_MACVLAN_BC_QUEUE_LEN_USED => v.bc_queue_len_used = Some(a.u32()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }
}

/// ipvlan / ipvtap settings (`IFLA_IPVLAN_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct IpvlanInfo {
    /// `IPVLAN_MODE_*` (l2, l3, l3s).
    pub mode: Option<u16>,
    /// `IPVLAN_F_*` (bridge 0, private, vepa).
    pub flags: Option<u16>,
    pub unknown_attrs: u32,
}

impl IpvlanInfo {
    /// Decodes ipvlan `IFLA_INFO_DATA`.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut v = IpvlanInfo::default();
        for a in Attrs::new(data) {
            let a = a?;
            match a.ty() {
                IFLA_IPVLAN_MODE => v.mode = Some(a.u16()?),
                IFLA_IPVLAN_FLAGS => v.flags = Some(a.u16()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }
}

/// Bond settings (`IFLA_BOND_*`; the common ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct BondInfo {
    /// `BOND_MODE_*` (0 balance-rr … 6 balance-alb).
    pub mode: Option<u8>,
    pub active_slave: Option<u32>,
    pub miimon: Option<u32>,
    pub updelay: Option<u32>,
    pub downdelay: Option<u32>,
    pub unknown_attrs: u32,
}

impl BondInfo {
    /// Decodes bond `IFLA_INFO_DATA`.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut v = BondInfo::default();
        for a in Attrs::new(data) {
            let a = a?;
            match a.ty() {
                IFLA_BOND_MODE => v.mode = Some(a.u8()?),
                IFLA_BOND_ACTIVE_SLAVE => v.active_slave = Some(a.u32()?),
                IFLA_BOND_MIIMON => v.miimon = Some(a.u32()?),
                IFLA_BOND_UPDELAY => v.updelay = Some(a.u32()?),
                IFLA_BOND_DOWNDELAY => v.downdelay = Some(a.u32()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }
}

/// VRF settings (`IFLA_VRF_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct VrfInfo {
    pub table: Option<u32>,
    pub unknown_attrs: u32,
}

impl VrfInfo {
    /// Decodes vrf `IFLA_INFO_DATA`.
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut v = VrfInfo::default();
        for a in Attrs::new(data) {
            let a = a?;
            match a.ty() {
                IFLA_VRF_TABLE => v.table = Some(a.u32()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Owned specs

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
