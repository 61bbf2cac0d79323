//! Neighbours (`RTM_NEWNEIGH` / `RTM_DELNEIGH`): a zero-copy view and the owned request spec.

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{Message, NdMsg, WireError};

use crate::{check_type, ip_attr};

/// A borrowed view of one neighbour message, decoded in one pass.
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_route::{request, NeighView, Neighbour};
/// let n = Neighbour::new(3, "10.0.0.2".parse().unwrap())
///     .lladdr(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
/// let mut b = MessageBuilder::new();
/// request::add_neigh(&mut b, 1, &n, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NeighView::parse(&m).unwrap();
/// assert_eq!((v.ifindex(), v.dst(), v.lladdr()), (3, Some(n.dst), Some(&n.lladdr.unwrap()[..])));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct NeighView<'a> {
    msg_type: u16,
    hdr: NdMsg,
    dst: Option<IpAddr>,
    lladdr: Option<&'a [u8]>,
    probes: Option<u32>,
    vlan: Option<u16>,
    master: Option<u32>,
    protocol: Option<u8>,
    port: Option<u16>,
    vni: Option<u32>,
    src_vni: Option<u32>,
    via: Option<u32>,
    link_netnsid: Option<i32>,
    nh_id: Option<u32>,
    flags_ext: Option<u32>,
    unknown_attrs: u32,
}

impl<'a> NeighView<'a> {
    /// Decodes an `RTM_NEWNEIGH` or `RTM_DELNEIGH` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWNEIGH, RTM_DELNEIGH)?;
        let (hdr, attrs) = msg.family_header::<NdMsg>()?;
        let mut v = NeighView {
            msg_type: msg.ty(),
            hdr,
            dst: None,
            lladdr: None,
            probes: None,
            vlan: None,
            master: None,
            protocol: None,
            port: None,
            vni: None,
            src_vni: None,
            via: None,
            link_netnsid: None,
            nh_id: None,
            flags_ext: None,
            unknown_attrs: 0,
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                NDA_DST => v.dst = ip_attr(hdr.family, &a)?,
                NDA_LLADDR => v.lladdr = Some(a.payload()),
                NDA_PROBES => v.probes = Some(a.u32()?),
                NDA_VLAN => v.vlan = Some(a.u16()?),
                NDA_MASTER => v.master = Some(a.u32()?),
                NDA_PROTOCOL => v.protocol = Some(a.u8()?),
                NDA_PORT => v.port = Some(a.be16()?),
                NDA_VNI => v.vni = Some(a.u32()?),
                NDA_SRC_VNI => v.src_vni = Some(a.u32()?),
                NDA_IFINDEX => v.via = Some(a.u32()?),
                NDA_LINK_NETNSID => v.link_netnsid = Some(a.i32()?),
                NDA_NH_ID => v.nh_id = Some(a.u32()?),
                NDA_FLAGS_EXT => v.flags_ext = Some(a.u32()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    /// `nlmsg_type`: `RTM_NEWNEIGH` or `RTM_DELNEIGH`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
    }
    /// The `ndmsg` header.
    pub fn header(&self) -> NdMsg {
        self.hdr
    }
    /// `AF_INET`, `AF_INET6` or `AF_BRIDGE`.
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.hdr.ifindex as u32
    }
    /// `NUD_*` state bits.
    pub fn state(&self) -> u16 {
        self.hdr.state
    }
    /// `NTF_*` flags.
    pub fn flags(&self) -> u8 {
        self.hdr.flags
    }
    /// `NDA_DST`: the neighbour's IP address.
    pub fn dst(&self) -> Option<IpAddr> {
        self.dst
    }
    /// `NDA_LLADDR`: the link-layer address.
    pub fn lladdr(&self) -> Option<&'a [u8]> {
        self.lladdr
    }
    /// `NDA_PROBES`.
    pub fn probes(&self) -> Option<u32> {
        self.probes
    }
    /// `NDA_VLAN` (bridge FDB).
    pub fn vlan(&self) -> Option<u16> {
        self.vlan
    }
    /// `NDA_MASTER`.
    pub fn master(&self) -> Option<u32> {
        self.master
    }
    /// `NDA_PROTOCOL`.
    pub fn protocol(&self) -> Option<u8> {
        self.protocol
    }
    /// `NDA_PORT`: the remote UDP port of a VXLAN FDB entry (host order).
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// `NDA_VNI`: the VNI of a VXLAN FDB entry.
    pub fn vni(&self) -> Option<u32> {
        self.vni
    }
    /// `NDA_SRC_VNI`.
    pub fn src_vni(&self) -> Option<u32> {
        self.src_vni
    }
    /// `NDA_IFINDEX`: the outgoing device of a VXLAN FDB remote (`via DEV`).
    pub fn via(&self) -> Option<u32> {
        self.via
    }
    /// `NDA_LINK_NETNSID`: the namespace of [`via`](NeighView::via).
    pub fn link_netnsid(&self) -> Option<i32> {
        self.link_netnsid
    }
    /// `NDA_NH_ID`: the nexthop object of an FDB entry.
    pub fn nh_id(&self) -> Option<u32> {
        self.nh_id
    }
    /// `NDA_FLAGS_EXT` (`NTF_EXT_*`).
    pub fn flags_ext(&self) -> Option<u32> {
        self.flags_ext
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }

    /// An owned copy usable as a request; `None` without `NDA_DST`.
    pub fn to_owned(&self) -> Option<Neighbour> {
        Some(Neighbour {
            ifindex: self.ifindex(),
            dst: self.dst?,
            lladdr: self.lladdr.map(<[u8]>::to_vec),
            state: self.state(),
            flags: self.flags(),
        })
    }
}

/// An owned neighbour entry: what [`request::add_neigh`](crate::request::add_neigh) sends.
///
/// ```
/// let n = nlkit_route::Neighbour::new(2, "10.0.0.9".parse().unwrap());
/// assert_eq!(n.state, nlkit_wire::consts::NUD_PERMANENT);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Neighbour {
    /// The interface index.
    pub ifindex: u32,
    /// The neighbour's IP address.
    pub dst: IpAddr,
    /// The link-layer address.
    pub lladdr: Option<Vec<u8>>,
    /// `NUD_*` state (default `NUD_PERMANENT`, as `ip neigh add`).
    pub state: u16,
    /// `NTF_*` flags.
    pub flags: u8,
}

impl Neighbour {
    /// A permanent entry for `dst` on `ifindex`, without a link-layer address yet.
    pub fn new(ifindex: u32, dst: IpAddr) -> Self {
        Neighbour {
            ifindex,
            dst,
            lladdr: None,
            state: NUD_PERMANENT,
            flags: 0,
        }
    }
    /// Sets the link-layer address.
    pub fn lladdr(mut self, mac: &[u8]) -> Self {
        self.lladdr = Some(mac.to_vec());
        self
    }
    /// Sets the `NUD_*` state.
    pub fn state(mut self, state: u16) -> Self {
        self.state = state;
        self
    }
    /// `AF_INET` or `AF_INET6`, from the address.
    pub fn family(&self) -> u8 {
        crate::family_of(self.dst)
    }
}
