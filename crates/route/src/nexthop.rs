//! Nexthop objects (`RTM_NEWNEXTHOP` / `RTM_DELNEXTHOP`): a zero-copy view, group members,
//! resilient-group settings and the owned request spec.
//!
//! A nexthop object is either a single nexthop (a gateway and/or a device, a blackhole, or an
//! FDB nexthop for VXLAN) or a group of other nexthop objects (multipath with weights, or a
//! resilient group with a fixed number of hash buckets). Routes point at one with `nhid`
//! ([`Route::nhid`](crate::Route::nhid)); replacing the object moves every such route at once.

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{Attr, Message, NhMsg, WireError};

use crate::{check_type, ip_attr};

/// One member of a nexthop group (`struct nexthop_grp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GroupMember {
    /// The member's nexthop id.
    pub id: u32,
    /// The weight, 1..=256 (the kernel stores weight − 1).
    pub weight: u16,
}

impl GroupMember {
    /// Member `id` with weight 1.
    pub fn new(id: u32) -> Self {
        GroupMember { id, weight: 1 }
    }
    /// Sets the weight (1..=256).
    pub fn weight(mut self, weight: u16) -> Self {
        self.weight = weight;
        self
    }
}

/// Iterator over the `struct nexthop_grp` entries of an `NHA_GROUP` payload.
///
/// ```
/// use nlkit_route::nexthop::GroupMembers;
/// let mut raw = Vec::new();
/// for (id, w) in [(1u32, 0u8), (4, 2)] {
///     raw.extend_from_slice(&id.to_ne_bytes());
///     raw.extend_from_slice(&[w, 0, 0, 0]);
/// }
/// let m: Vec<_> = GroupMembers::new(&raw).map(|m| (m.id, m.weight)).collect();
/// assert_eq!(m, [(1, 1), (4, 3)]);
/// ```
#[derive(Debug, Clone)]
pub struct GroupMembers<'a> {
    rest: &'a [u8],
}

impl<'a> GroupMembers<'a> {
    /// Walks an `NHA_GROUP` payload (a trailing partial entry is ignored; the view rejects
    /// such payloads when it parses).
    pub fn new(payload: &'a [u8]) -> Self {
        GroupMembers { rest: payload }
    }
}

impl Iterator for GroupMembers<'_> {
    type Item = GroupMember;
    fn next(&mut self) -> Option<GroupMember> {
        let (e, rest) = self.rest.split_at_checked(NEXTHOP_GRP_LEN)?;
        self.rest = rest;
        // weight_high (byte 5) extends the weight on kernels with 16-bit weights.
        let w = u16::from(e[4]) | (u16::from(e[5]) << 8);
        Some(GroupMember {
            id: u32::from_ne_bytes([e[0], e[1], e[2], e[3]]),
            weight: w.saturating_add(1),
        })
    }
}

/// The settings of a resilient group (`NHA_RES_GROUP`). Timers are in the kernel's clock
/// ticks (`USER_HZ`, 1/100 s): `ip nexthop` shows `idle_timer 60` for 6000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ResilientGroup {
    /// `NHA_RES_GROUP_BUCKETS`: the number of hash buckets.
    pub buckets: u16,
    /// `NHA_RES_GROUP_IDLE_TIMER`: how long a bucket must be idle before it may move.
    pub idle_timer: u32,
    /// `NHA_RES_GROUP_UNBALANCED_TIMER`: how long the group may stay unbalanced (0: forever).
    pub unbalanced_timer: u32,
    /// `NHA_RES_GROUP_UNBALANCED_TIME` (dumps only): how long it has been unbalanced.
    pub unbalanced_time: u64,
}

impl ResilientGroup {
    /// `buckets` buckets, with the kernel's default timers (idle 120 s, unbalanced 0).
    pub fn new(buckets: u16) -> Self {
        ResilientGroup {
            buckets,
            idle_timer: 120 * 100,
            unbalanced_timer: 0,
            unbalanced_time: 0,
        }
    }

