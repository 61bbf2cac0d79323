//! Routes (`RTM_NEWROUTE` / `RTM_DELROUTE`): a zero-copy view, multipath nexthops, metrics
//! and the owned request spec.

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{Attr, Attrs, Message, RtMsg, WireError};

use crate::{check_type, ip_attr};

/// A borrowed view of one route message, decoded in one pass over its attributes.
///
/// The nested `RTA_MULTIPATH` and `RTA_METRICS` payloads are checked while parsing and then
/// iterated lazily without copying ([`nexthops`](RouteView::nexthops),
/// [`metrics`](RouteView::metrics)).
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_route::{request, Route, RouteView};
/// let r = Route::new("10.1.0.0".parse().unwrap(), 24)
///     .via("10.0.0.2".parse().unwrap()).dev(3).table(1000).metric(100);
/// let mut b = MessageBuilder::new();
/// request::add_route(&mut b, 1, &r, request::RouteOp::Add).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = RouteView::parse(&m).unwrap();
/// assert_eq!((v.table(), v.oif(), v.priority()), (1000, Some(3), Some(100)));
/// assert_eq!(v.gateway(), r.gateway);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RouteView<'a> {
    msg_type: u16,
    hdr: RtMsg,
    table: Option<u32>,
    dst: Option<IpAddr>,
    src: Option<IpAddr>,
    gateway: Option<IpAddr>,
    via: Option<IpAddr>,
    oif: Option<u32>,
    iif: Option<u32>,
    priority: Option<u32>,
    prefsrc: Option<IpAddr>,
    mark: Option<u32>,
    pref: Option<u8>,
    expires: Option<u32>,
    nh_id: Option<u32>,
    multipath: Option<&'a [u8]>,
    metrics: Option<&'a [u8]>,
    uid: Option<u32>,
    cacheinfo: Option<RouteCacheInfo>,
    unknown_attrs: u32,
}

/// The fields of `struct rta_cacheinfo` (`RTA_CACHEINFO`) that iproute2 prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteCacheInfo {
    /// `rta_expires`, in clock ticks (0: never).
    pub expires: i32,
    /// `rta_error`.
    pub error: u32,
}

impl RouteCacheInfo {
    /// Reads the struct; a longer one from a newer kernel is accepted.
    fn parse(a: &Attr<'_>) -> Result<Self, WireError> {
        let p = a.prefix(16)?;
        Ok(RouteCacheInfo {
            expires: i32::from_ne_bytes([p[8], p[9], p[10], p[11]]),
            error: u32::from_ne_bytes([p[12], p[13], p[14], p[15]]),
        })
    }
}

/// `RTA_VIA` payload: `struct rtvia { u16 family; u8 addr[]; }`.
fn parse_via(a: &Attr<'_>) -> Result<Option<IpAddr>, WireError> {
    let p = a.prefix(2)?;
    let fam = u16::from_ne_bytes([p[0], p[1]]);
    let addr = Attr::new(a.ty(), &a.payload()[2..]);
    match fam {
        f if f == AF_INET as u16 => addr.ipv4().map(|x| Some(x.into())),
        f if f == AF_INET6 as u16 => addr.ipv6().map(|x| Some(x.into())),
        _ => Ok(None),
    }
}

/// Sets `slot` to the address attribute `a` of a route of `family` ([`ip_attr`]), the
/// well-sized IPv4 and IPv6 cases written in place: moving the address through a
/// `Result<Option<IpAddr>>` temporary cost a store-forwarding stall per address.
#[inline(always)]
fn set_ip(slot: &mut Option<IpAddr>, family: u8, a: &Attr<'_>) -> Result<(), WireError> {
    match (family, a.payload()) {
        (AF_INET, &[a0, a1, a2, a3]) => *slot = Some(IpAddr::V4([a0, a1, a2, a3].into())),
        (AF_INET6, p) if p.len() == 16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(p);
            *slot = Some(IpAddr::V6(b.into()));
        }
        _ => *slot = ip_attr(family, a)?,
    }
    Ok(())
}

