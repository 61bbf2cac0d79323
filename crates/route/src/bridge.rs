//! Bridge forwarding database and VLANs: the owned request specs ([`Fdb`], [`BridgeVlanSpec`])
//! and the VLAN entries of a bridge port ([`BridgeVlan`], from `IFLA_AF_SPEC` of an
//! `AF_BRIDGE` link message).
//!
//! FDB entries are `AF_BRIDGE` neighbour messages and are read with
//! [`NeighView`](crate::NeighView) (`lladdr`, `vlan`, `dst`, `port`, `vni`, `master`, flags
//! `NTF_SELF` / `NTF_MASTER`).
//!
//! ```
//! use nlkit_wire::{consts::*, Messages, MessageBuilder};
//! use nlkit_route::{request, Fdb, FdbOp, NeighView};
//! let e = Fdb::new(4, &[2, 0, 0, 0, 0, 1]).master().vlan(10);
//! let mut b = MessageBuilder::new();
//! request::add_fdb(&mut b, 1, &e, FdbOp::Append).unwrap();
//! let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
//! let v = NeighView::parse(&m).unwrap();
//! assert_eq!((v.family(), v.vlan(), v.flags()), (AF_BRIDGE, Some(10), NTF_MASTER));
//! ```

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{Attrs, WireError};

/// An FDB entry to add or delete (`bridge fdb add|append|replace|del`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fdb {
    /// The port (or VXLAN device) index.
    pub ifindex: u32,
    /// The MAC address.
    pub lladdr: Vec<u8>,
    /// `NTF_SELF` and/or `NTF_MASTER` (and `NTF_STICKY`, `NTF_EXT_LEARNED`…). With neither,
    /// the kernel applies the request to the bridge master's FDB only when the port has one;
    /// `bridge` then assumes `self`, and so does [`Fdb::new`].
    pub flags: u8,
    /// `NUD_*`: `NUD_NOARP | NUD_PERMANENT` (permanent, the default as in `bridge`),
    /// `NUD_NOARP | NUD_REACHABLE` (static) or `NUD_REACHABLE` (dynamic).
    pub state: u16,
    /// `NDA_DST`: the remote VTEP (VXLAN).
    pub dst: Option<IpAddr>,
    /// `NDA_VNI` (VXLAN).
    pub vni: Option<u32>,
    /// `NDA_PORT`: the remote UDP port (VXLAN).
    pub port: Option<u16>,
    /// `NDA_VLAN`.
    pub vlan: Option<u16>,
    /// `NDA_SRC_VNI` (VXLAN).
    pub src_vni: Option<u32>,
    /// `NDA_IFINDEX`: the outgoing device for the remote (VXLAN `via DEV`).
    pub via: Option<u32>,
}

impl Fdb {
    /// A permanent `self` entry for `mac` on `ifindex` (what `bridge fdb add MAC dev DEV`
    /// sends).
    pub fn new(ifindex: u32, mac: &[u8]) -> Self {
        Fdb {
            ifindex,
            lladdr: mac.to_vec(),
            flags: NTF_SELF,
            state: NUD_NOARP | NUD_PERMANENT,
            dst: None,
            vni: None,
            port: None,
            vlan: None,
            src_vni: None,
            via: None,
        }
    }
    /// In the bridge master's FDB (`master`) instead of the device's own (`self`).
    pub fn master(mut self) -> Self {
        self.flags = (self.flags & !NTF_SELF) | NTF_MASTER;
        self
    }
    /// In both the master's FDB and the device's own.
    pub fn master_and_self(mut self) -> Self {
        self.flags |= NTF_MASTER | NTF_SELF;
        self
    }
    /// Sets the VLAN.
    pub fn vlan(mut self, vid: u16) -> Self {
        self.vlan = Some(vid);
        self
    }
    /// Sets the remote VTEP.
    pub fn dst(mut self, dst: IpAddr) -> Self {
        self.dst = Some(dst);
        self
    }
    /// Sets the VNI.
    pub fn vni(mut self, vni: u32) -> Self {
        self.vni = Some(vni);
        self
    }
    /// Sets the remote UDP port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Sets the state (see [`Fdb::state`](Fdb#structfield.state)).
    pub fn state(mut self, state: u16) -> Self {
        self.state = state;
        self
    }
}