    /// Decodes the nest; returns it and the number of unknown inner attributes.
    fn parse(a: &Attr<'_>) -> Result<(Self, u32), WireError> {
        let mut g = ResilientGroup::default();
        let mut unknown = 0;
        for a in a.nested() {
            let a = a?;
            match a.ty() {
                NHA_RES_GROUP_BUCKETS => g.buckets = a.u16()?,
                NHA_RES_GROUP_IDLE_TIMER => g.idle_timer = a.u32()?,
                NHA_RES_GROUP_UNBALANCED_TIMER => g.unbalanced_timer = a.u32()?,
                NHA_RES_GROUP_UNBALANCED_TIME => g.unbalanced_time = a.uint()?,
                NHA_RES_GROUP_PAD => {}
                _ => unknown += 1,
            }
        }
        Ok((g, unknown))
    }
}

/// A borrowed view of one nexthop object message, decoded in one pass over its attributes.
///
/// Attributes this view does not decode (including those of newer kernels, such as group
/// statistics) are skipped and counted in [`unknown_attrs`](NexthopObjectView::unknown_attrs).
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_route::{request, NexthopObject, NexthopObjectView};
/// let nh = NexthopObject::via(7, "10.0.0.2".parse().unwrap()).dev(3).onlink();
/// let mut b = MessageBuilder::new();
/// request::add_nexthop(&mut b, 1, &nh, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NexthopObjectView::parse(&m).unwrap();
/// assert_eq!((v.id(), v.oif(), v.gateway()), (Some(7), Some(3), nh.gateway));
/// assert_eq!(v.to_owned(), nh);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct NexthopObjectView<'a> {
    msg_type: u16,
    hdr: NhMsg,
    id: Option<u32>,
    group: Option<&'a [u8]>,
    group_type: Option<u16>,
    blackhole: bool,
    oif: Option<u32>,
    gateway: Option<IpAddr>,
    encap_type: Option<u16>,
    encap: Option<&'a [u8]>,
    groups: bool,
    master: Option<u32>,
    fdb: bool,
    resilient: Option<ResilientGroup>,
    unknown_attrs: u32,
}