impl<'a> RouteView<'a> {
    /// Decodes an `RTM_NEWROUTE` or `RTM_DELROUTE` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWROUTE, RTM_DELROUTE)?;
        let (hdr, attrs) = msg.family_header::<RtMsg>()?;
        let mut v = RouteView {
            msg_type: msg.ty(),
            hdr,
            table: None,
            dst: None,
            src: None,
            gateway: None,
            via: None,
            oif: None,
            iif: None,
            priority: None,
            prefsrc: None,
            mark: None,
            pref: None,
            expires: None,
            nh_id: None,
            multipath: None,
            metrics: None,
            uid: None,
            cacheinfo: None,
            unknown_attrs: 0,
        };
        let fam = hdr.family;
        for a in attrs {
            let a = a?;
            match a.ty() {
                RTA_TABLE => v.table = Some(a.u32()?),
                RTA_DST => set_ip(&mut v.dst, fam, &a)?,
                RTA_SRC => set_ip(&mut v.src, fam, &a)?,
                RTA_GATEWAY => set_ip(&mut v.gateway, fam, &a)?,
                RTA_VIA => v.via = parse_via(&a)?,
                RTA_OIF => v.oif = Some(a.u32()?),
                RTA_IIF => v.iif = Some(a.u32()?),
                RTA_PRIORITY => v.priority = Some(a.u32()?),
                RTA_PREFSRC => set_ip(&mut v.prefsrc, fam, &a)?,
                RTA_MARK => v.mark = Some(a.u32()?),
                RTA_PREF => v.pref = Some(a.u8()?),
                RTA_EXPIRES => v.expires = Some(a.u32()?),
                RTA_NH_ID => v.nh_id = Some(a.u32()?),
                RTA_UID => v.uid = Some(a.u32()?),
                RTA_CACHEINFO => v.cacheinfo = Some(RouteCacheInfo::parse(&a)?),
                RTA_MULTIPATH => {
                    for nh in Nexthops::new(fam, a.payload()) {
                        nh?;
                    }
                    v.multipath = Some(a.payload());
                }
                RTA_METRICS => {
                    for m in a.nested() {
                        m?;
                    }
                    v.metrics = Some(a.payload());
                }
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    /// `RTA_UID`: the uid a route lookup (`ip route get`) was made for.
    pub fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// `RTA_CACHEINFO` (cloned and cached routes).
    pub fn cacheinfo(&self) -> Option<RouteCacheInfo> {
        self.cacheinfo
    }

    /// `nlmsg_type`: `RTM_NEWROUTE` or `RTM_DELROUTE`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
    }
    /// The `rtmsg` header.
    pub fn header(&self) -> RtMsg {
        self.hdr
    }
    /// `AF_INET`, `AF_INET6`, …
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// The table id: `RTA_TABLE` when present (ids above 255 exist only there), else
    /// `rtm_table`.
    pub fn table(&self) -> u32 {
        self.table.unwrap_or(self.hdr.table as u32)
    }
    /// `RTA_DST`; `None` for a default route.
    pub fn dst(&self) -> Option<IpAddr> {
        self.dst
    }
    /// `rtm_dst_len`.
    pub fn dst_len(&self) -> u8 {
        self.hdr.dst_len
    }
    /// `RTA_SRC` (source-specific routes).
    pub fn src(&self) -> Option<IpAddr> {
        self.src
    }
    /// `rtm_src_len`.
    pub fn src_len(&self) -> u8 {
        self.hdr.src_len
    }
    /// `RTA_GATEWAY`, or the address of `RTA_VIA`.
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway.or(self.via)
    }
    /// True when the gateway came from `RTA_VIA` (e.g. an IPv6 gateway on an IPv4 route).
    pub fn gateway_is_via(&self) -> bool {
        self.gateway.is_none() && self.via.is_some()
    }
    /// `RTA_OIF`: the output interface index.
    pub fn oif(&self) -> Option<u32> {
        self.oif
    }
    /// `RTA_IIF`.
    pub fn iif(&self) -> Option<u32> {
        self.iif
    }
    /// `RTA_PRIORITY`: the metric.
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }
    /// `rtm_protocol` (`RTPROT_*`).
    pub fn protocol(&self) -> u8 {
        self.hdr.protocol
    }
    /// `rtm_scope` (`RT_SCOPE_*`).
    pub fn scope(&self) -> u8 {
        self.hdr.scope
    }
    /// `rtm_type` (`RTN_*`).
    pub fn route_type(&self) -> u8 {
        self.hdr.ty
    }
    /// `rtm_flags` (`RTM_F_*`, `RTNH_F_*`).
    pub fn flags(&self) -> u32 {
        self.hdr.flags
    }
    /// `rtm_tos`.
    pub fn tos(&self) -> u8 {
        self.hdr.tos
    }
    /// `RTA_PREFSRC`: the preferred source address.
    pub fn prefsrc(&self) -> Option<IpAddr> {
        self.prefsrc
    }
    /// `RTA_MARK`.
    pub fn mark(&self) -> Option<u32> {
        self.mark
    }
    /// `RTA_PREF`: IPv6 router preference (0 medium, 1 high, 3 low).
    pub fn pref(&self) -> Option<u8> {
        self.pref
    }
    /// `RTA_EXPIRES`: seconds until expiry (IPv6).
    pub fn expires(&self) -> Option<u32> {
        self.expires
    }
    /// `RTA_NH_ID`: the nexthop object id.
    pub fn nh_id(&self) -> Option<u32> {
        self.nh_id
    }
    /// True when the route has `RTA_MULTIPATH`.
    pub fn is_multipath(&self) -> bool {
        self.multipath.is_some()
    }
    /// The multipath nexthops (empty for a single-path route).
    pub fn nexthops(&self) -> impl Iterator<Item = NexthopView> + 'a {
        Nexthops::new(self.hdr.family, self.multipath.unwrap_or(&[])).filter_map(Result::ok)
    }
    /// The `RTA_METRICS` entries as `(RTAX_*, value)`; `RTAX_CC_ALGO` (a name) is skipped.
    pub fn metrics(&self) -> impl Iterator<Item = (u16, u32)> + 'a {
        Attrs::new(self.metrics.unwrap_or(&[]))
            .filter_map(Result::ok)
            .filter_map(|a| a.u32().ok().map(|v| (a.ty(), v)))
    }
    /// One metric by `RTAX_*` type.
    pub fn metric(&self, ty: u16) -> Option<u32> {
        self.metrics().find(|&(t, _)| t == ty).map(|(_, v)| v)
    }
    /// `RTAX_MTU`.
    pub fn mtu(&self) -> Option<u32> {
        self.metric(RTAX_MTU)
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }

    /// An owned copy, usable as a request (e.g. to delete or re-add it). A route that uses a
    /// nexthop object keeps only its `nhid`: the gateway, device and nexthops the kernel
    /// reports for it come from the object and cannot be sent with the id.
    pub fn to_owned(&self) -> Route {
        let own_path = self.nh_id.is_none();
        Route {
            family: self.family(),
            dst: self.dst,
            dst_len: self.dst_len(),
            src: self.src,
            src_len: self.src_len(),
            tos: self.tos(),
            table: self.table(),
            protocol: self.protocol(),
            scope: self.scope(),
            route_type: self.route_type(),
            flags: self.flags() & !(RTM_F_CLONED | RTM_F_NOTIFY),
            gateway: self.gateway().filter(|_| own_path),
            oif: self.oif.filter(|_| own_path),
            priority: self.priority,
            prefsrc: self.prefsrc,
            mark: self.mark,
            pref: self.pref,
            nh_id: self.nh_id,
            metrics: self.metrics().collect(),
            nexthops: self
                .nexthops()
                .filter(|_| own_path)
                .map(|n| NextHop {
                    gateway: n.gateway,
                    ifindex: n.ifindex,
                    weight: n.weight(),
                    flags: n.flags,
                })
                .collect(),
        }
    }
}

