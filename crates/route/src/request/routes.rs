//! Route requests (part of [`request`](super)).

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, RtMsg};

use super::{Built, CHANGE, DUMP};
use crate::{Route, RouteView};

/// `rtm_table` for a table id: the id itself below 256, `RT_TABLE_UNSPEC` above (the id
/// then travels only in `RTA_TABLE`), as iproute2 does.
fn rtm_table(table: u32) -> u8 {
    if table < 256 {
        table as u8
    } else {
        RT_TABLE_UNSPEC
    }
}

/// Kernel-side route dump filter (strict checking; IPv4 and IPv6 since Linux 4.20).
///
/// The table travels in `rtm_table` and `RTA_TABLE` (needed above 255); the output interface
/// in `RTA_OIF`; protocol and type in the header. The kernel answers an IPv4 dump of a table
/// that does not exist with `ENOENT`. `None` everywhere dumps every table, as
/// `ip route show table all` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// Only this table.
    pub table: Option<u32>,
    /// Only routes out of this interface.
    pub oif: Option<u32>,
    /// Only this `RTPROT_*`.
    pub protocol: Option<u8>,
    /// Only this `RTN_*`.
    pub route_type: Option<u8>,
}

impl RouteFilter {
    /// Only the main table, like `ip route show`.
    pub fn main() -> Self {
        RouteFilter {
            table: Some(RT_TABLE_MAIN as u32),
            ..Default::default()
        }
    }
    /// The same test in user space (for sockets without strict checking). A multipath route
    /// matches `oif` when any nexthop leaves through it.
    pub fn matches(&self, r: &RouteView<'_>) -> bool {
        self.table.is_none_or(|t| r.table() == t)
            && self.protocol.is_none_or(|p| r.protocol() == p)
            && self.route_type.is_none_or(|t| r.route_type() == t)
            && self
                .oif
                .is_none_or(|o| r.oif() == Some(o) || r.nexthops().any(|n| n.ifindex == o))
    }
}

/// `RTM_GETROUTE` dump of one family, with kernel-side filters.
///
/// ```
/// use nlkit_route::request::{dump_routes, RouteFilter};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// dump_routes(&mut b, 1, nlkit_wire::consts::AF_INET6, &RouteFilter::main()).unwrap();
/// ```
pub fn dump_routes(b: &mut MessageBuilder, seq: u32, family: u8, filter: &RouteFilter) -> Built {
    b.begin(RTM_GETROUTE, DUMP, seq);
    b.header(&RtMsg {
        family,
        table: filter.table.map_or(RT_TABLE_UNSPEC, rtm_table),
        protocol: filter.protocol.unwrap_or(RTPROT_UNSPEC),
        ty: filter.route_type.unwrap_or(RTN_UNSPEC),
        ..Default::default()
    });
    if let Some(t) = filter.table {
        b.attr_u32(RTA_TABLE, t);
    }
    if let Some(o) = filter.oif {
        b.attr_u32(RTA_OIF, o);
    }
    b.finish()
}

/// A route lookup (`ip route get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLookup {
    /// The destination to resolve.
    pub dst: IpAddr,
    /// Source address of the flow.
    pub src: Option<IpAddr>,
    /// Force the output interface.
    pub oif: Option<u32>,
    /// Firewall mark of the flow.
    pub mark: Option<u32>,
    /// Return the FIB entry that matched (`ip route get fibmatch`) instead of the resolved
    /// route.
    pub fib_match: bool,
}

impl RouteLookup {
    /// A lookup of `dst`.
    pub fn new(dst: IpAddr) -> Self {
        RouteLookup {
            dst,
            src: None,
            oif: None,
            mark: None,
            fib_match: false,
        }
    }
}

/// `RTM_GETROUTE` for one destination; the reply is one `RTM_NEWROUTE`.
///
/// ```
/// use nlkit_route::request::{get_route, RouteLookup};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// get_route(&mut b, 1, &RouteLookup::new("10.1.0.5".parse().unwrap())).unwrap();
/// ```
pub fn get_route(b: &mut MessageBuilder, seq: u32, q: &RouteLookup) -> Built {
    let family = crate::family_of(q.dst);
    let host = if family == AF_INET { 32 } else { 128 };
    b.begin(RTM_GETROUTE, NLM_F_REQUEST, seq);
    b.header(&RtMsg {
        family,
        dst_len: host,
        src_len: if q.src.is_some() { host } else { 0 },
        flags: if q.fib_match { RTM_F_FIB_MATCH } else { 0 },
        ..Default::default()
    });
    b.attr_ip(RTA_DST, q.dst);
    if let Some(s) = q.src {
        b.attr_ip(RTA_SRC, s);
    }
    if let Some(o) = q.oif {
        b.attr_u32(RTA_OIF, o);
    }
    if let Some(m) = q.mark {
        b.attr_u32(RTA_MARK, m);
    }
    b.finish()
}

/// How [`add_route`] treats an existing route with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOp {
    /// `ip route add`: fail with `EEXIST` if it exists (`NLM_F_CREATE | NLM_F_EXCL`).
    Add,
    /// `ip route replace`: create or replace (`NLM_F_CREATE | NLM_F_REPLACE`).
    Replace,
    /// `ip route append`: add another route with the same key (`NLM_F_CREATE | NLM_F_APPEND`).
    Append,
}