impl<'a> NexthopObjectView<'a> {
    /// Decodes an `RTM_NEWNEXTHOP` or `RTM_DELNEXTHOP` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWNEXTHOP, RTM_DELNEXTHOP)?;
        Self::parse_any(msg)
    }

    /// Decodes a message with an `nhmsg` header whatever its type (e.g. a dump request).
    pub fn parse_any(msg: &Message<'a>) -> Result<Self, WireError> {
        let (hdr, attrs) = msg.family_header::<NhMsg>()?;
        let mut v = NexthopObjectView {
            msg_type: msg.ty(),
            hdr,
            id: None,
            group: None,
            group_type: None,
            blackhole: false,
            oif: None,
            gateway: None,
            encap_type: None,
            encap: None,
            groups: false,
            master: None,
            fdb: false,
            resilient: None,
            unknown_attrs: 0,
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                NHA_ID => v.id = Some(a.u32()?),
                NHA_GROUP => {
                    let p = a.payload();
                    if p.len() % NEXTHOP_GRP_LEN != 0 {
                        return Err(WireError::AttrSize {
                            ty: NHA_GROUP,
                            expected: "array of struct nexthop_grp",
                            len: p.len(),
                        });
                    }
                    v.group = Some(p);
                }
                NHA_GROUP_TYPE => v.group_type = Some(a.u16()?),
                NHA_BLACKHOLE => v.blackhole = true,
                NHA_OIF => v.oif = Some(a.u32()?),
                NHA_GATEWAY => v.gateway = ip_attr(hdr.family, &a)?,
                NHA_ENCAP_TYPE => v.encap_type = Some(a.u16()?),
                NHA_ENCAP => v.encap = Some(a.payload()),
                NHA_GROUPS => v.groups = true,
                NHA_MASTER => v.master = Some(a.u32()?),
                NHA_FDB => v.fdb = true,
                NHA_RES_GROUP => {
                    let (g, unknown) = ResilientGroup::parse(&a)?;
                    v.resilient = Some(g);
                    v.unknown_attrs += unknown;
                }
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    /// `nlmsg_type`: `RTM_NEWNEXTHOP` or `RTM_DELNEXTHOP`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
    }
    /// The `nhmsg` header.
    pub fn header(&self) -> NhMsg {
        self.hdr
    }
    /// `nh_family`.
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// `nh_scope` (`RT_SCOPE_*`, set by the kernel).
    pub fn scope(&self) -> u8 {
        self.hdr.scope
    }
    /// `nh_protocol` (`RTPROT_*`).
    pub fn protocol(&self) -> u8 {
        self.hdr.protocol
    }
    /// `nh_flags` (`RTNH_F_*`: onlink, dead, linkdown, …).
    pub fn flags(&self) -> u32 {
        self.hdr.flags
    }
    /// `NHA_ID`.
    pub fn id(&self) -> Option<u32> {
        self.id
    }
    /// True for a group (`NHA_GROUP`).
    pub fn is_group(&self) -> bool {
        self.group.is_some()
    }
    /// The group members (empty for a single nexthop).
    pub fn members(&self) -> GroupMembers<'a> {
        GroupMembers::new(self.group.unwrap_or(&[]))
    }
    /// `NHA_GROUP_TYPE` (`NEXTHOP_GRP_TYPE_*`); groups without it are multipath.
    pub fn group_type(&self) -> Option<u16> {
        self.group_type
    }
    /// `NHA_RES_GROUP`: the settings of a resilient group.
    pub fn resilient(&self) -> Option<ResilientGroup> {
        self.resilient
    }
    /// `NHA_BLACKHOLE`.
    pub fn is_blackhole(&self) -> bool {
        self.blackhole
    }
    /// `NHA_OIF`: the output device.
    pub fn oif(&self) -> Option<u32> {
        self.oif
    }
    /// `NHA_GATEWAY`.
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway
    }
    /// `NHA_ENCAP_TYPE` (`LWTUNNEL_ENCAP_*`).
    pub fn encap_type(&self) -> Option<u16> {
        self.encap_type
    }
    /// The raw `NHA_ENCAP` attributes.
    pub fn encap(&self) -> Option<&'a [u8]> {
        self.encap
    }
    /// `NHA_FDB`: a nexthop (or group) for VXLAN FDB entries, not for routes.
    pub fn is_fdb(&self) -> bool {
        self.fdb
    }
    /// `NHA_GROUPS` (dump requests: groups only).
    pub fn groups_only(&self) -> bool {
        self.groups
    }
    /// `NHA_MASTER` (dump requests: nexthops whose device is enslaved to this master).
    pub fn master(&self) -> Option<u32> {
        self.master
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }

    /// An owned copy, usable as a request (to re-add or replace it). Kernel-reported state
    /// (scope, the dead/linkdown flags, `unbalanced_time`) is dropped.
    pub fn to_owned(&self) -> NexthopObject {
        NexthopObject {
            id: self.id.unwrap_or(0),
            family: self.family(),
            protocol: self.protocol(),
            flags: self.flags() & RTNH_F_ONLINK as u32,
            gateway: self.gateway,
            oif: self.oif,
            blackhole: self.blackhole,
            fdb: self.fdb,
            group: self.members().collect(),
            resilient: self.resilient.map(|r| ResilientGroup {
                unbalanced_time: 0,
                ..r
            }),
        }
    }
}