/// How an FDB entry is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbOp {
    /// `bridge fdb add`: create, fail if it exists (`NLM_F_EXCL`).
    Add,
    /// `bridge fdb append`: add another remote for the same MAC (`NLM_F_APPEND`; VXLAN).
    Append,
    /// `bridge fdb replace`: create or replace (`NLM_F_REPLACE`).
    Replace,
}

/// One VLAN of a bridge port or of the bridge itself (`struct bridge_vlan_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BridgeVlan {
    /// The VLAN id.
    pub vid: u16,
    /// `BRIDGE_VLAN_INFO_*` (`PVID`, `UNTAGGED`, `RANGE_BEGIN`, `RANGE_END`, …).
    pub flags: u16,
}

impl BridgeVlan {
    /// True for the port's PVID.
    pub fn pvid(&self) -> bool {
        self.flags & BRIDGE_VLAN_INFO_PVID != 0
    }
    /// True when egress is untagged.
    pub fn untagged(&self) -> bool {
        self.flags & BRIDGE_VLAN_INFO_UNTAGGED != 0
    }
}

/// The `IFLA_BRIDGE_VLAN_INFO` entries of an `IFLA_AF_SPEC` payload, in order. A longer
/// struct from a newer kernel is accepted (its first four bytes are read); other attributes
/// are skipped.
///
/// ```
/// use nlkit_route::bridge_vlans;
/// // IFLA_BRIDGE_VLAN_INFO { flags: PVID|UNTAGGED, vid: 1 }
/// let spec = [8, 0, 2, 0, 6, 0, 1, 0];
/// let v: Vec<_> = bridge_vlans(&spec).collect::<Result<_, _>>().unwrap();
/// assert_eq!((v[0].vid, v[0].pvid(), v[0].untagged()), (1, true, true));
/// ```
pub fn bridge_vlans(af_spec: &[u8]) -> impl Iterator<Item = Result<BridgeVlan, WireError>> + '_ {
    Attrs::new(af_spec).filter_map(|a| match a {
        Err(e) => Some(Err(e)),
        Ok(a) if a.ty() == IFLA_BRIDGE_VLAN_INFO => Some(a.prefix(4).map(|p| BridgeVlan {
            flags: u16::from_ne_bytes([p[0], p[1]]),
            vid: u16::from_ne_bytes([p[2], p[3]]),
        })),
        Ok(_) => None,
    })
}

/// A VLAN to add to or remove from a bridge port (`bridge vlan add|del dev DEV vid N[-M]
/// [pvid] [untagged] [self] [master]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeVlanSpec {
    /// The port (or the bridge itself, with `self_`).
    pub ifindex: u32,
    /// The VLAN id, or the first of a range.
    pub vid: u16,
    /// The last VLAN of a range.
    pub vid_end: Option<u16>,
    /// Make it the port's PVID.
    pub pvid: bool,
    /// Egress untagged.
    pub untagged: bool,
    /// `BRIDGE_FLAGS_SELF`: on the device itself (the bridge device).
    pub self_: bool,
    /// `BRIDGE_FLAGS_MASTER`: on the port of the master (the default).
    pub master: bool,
}

impl BridgeVlanSpec {
    /// VLAN `vid` on port `ifindex`, tagged, not the PVID.
    pub fn new(ifindex: u32, vid: u16) -> Self {
        BridgeVlanSpec {
            ifindex,
            vid,
            vid_end: None,
            pvid: false,
            untagged: false,
            self_: false,
            master: false,
        }
    }
}
