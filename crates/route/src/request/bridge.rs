//! Bridge FDB (`AF_BRIDGE` neighbours) and bridge VLAN (`AF_BRIDGE` links) requests.

use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder, NdMsg};

use super::{Built, CHANGE, DUMP};
use crate::{BridgeVlanSpec, Fdb, FdbOp, NeighView};

/// FDB dump filter: by bridge (`br BR`) and by port (`dev DEV`), kernel-side with strict
/// checking and re-checked in user space by [`FdbFilter::matches`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdbFilter {
    /// Only entries of ports of this bridge (`NDA_MASTER`).
    pub master: Option<u32>,
    /// Only entries of this port (`ndm_ifindex`).
    pub ifindex: Option<u32>,
}

impl FdbFilter {
    /// The same test in user space, as far as the entry tells: a port's own (`self`)
    /// entries carry no `NDA_MASTER`, so for those the kernel's filter decides.
    pub fn matches(&self, n: &NeighView<'_>) -> bool {
        n.family() == AF_BRIDGE
            && self.ifindex.is_none_or(|i| n.ifindex() == i)
            && self
                .master
                .is_none_or(|m| n.master().is_none_or(|x| x == m) || n.ifindex() == m)
    }
}

/// `RTM_GETNEIGH` dump of `AF_BRIDGE` (`bridge fdb show [br BR] [dev DEV]`).
///
/// ```
/// use nlkit_route::request::{dump_fdb, FdbFilter};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// dump_fdb(&mut b, 1, &FdbFilter { master: Some(3), ifindex: None }).unwrap();
/// ```
pub fn dump_fdb(b: &mut MessageBuilder, seq: u32, filter: &FdbFilter) -> Built {
    b.begin(RTM_GETNEIGH, DUMP, seq);
    b.header(&NdMsg {
        family: AF_BRIDGE,
        ifindex: filter.ifindex.unwrap_or(0) as i32,
        ..Default::default()
    });
    if let Some(m) = filter.master {
        b.attr_u32(NDA_MASTER, m);
    }
    b.finish()
}

fn fdb_msg(b: &mut MessageBuilder, ty: u16, flags: u16, seq: u32, e: &Fdb) {
    b.begin(ty, flags, seq);
    b.header(&NdMsg {
        family: AF_BRIDGE,
        ifindex: e.ifindex as i32,
        state: e.state,
        flags: e.flags,
        ty: 0,
    });
    b.attr_bytes(NDA_LLADDR, &e.lladdr);
    if let Some(d) = e.dst {
        b.attr_ip(NDA_DST, d);
    }
    if let Some(v) = e.vlan {
        b.attr_u16(NDA_VLAN, v);
    }
    if let Some(p) = e.port {
        b.attr_be16(NDA_PORT, p);
    }
    if let Some(v) = e.vni {
        b.attr_u32(NDA_VNI, v);
    }
    if let Some(v) = e.src_vni {
        b.attr_u32(NDA_SRC_VNI, v);
    }
    if let Some(v) = e.via {
        b.attr_u32(NDA_IFINDEX, v);
    }
}

/// `RTM_NEWNEIGH` of `AF_BRIDGE` (`bridge fdb add|append|replace`).
///
/// ```
/// use nlkit_route::{request, Fdb, FdbOp};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// let e = Fdb::new(5, &[0; 6]).dst("10.0.0.2".parse().unwrap()).vni(42);
/// request::add_fdb(&mut b, 1, &e, FdbOp::Append).unwrap();
/// ```
pub fn add_fdb(b: &mut MessageBuilder, seq: u32, e: &Fdb, op: FdbOp) -> Built {
    let mode = match op {
        FdbOp::Add => NLM_F_EXCL,
        FdbOp::Append => NLM_F_APPEND,
        FdbOp::Replace => NLM_F_REPLACE,
    };
    fdb_msg(b, RTM_NEWNEIGH, CHANGE | NLM_F_CREATE | mode, seq, e);
    b.finish()
}