/// An owned nexthop object: what [`request::add_nexthop`](crate::request::add_nexthop) sends
/// and what [`NexthopObjectView::to_owned`] returns. Built like `ip nexthop add` reads:
///
/// ```
/// use nlkit_route::{nexthop::{GroupMember, ResilientGroup}, NexthopObject};
/// let a = NexthopObject::via(1, "10.0.0.2".parse().unwrap()).dev(3);
/// let b = NexthopObject::device(2, 3).proto(nlkit_wire::consts::RTPROT_STATIC);
/// let g = NexthopObject::group(10, &[GroupMember::new(1), GroupMember::new(2).weight(3)]);
/// let r = NexthopObject::group(11, &[GroupMember::new(1)]).resilient(ResilientGroup::new(32));
/// let bh = NexthopObject::blackhole(12);
/// assert_eq!((g.family, g.group.len()), (0, 2));
/// # let _ = (a, b, r, bh);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NexthopObject {
    /// `NHA_ID` (0: let the kernel choose one on add).
    pub id: u32,
    /// `AF_INET` or `AF_INET6` for a single nexthop, `AF_UNSPEC` for a group.
    pub family: u8,
    /// `RTPROT_*` (`ip nexthop add` leaves it 0, `unspec`).
    pub protocol: u8,
    /// `RTNH_F_ONLINK` or 0 (the only flag a request may set).
    pub flags: u32,
    /// The gateway.
    pub gateway: Option<IpAddr>,
    /// The output device.
    pub oif: Option<u32>,
    /// A blackhole nexthop.
    pub blackhole: bool,
    /// An FDB nexthop or group (for VXLAN), not usable by routes.
    pub fdb: bool,
    /// The members of a group (empty for a single nexthop).
    pub group: Vec<GroupMember>,
    /// Makes the group resilient with these settings (`type resilient`).
    pub resilient: Option<ResilientGroup>,
}

impl NexthopObject {
    fn single(id: u32, family: u8) -> Self {
        NexthopObject {
            id,
            family,
            protocol: RTPROT_UNSPEC,
            flags: 0,
            gateway: None,
            oif: None,
            blackhole: false,
            fdb: false,
            group: Vec::new(),
            resilient: None,
        }
    }
    /// A nexthop via `gateway` (family from the address).
    pub fn via(id: u32, gateway: IpAddr) -> Self {
        NexthopObject {
            gateway: Some(gateway),
            ..Self::single(id, crate::family_of(gateway))
        }
    }
    /// A device-only nexthop (`ip nexthop add id ID dev DEV`, IPv4 like iproute2).
    pub fn device(id: u32, ifindex: u32) -> Self {
        NexthopObject {
            oif: Some(ifindex),
            ..Self::single(id, AF_INET)
        }
    }
    /// A blackhole nexthop (the kernel needs the loopback device up for it).
    pub fn blackhole(id: u32) -> Self {
        NexthopObject {
            blackhole: true,
            ..Self::single(id, AF_INET)
        }
    }
    /// A multipath group of `members`.
    pub fn group(id: u32, members: &[GroupMember]) -> Self {
        NexthopObject {
            group: members.to_vec(),
            ..Self::single(id, AF_UNSPEC)
        }
    }
    /// Sets the output device.
    pub fn dev(mut self, ifindex: u32) -> Self {
        self.oif = Some(ifindex);
        self
    }
    /// Sets `onlink` (the gateway is on the link even without a matching prefix).
    pub fn onlink(mut self) -> Self {
        self.flags |= RTNH_F_ONLINK as u32;
        self
    }
    /// Marks it an FDB nexthop or group.
    pub fn fdb(mut self) -> Self {
        self.fdb = true;
        self
    }
    /// Makes a group resilient.
    pub fn resilient(mut self, settings: ResilientGroup) -> Self {
        self.resilient = Some(settings);
        self
    }
    /// Sets the protocol (`RTPROT_*`).
    pub fn proto(mut self, protocol: u8) -> Self {
        self.protocol = protocol;
        self
    }
}