/// One `struct rtnexthop` of a multipath route, with its gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NexthopView {
    /// `rtnh_flags` (`RTNH_F_*`).
    pub flags: u8,
    /// `rtnh_hops`: the weight minus one.
    pub hops: u8,
    /// `rtnh_ifindex`.
    pub ifindex: u32,
    /// `RTA_GATEWAY` (or `RTA_VIA`) inside the nexthop.
    pub gateway: Option<IpAddr>,
    /// Attributes inside the nexthop this view does not decode.
    pub unknown_attrs: u32,
}

impl NexthopView {
    /// The weight as `ip route` shows it (`rtnh_hops + 1`).
    pub fn weight(&self) -> u16 {
        self.hops as u16 + 1
    }
}

/// Iterator over the `struct rtnexthop` list of an `RTA_MULTIPATH` payload.
///
/// Stops after the first malformed entry (which it yields as an error).
///
/// ```
/// use nlkit_route::route::Nexthops;
/// // rtnh_len=16, flags=0, hops=1, ifindex=3, then RTA_GATEWAY 10.0.0.2
/// let mut raw = vec![16, 0, 0, 1, 3, 0, 0, 0, 8, 0, 5, 0, 10, 0, 0, 2];
/// raw[0..2].copy_from_slice(&16u16.to_ne_bytes());
/// raw[4..8].copy_from_slice(&3i32.to_ne_bytes());
/// raw[8..10].copy_from_slice(&8u16.to_ne_bytes());
/// raw[10..12].copy_from_slice(&5u16.to_ne_bytes());
/// let nh = Nexthops::new(2, &raw).next().unwrap().unwrap();
/// assert_eq!((nh.ifindex, nh.weight()), (3, 2));
/// assert_eq!(nh.gateway, Some("10.0.0.2".parse().unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct Nexthops<'a> {
    family: u8,
    rest: &'a [u8],
}