/// `RTM_DELNEIGH` of `AF_BRIDGE` (`bridge fdb del`).
///
/// ```
/// use nlkit_route::{request, Fdb};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// request::del_fdb(&mut b, 1, &Fdb::new(5, &[2, 0, 0, 0, 0, 1]).master()).unwrap();
/// ```
pub fn del_fdb(b: &mut MessageBuilder, seq: u32, e: &Fdb) -> Built {
    fdb_msg(b, RTM_DELNEIGH, CHANGE, seq, e);
    b.finish()
}

/// `RTM_GETLINK` dump of `AF_BRIDGE` with `RTEXT_FILTER_BRVLAN`: each bridge port (and
/// bridge) with its VLANs in `IFLA_AF_SPEC` (`bridge vlan show`).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::dump_bridge_vlans(&mut b, 1).unwrap();
/// ```
pub fn dump_bridge_vlans(b: &mut MessageBuilder, seq: u32) -> Built {
    b.begin(RTM_GETLINK, DUMP, seq);
    b.header(&IfInfoMsg {
        family: AF_BRIDGE,
        ..Default::default()
    });
    b.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN);
    b.finish()
}

fn vlan_msg(b: &mut MessageBuilder, ty: u16, seq: u32, v: &BridgeVlanSpec) {
    b.begin(ty, CHANGE, seq);
    b.header(&IfInfoMsg {
        family: AF_BRIDGE,
        index: v.ifindex as i32,
        ..Default::default()
    });
    let spec = b.nest_begin(IFLA_AF_SPEC);
    let mut flags = 0;
    if v.self_ {
        flags |= BRIDGE_FLAGS_SELF;
    }
    if v.master {
        flags |= BRIDGE_FLAGS_MASTER;
    }
    if flags != 0 {
        b.attr_u16(IFLA_BRIDGE_FLAGS, flags);
    }
    let mut info = 0;
    if v.pvid {
        info |= BRIDGE_VLAN_INFO_PVID;
    }
    if v.untagged {
        info |= BRIDGE_VLAN_INFO_UNTAGGED;
    }
    let entry = |flags: u16, vid: u16| {
        let mut e = [0u8; 4];
        e[..2].copy_from_slice(&flags.to_ne_bytes());
        e[2..].copy_from_slice(&vid.to_ne_bytes());
        e
    };
    match v.vid_end.filter(|&e| e > v.vid) {
        Some(end) => {
            b.attr_bytes(
                IFLA_BRIDGE_VLAN_INFO,
                &entry(info | BRIDGE_VLAN_INFO_RANGE_BEGIN, v.vid),
            );
            b.attr_bytes(
                IFLA_BRIDGE_VLAN_INFO,
                &entry(info | BRIDGE_VLAN_INFO_RANGE_END, end),
            );
        }
        None => {
            b.attr_bytes(IFLA_BRIDGE_VLAN_INFO, &entry(info, v.vid));
        }
    }
    b.nest_end(spec);
}

/// `RTM_SETLINK` of `AF_BRIDGE`: adds a VLAN (or range) to a port (`bridge vlan add`).
///
/// ```
/// use nlkit_route::{request, BridgeVlanSpec};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// request::add_bridge_vlan(&mut b, 1, &BridgeVlanSpec { pvid: true, ..BridgeVlanSpec::new(4, 10) }).unwrap();
/// ```
pub fn add_bridge_vlan(b: &mut MessageBuilder, seq: u32, v: &BridgeVlanSpec) -> Built {
    vlan_msg(b, RTM_SETLINK, seq, v);
    b.finish()
}

/// `RTM_DELLINK` of `AF_BRIDGE`: removes a VLAN (or range) from a port (`bridge vlan del`);
/// the port itself stays.
///
/// ```
/// use nlkit_route::{request, BridgeVlanSpec};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// request::del_bridge_vlan(&mut b, 1, &BridgeVlanSpec::new(4, 10)).unwrap();
/// ```
pub fn del_bridge_vlan(b: &mut MessageBuilder, seq: u32, v: &BridgeVlanSpec) -> Built {
    vlan_msg(b, RTM_DELLINK, seq, v);
    b.finish()
}
