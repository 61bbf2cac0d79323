//! Link kinds: typed views of `IFLA_LINKINFO` / `IFLA_INFO_DATA` (bridge, vlan, vxlan,
//! macvlan/macvtap, ipvlan/ipvtap, bond, vrf) and the owned specs that create or change
//! them ([`LinkKind`](crate::LinkKind), [`LinkSpec`](crate::LinkSpec), in `linkinfo_spec`).
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
use nlkit_wire::{Attrs, WireError};

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