impl<'a> Nexthops<'a> {
    /// Walks the `RTA_MULTIPATH` payload of a route of `family`.
    pub fn new(family: u8, payload: &'a [u8]) -> Self {
        Nexthops {
            family,
            rest: payload,
        }
    }

    fn next_entry(&mut self) -> Result<NexthopView, WireError> {
        let r = self.rest;
        let bad = WireError::Truncated {
            what: "rtnexthop",
            needed: RTNH_LEN,
            available: r.len(),
        };
        if r.len() < RTNH_LEN {
            return Err(bad);
        }
        let len = u16::from_ne_bytes([r[0], r[1]]) as usize;
        if len < RTNH_LEN || len > r.len() {
            return Err(bad);
        }
        let mut nh = NexthopView {
            flags: r[2],
            hops: r[3],
            ifindex: i32::from_ne_bytes([r[4], r[5], r[6], r[7]]) as u32,
            gateway: None,
            unknown_attrs: 0,
        };
        for a in Attrs::new(&r[RTNH_LEN..len]) {
            let a = a?;
            match a.ty() {
                RTA_GATEWAY => nh.gateway = ip_attr(self.family, &a)?,
                RTA_VIA => nh.gateway = parse_via(&a)?,
                _ => nh.unknown_attrs += 1,
            }
        }
        self.rest = &r[nlkit_wire::align(len).min(r.len())..];
        Ok(nh)
    }
}

impl Iterator for Nexthops<'_> {
    type Item = Result<NexthopView, WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.next_entry();
        if r.is_err() {
            self.rest = &[];
        }
        Some(r)
    }
}

/// One nexthop of an owned multipath [`Route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NextHop {
    /// The gateway.
    pub gateway: Option<IpAddr>,
    /// The output interface index (0 = let the kernel find it from the gateway).
    pub ifindex: u32,
    /// The weight, 1..=256.
    pub weight: u16,
    /// `RTNH_F_*` flags (e.g. `RTNH_F_ONLINK`).
    pub flags: u8,
}

impl NextHop {
    /// A nexthop via `gateway` with weight 1.
    pub fn via(gateway: IpAddr) -> Self {
        NextHop {
            gateway: Some(gateway),
            ifindex: 0,
            weight: 1,
            flags: 0,
        }
    }
    /// Sets the output interface.
    pub fn dev(mut self, ifindex: u32) -> Self {
        self.ifindex = ifindex;
        self
    }
    /// Sets the weight (1..=256).
    pub fn weight(mut self, weight: u16) -> Self {
        self.weight = weight;
        self
    }
}