fn multipath_payload(r: &Route) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.nexthops.len() * 16);
    for nh in &r.nexthops {
        let start = out.len();
        out.extend_from_slice(&[
            0,
            0,
            nh.flags,
            nh.weight.clamp(1, 256).wrapping_sub(1) as u8,
        ]);
        out.extend_from_slice(&(nh.ifindex as i32).to_ne_bytes());
        if let Some(gw) = nh.gateway {
            let bytes: Vec<u8> = match gw {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            if crate::family_of(gw) == r.family {
                out.extend_from_slice(&((4 + bytes.len()) as u16).to_ne_bytes());
                out.extend_from_slice(&RTA_GATEWAY.to_ne_bytes());
                out.extend_from_slice(&bytes);
            } else {
                // A gateway of the other family travels in RTA_VIA (struct rtvia).
                out.extend_from_slice(&((6 + bytes.len()) as u16).to_ne_bytes());
                out.extend_from_slice(&RTA_VIA.to_ne_bytes());
                out.extend_from_slice(&(crate::family_of(gw) as u16).to_ne_bytes());
                out.extend_from_slice(&bytes);
                while out.len() % 4 != 0 {
                    out.push(0);
                }
            }
        }
        let len = (out.len() - start) as u16;
        out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
    out
}

fn route_common(b: &mut MessageBuilder, r: &Route) {
    if let Some(d) = r.dst {
        b.attr_ip(RTA_DST, d);
    }
    if let Some(s) = r.src {
        b.attr_ip(RTA_SRC, s);
    }
    b.attr_u32(RTA_TABLE, r.table);
    if let Some(gw) = r.gateway {
        if crate::family_of(gw) == r.family {
            b.attr_ip(RTA_GATEWAY, gw);
        } else {
            let mut via = (crate::family_of(gw) as u16).to_ne_bytes().to_vec();
            match gw {
                IpAddr::V4(a) => via.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => via.extend_from_slice(&a.octets()),
            }
            b.attr_bytes(RTA_VIA, &via);
        }
    }
    if let Some(o) = r.oif {
        b.attr_u32(RTA_OIF, o);
    }
    if let Some(p) = r.priority {
        b.attr_u32(RTA_PRIORITY, p);
    }
    if let Some(id) = r.nh_id {
        b.attr_u32(RTA_NH_ID, id);
    }
}

/// `RTM_NEWROUTE`: add, replace or append a route (single path or multipath).
///
/// ```
/// use nlkit_route::{request::{add_route, RouteOp}, Route};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// let r = Route::new("10.1.0.0".parse().unwrap(), 24).via("10.0.0.2".parse().unwrap());
/// add_route(&mut b, 1, &r, RouteOp::Replace).unwrap();
/// ```
pub fn add_route(b: &mut MessageBuilder, seq: u32, r: &Route, op: RouteOp) -> Built {
    let mode = match op {
        RouteOp::Add => NLM_F_EXCL,
        RouteOp::Replace => NLM_F_REPLACE,
        RouteOp::Append => NLM_F_APPEND,
    };
    b.begin(RTM_NEWROUTE, CHANGE | NLM_F_CREATE | mode, seq);
    b.header(&RtMsg {
        family: r.family,
        dst_len: r.dst_len,
        src_len: r.src_len,
        tos: r.tos,
        table: rtm_table(r.table),
        protocol: r.protocol,
        scope: r.scope,
        ty: r.route_type,
        flags: r.flags,
    });
    route_common(b, r);
    if let Some(p) = r.prefsrc {
        b.attr_ip(RTA_PREFSRC, p);
    }
    if let Some(m) = r.mark {
        b.attr_u32(RTA_MARK, m);
    }
    if let Some(p) = r.pref {
        b.attr_u8(RTA_PREF, p);
    }
    if !r.metrics.is_empty() {
        let n = b.nest_begin(RTA_METRICS);
        for &(t, v) in &r.metrics {
            b.attr_u32(t, v);
        }
        b.nest_end(n);
    }
    if !r.nexthops.is_empty() {
        b.attr_bytes(RTA_MULTIPATH, &multipath_payload(r));
    }
    b.finish()
}

/// `RTM_DELROUTE` (`ip route del`). The kernel deletes the first route matching the
/// destination, prefix length, table and TOS, and — when set — gateway, output interface
/// and metric. Protocol, type and scope are sent as wildcards (0, 0, `RT_SCOPE_NOWHERE`),
/// as iproute2 does.
///
/// ```
/// use nlkit_route::{request::del_route, Route};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// del_route(&mut b, 1, &Route::new("10.1.0.0".parse().unwrap(), 24).table(1000)).unwrap();
/// ```
pub fn del_route(b: &mut MessageBuilder, seq: u32, r: &Route) -> Built {
    b.begin(RTM_DELROUTE, CHANGE, seq);
    b.header(&RtMsg {
        family: r.family,
        dst_len: r.dst_len,
        src_len: r.src_len,
        tos: r.tos,
        table: rtm_table(r.table),
        scope: RT_SCOPE_NOWHERE,
        ..Default::default()
    });
    route_common(b, r);
    b.finish()
}
