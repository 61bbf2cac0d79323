//! Nexthop object requests (part of [`request`](super)).

use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, NhMsg};

use super::{Built, CHANGE, DUMP};
use crate::{NexthopObject, NexthopObjectView};

/// Kernel-side nexthop dump filter (`ip nexthop show dev D | groups | master M | fdb`).
///
/// Nexthop dumps always validate strictly (the kernel rejects unknown attributes in the
/// request), and these filters are applied by the kernel on every socket. `matches` repeats
/// the tests that a view can answer, for events and other sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NexthopFilter {
    /// Only nexthops out of this device (`NHA_OIF`).
    pub oif: Option<u32>,
    /// Only groups (`NHA_GROUPS`).
    pub groups: bool,
    /// Only nexthops whose device is enslaved to this master, e.g. a VRF (`NHA_MASTER`).
    pub master: Option<u32>,
    /// Only FDB nexthops and groups (`NHA_FDB`).
    pub fdb: bool,
}

impl NexthopFilter {
    /// The same test in user space (the master is not in the view and is not re-checked).
    pub fn matches(&self, v: &NexthopObjectView<'_>) -> bool {
        self.oif.is_none_or(|o| v.oif() == Some(o))
            && (!self.groups || v.is_group())
            && (!self.fdb || v.is_fdb())
    }
}

/// `RTM_GETNEXTHOP` dump of `family` (`AF_UNSPEC`: all), with kernel-side filters.
///
/// ```
/// use nlkit_route::request::{dump_nexthops, NexthopFilter};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// let f = NexthopFilter { groups: true, ..Default::default() };
/// dump_nexthops(&mut b, 1, nlkit_wire::consts::AF_UNSPEC, &f).unwrap();
/// ```
pub fn dump_nexthops(
    b: &mut MessageBuilder,
    seq: u32,
    family: u8,
    filter: &NexthopFilter,
) -> Built {
    b.begin(RTM_GETNEXTHOP, DUMP, seq);
    b.header(&NhMsg {
        family,
        ..Default::default()
    });
    if let Some(o) = filter.oif {
        b.attr_u32(NHA_OIF, o);
    }
    if filter.groups {
        b.attr_bytes(NHA_GROUPS, &[]);
    }
    if let Some(m) = filter.master {
        b.attr_u32(NHA_MASTER, m);
    }
    if filter.fdb {
        b.attr_bytes(NHA_FDB, &[]);
    }
    b.finish()
}

/// `RTM_GETNEXTHOP` for one id (`ip nexthop get id ID`); the reply is an `RTM_NEWNEXTHOP`.
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::get_nexthop(&mut b, 1, 10).unwrap();
/// ```
pub fn get_nexthop(b: &mut MessageBuilder, seq: u32, id: u32) -> Built {
    b.begin(RTM_GETNEXTHOP, NLM_F_REQUEST, seq);
    b.header(&NhMsg::default());
    b.attr_u32(NHA_ID, id);
    b.finish()
}

/// `RTM_NEWNEXTHOP` (`ip nexthop add`, or `ip nexthop replace` when `replace`). Replacing a
/// group or a nexthop moves every route that uses it, in one write.
///
/// ```
/// use nlkit_route::{request::add_nexthop, NexthopObject};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// add_nexthop(&mut b, 1, &NexthopObject::via(1, "10.0.0.2".parse().unwrap()), false).unwrap();
/// ```
pub fn add_nexthop(b: &mut MessageBuilder, seq: u32, nh: &NexthopObject, replace: bool) -> Built {
    let mode = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
    b.begin(RTM_NEWNEXTHOP, CHANGE | NLM_F_CREATE | mode, seq);
    b.header(&NhMsg {
        family: nh.family,
        scope: 0,
        protocol: nh.protocol,
        flags: nh.flags,
    });
    if nh.id != 0 {
        b.attr_u32(NHA_ID, nh.id);
    }
    if !nh.group.is_empty() {
        let mut raw = Vec::with_capacity(nh.group.len() * NEXTHOP_GRP_LEN);
        for m in &nh.group {
            let w = m.weight.clamp(1, 256) - 1;
            raw.extend_from_slice(&m.id.to_ne_bytes());
            // weight, weight_high (0 below 256), reserved.
            raw.extend_from_slice(&[(w & 0xff) as u8, (w >> 8) as u8, 0, 0]);
        }
        b.attr_bytes(NHA_GROUP, &raw);
        if let Some(r) = &nh.resilient {
            b.attr_u16(NHA_GROUP_TYPE, NEXTHOP_GRP_TYPE_RES);
            let n = b.nest_begin(NHA_RES_GROUP);
            // 0: not given; the kernel then says that the bucket count is missing.
            if r.buckets != 0 {
                b.attr_u16(NHA_RES_GROUP_BUCKETS, r.buckets);
            }
            b.attr_u32(NHA_RES_GROUP_IDLE_TIMER, r.idle_timer);
            b.attr_u32(NHA_RES_GROUP_UNBALANCED_TIMER, r.unbalanced_timer);
            b.nest_end(n);
        }
    }
    if nh.blackhole {
        b.attr_bytes(NHA_BLACKHOLE, &[]);
    }
    if let Some(o) = nh.oif {
        b.attr_u32(NHA_OIF, o);
    }
    if let Some(g) = nh.gateway {
        b.attr_ip(NHA_GATEWAY, g);
    }
    if nh.fdb {
        b.attr_bytes(NHA_FDB, &[]);
    }
    b.finish()
}

/// `RTM_DELNEXTHOP` (`ip nexthop del id ID`). The kernel also deletes every route that uses
/// the nexthop, without a notification for those routes.
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::del_nexthop(&mut b, 1, 10).unwrap();
/// ```
pub fn del_nexthop(b: &mut MessageBuilder, seq: u32, id: u32) -> Built {
    b.begin(RTM_DELNEXTHOP, CHANGE, seq);
    b.header(&NhMsg::default());
    b.attr_u32(NHA_ID, id);
    b.finish()
}