/// An owned route: what [`request::add_route`](crate::request::add_route) and
/// [`request::del_route`](crate::request::del_route) send, and what [`RouteView::to_owned`]
/// returns. Built with chained setters, as `ip route add` reads:
///
/// ```
/// use nlkit_route::{NextHop, Route};
/// let r = Route::new("10.3.0.0".parse().unwrap(), 24)
///     .nexthop(NextHop::via("10.0.0.2".parse().unwrap()).weight(1))
///     .nexthop(NextHop::via("10.0.0.3".parse().unwrap()).weight(2))
///     .proto(nlkit_wire::consts::RTPROT_STATIC);
/// assert_eq!(r.nexthops.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// The destination; `None` for the default route.
    pub dst: Option<IpAddr>,
    /// The destination prefix length.
    pub dst_len: u8,
    /// Source prefix (source-specific routing).
    pub src: Option<IpAddr>,
    /// Source prefix length.
    pub src_len: u8,
    /// `rtm_tos`.
    pub tos: u8,
    /// The table id (any u32; main = 254).
    pub table: u32,
    /// `RTPROT_*` (`ip route add` uses `RTPROT_BOOT`).
    pub protocol: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// `RTN_*`.
    pub route_type: u8,
    /// `rtm_flags` (e.g. `RTNH_F_ONLINK`).
    pub flags: u32,
    /// The gateway (single path).
    pub gateway: Option<IpAddr>,
    /// The output interface index.
    pub oif: Option<u32>,
    /// The metric (`RTA_PRIORITY`).
    pub priority: Option<u32>,
    /// The preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// `RTA_MARK`.
    pub mark: Option<u32>,
    /// `RTA_PREF` (IPv6).
    pub pref: Option<u8>,
    /// `RTA_NH_ID`: use this nexthop object instead of an inline gateway or nexthops.
    pub nh_id: Option<u32>,
    /// `RTA_METRICS` entries `(RTAX_*, value)`.
    pub metrics: Vec<(u16, u32)>,
    /// Multipath nexthops (`RTA_MULTIPATH`); empty for a single path.
    pub nexthops: Vec<NextHop>,
}

impl Route {
    /// A unicast route to `dst/dst_len` in the main table, protocol boot, universe scope.
    pub fn new(dst: IpAddr, dst_len: u8) -> Self {
        Route {
            dst: Some(dst),
            dst_len,
            ..Route::default_route(crate::family_of(dst))
        }
    }
    /// The default route of `family` (`0.0.0.0/0` or `::/0`).
    pub fn default_route(family: u8) -> Self {
        Route {
            family,
            dst: None,
            dst_len: 0,
            src: None,
            src_len: 0,
            tos: 0,
            table: RT_TABLE_MAIN as u32,
            protocol: RTPROT_BOOT,
            scope: RT_SCOPE_UNIVERSE,
            route_type: RTN_UNICAST,
            flags: 0,
            gateway: None,
            oif: None,
            priority: None,
            prefsrc: None,
            mark: None,
            pref: None,
            nh_id: None,
            metrics: Vec::new(),
            nexthops: Vec::new(),
        }
    }
    /// Sets the gateway.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }
    /// Sets the output interface.
    pub fn dev(mut self, ifindex: u32) -> Self {
        self.oif = Some(ifindex);
        self
    }
    /// Sets the table.
    pub fn table(mut self, table: u32) -> Self {
        self.table = table;
        self
    }
    /// Sets the protocol (`RTPROT_*`).
    pub fn proto(mut self, protocol: u8) -> Self {
        self.protocol = protocol;
        self
    }
    /// Sets the scope (`RT_SCOPE_*`).
    pub fn scope(mut self, scope: u8) -> Self {
        self.scope = scope;
        self
    }
    /// Sets the route type (`RTN_*`, e.g. `RTN_BLACKHOLE`).
    pub fn kind(mut self, route_type: u8) -> Self {
        self.route_type = route_type;
        self
    }
    /// Sets the metric (`RTA_PRIORITY`).
    pub fn metric(mut self, metric: u32) -> Self {
        self.priority = Some(metric);
        self
    }
    /// Sets the preferred source address.
    pub fn src(mut self, prefsrc: IpAddr) -> Self {
        self.prefsrc = Some(prefsrc);
        self
    }
    /// Sets the path MTU metric (`RTAX_MTU`).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.metrics.retain(|&(t, _)| t != RTAX_MTU);
        self.metrics.push((RTAX_MTU, mtu));
        self
    }
    /// Uses nexthop object `id` (`ip route add … nhid ID`); the route then has no gateway,
    /// device or multipath nexthops of its own.
    pub fn nhid(mut self, id: u32) -> Self {
        self.nh_id = Some(id);
        self
    }
    /// Adds a multipath nexthop.
    pub fn nexthop(mut self, nh: NextHop) -> Self {
        self.nexthops.push(nh);
        self
    }
}
