//! `ip route show` text and `ip -j route show` JSON.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

use nlkit_wire::consts::*;
use serde::ser::SerializeMap;

use super::{name_list, AsStr, LinkNames};
use nlkit_wire::text::{push_fixed, push_ip, push_num, Decimal};

use crate::names::{self, Protocol, RouteType, Scope, Table};
use crate::RouteView;

/// Options for route output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteFmt {
    /// Print `table T` for routes outside the main table. iproute2 does this unless the
    /// listing was already restricted to one table (`ip route show table 1000`); set it to
    /// `false` in that case.
    pub show_table: bool,
    /// Print `dev D`. iproute2 omits it when the listing was restricted to one device
    /// (`ip route show dev D`); set it to `false` in that case.
    pub show_dev: bool,
    /// Print `proto P`; iproute2 omits it under `ip route show proto P`.
    pub show_proto: bool,
}

impl Default for RouteFmt {
    fn default() -> Self {
        RouteFmt {
            show_table: true,
            show_dev: true,
            show_proto: true,
        }
    }
}

fn host_len(family: u8) -> u8 {
    if family == AF_INET6 {
        128
    } else {
        32
    }
}

/// A prefix as iproute2 prints it: `addr` for a host, `addr/len` otherwise, `default` for
/// `0/0` without an address, `0/len` for a prefix without one.
struct Prefix(Option<IpAddr>, u8, u8);

impl Prefix {
    fn push_to(&self, out: &mut Vec<u8>) {
        match self.0 {
            Some(a) => {
                push_ip(out, a);
                if self.1 != host_len(self.2) {
                    out.push(b'/');
                    push_num(out, self.1);
                }
            }
            None if self.1 != 0 => {
                out.extend_from_slice(b"0/");
                push_num(out, self.1);
            }
            None => out.extend_from_slice(b"default"),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(48);
        self.push_to(&mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

fn flag_names(flags: u32) -> impl Iterator<Item = &'static str> {
    names::ROUTE_FLAGS
        .iter()
        .filter(move |(b, _)| flags & b != 0)
        .map(|e| e.1)
}

/// A word of a route line with its value and the space after it (`proto static `), padded
/// to a constant size: appended with [`push_fixed`] (one copy of a constant size, no
/// `memcpy` call).
#[derive(Clone, Copy)]
struct Word {
    bytes: [u8; 24],
    len: u8,
}

/// The 256 words `key NAME ` of a `u8` field, NAME from `name` or the number.
fn words(key: &str, name: fn(u8) -> Option<&'static str>) -> Box<[Word; 256]> {
    let mut t = Box::new(
        [Word {
            bytes: [0; 24],
            len: 0,
        }; 256],
    );
    let mut line = Vec::with_capacity(24);
    for (i, w) in t.iter_mut().enumerate() {
        let v = i as u8;
        line.clear();
        line.extend_from_slice(key.as_bytes());
        push_name_or_number(&mut line, name(v), v);
        // The longest is `scope nowhere ` (14 bytes); a longer one is cut (never printed:
        // `write_word` writes it in full).
        let n = line.len().min(24);
        w.bytes[..n].copy_from_slice(&line[..n]);
        w.len = line.len() as u8;
    }
    t
}

/// `proto NAME ` for every protocol.
static PROTOCOL_WORDS: OnceLock<Box<[Word; 256]>> = OnceLock::new();
/// `scope NAME ` for every scope.
static SCOPE_WORDS: OnceLock<Box<[Word; 256]>> = OnceLock::new();

/// Appends `key NAME ` for value `v` from the table in `cell` (built on first use).
#[inline]
fn write_word(
    out: &mut Vec<u8>,
    cell: &OnceLock<Box<[Word; 256]>>,
    key: &str,
    name: fn(u8) -> Option<&'static str>,
    v: u8,
) {
    let w = &cell.get_or_init(|| words(key, name))[usize::from(v)];
    if usize::from(w.len) <= w.bytes.len() {
        push_fixed(out, &w.bytes, usize::from(w.len));
    } else {
        out.extend_from_slice(key.as_bytes());
        push_name_or_number(out, name(v), v);
    }
}

/// Appends `name` (from a table of names) or, when there is none, the number `n`; then a
/// space.
fn push_name_or_number<T: Decimal>(out: &mut Vec<u8>, name: Option<&str>, n: T) {
    match name {
        Some(s) => out.extend_from_slice(s.as_bytes()),
        None => push_num(out, n),
    }
    out.push(b' ');
}

/// `ip route show` text for one route; see [`route_text`].
///
/// [`write_to`](RouteText::write_to) appends it to a byte buffer (what listings use: no
/// formatting machinery, no allocation); its `Display` writes the same text.
#[derive(Debug, Clone, Copy)]
pub struct RouteText<'v, 'a, 'n> {
    route: &'v RouteView<'a>,
    names: &'n LinkNames,
    opts: RouteFmt,
}

/// Formats a route like `ip route show` (including the trailing space iproute2 prints, and
/// `\n\tnexthop …` lines for multipath routes). No newline is written at the end.
///
/// ```
/// # use nlkit_wire::{Messages, MessageBuilder, consts::*};
/// # use nlkit_route::{fmt::*, request, Route, RouteView};
/// let r = Route::new("10.0.0.0".parse().unwrap(), 24).dev(2).proto(RTPROT_KERNEL)
///     .scope(RT_SCOPE_LINK).src("10.0.0.1".parse().unwrap()).table(1000);
/// let mut b = MessageBuilder::new();
/// request::add_route(&mut b, 1, &r, request::RouteOp::Add).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = RouteView::parse(&m).unwrap();
/// let mut names = LinkNames::new();
/// names.insert(2, "va");
/// let text = route_text(&v, &names, RouteFmt::default());
/// assert_eq!(text.to_string(),
///            "10.0.0.0/24 dev va table 1000 proto kernel scope link src 10.0.0.1 ");
/// let mut line = Vec::new();
/// text.write_to(&mut line);
/// assert_eq!(line, text.to_string().into_bytes());
/// ```
pub fn route_text<'v, 'a, 'n>(
    route: &'v RouteView<'a>,
    names: &'n LinkNames,
    opts: RouteFmt,
) -> RouteText<'v, 'a, 'n> {
    RouteText { route, names, opts }
}

impl RouteText<'_, '_, '_> {
    /// Appends the route's text (what `Display` writes) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let r = self.route;
        let fam = r.family();
        if r.msg_type() == RTM_DELROUTE {
            out.extend_from_slice(b"Deleted ");
        }
        if r.route_type() != RTN_UNICAST {
            push_name_or_number(out, names::route_type(r.route_type()), r.route_type());
        }
        Prefix(r.dst(), r.dst_len(), fam).push_to(out);
        out.push(b' ');
        if r.src().is_some() || r.src_len() != 0 {
            out.extend_from_slice(b"from ");
            Prefix(r.src(), r.src_len(), fam).push_to(out);
            out.push(b' ');
        }
        if let Some(id) = r.nh_id() {
            out.extend_from_slice(b"nhid ");
            push_num(out, id);
            out.push(b' ');
        }
        if let Some(gw) = r.gateway() {
            out.extend_from_slice(b"via ");
            if r.gateway_is_via() {
                out.extend_from_slice(if gw.is_ipv4() { b"inet " } else { b"inet6 " });
            }
            push_ip(out, gw);
            out.push(b' ');
        }
        if let Some(o) = r.oif().filter(|_| self.opts.show_dev) {
            out.extend_from_slice(b"dev ");
            self.names.name(o).push_to(out);
            out.push(b' ');
        }
        let table = r.table();
        if self.opts.show_table && table != RT_TABLE_MAIN as u32 {
            out.extend_from_slice(b"table ");
            push_name_or_number(out, names::table(table), table);
        }
        if r.flags() & RTM_F_CLONED == 0 {
            if r.protocol() != RTPROT_BOOT && self.opts.show_proto {
                let p = r.protocol();
                write_word(out, &PROTOCOL_WORDS, "proto ", names::protocol, p);
            }
            if r.scope() != RT_SCOPE_UNIVERSE {
                let s = r.scope();
                write_word(out, &SCOPE_WORDS, "scope ", names::scope, s);
            }
        }
        if let Some(s) = r.prefsrc() {
            out.extend_from_slice(b"src ");
            push_ip(out, s);
            out.push(b' ');
        }
        if let Some(p) = r.priority() {
            out.extend_from_slice(b"metric ");
            push_num(out, p);
            out.push(b' ');
        }
        for n in flag_names(r.flags()) {
            push_name_or_number(out, Some(n), 0u8);
        }
        if let Some(m) = r.mark().filter(|&m| m != 0) {
            out.extend_from_slice(b"mark ");
            push_num(out, m);
            out.push(b' ');
        }
        if let Some(e) = r.expires() {
            out.extend_from_slice(b"expires ");
            push_num(out, e / 100);
            out.extend_from_slice(b"sec ");
        }
        let locked = r.metric(RTAX_LOCK).unwrap_or(0);
        for (t, v) in r.metrics() {
            if let Some(n) = names::metric(t) {
                out.extend_from_slice(n.as_bytes());
                out.push(b' ');
                if locked & (1 << t) != 0 {
                    out.extend_from_slice(b"lock ");
                }
                push_num(out, v);
                out.push(b' ');
            }
        }
        if let Some(u) = r.uid() {
            out.extend_from_slice(b"uid ");
            push_num(out, u);
            out.push(b' ');
        }
        // A cloned (cached) route, as `ip route get` shows it.
        if r.flags() & RTM_F_CLONED != 0 && fam == AF_INET {
            out.extend_from_slice(b"\n    cache ");
            if let Some(ci) = r.cacheinfo() {
                if ci.expires != 0 {
                    // In clock ticks; USER_HZ is 100 on Linux.
                    out.extend_from_slice(b"expires ");
                    push_num(out, ci.expires / 100);
                    out.extend_from_slice(b"sec ");
                }
                if ci.error != 0 {
                    out.extend_from_slice(b"error ");
                    push_num(out, ci.error);
                    out.push(b' ');
                }
            }
        }
        // iproute2 prints the IPv6 preference before the multipath nexthops.
        if let Some(p) = r.pref() {
            out.extend_from_slice(b"pref ");
            out.extend_from_slice(names::pref(p).as_bytes());
        }
        if r.is_multipath() {
            for nh in r.nexthops() {
                out.extend_from_slice(b"\n\tnexthop ");
                if let Some(gw) = nh.gateway {
                    out.extend_from_slice(b"via ");
                    push_ip(out, gw);
                    out.push(b' ');
                }
                if nh.ifindex != 0 {
                    out.extend_from_slice(b"dev ");
                    self.names.name(nh.ifindex).push_to(out);
                    out.push(b' ');
                }
                out.extend_from_slice(b"weight ");
                push_num(out, nh.weight());
                out.push(b' ');
                for n in flag_names(nh.flags as u32) {
                    push_name_or_number(out, Some(n), 0u8);
                }
            }
        }
    }
}

impl fmt::Display for RouteText<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(128);
        self.write_to(&mut out);
        // Only `str`s and ASCII were appended.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// `ip -j route show` JSON for one route; see [`route_json`].
#[derive(Debug, Clone, Copy)]
pub struct RouteJson<'v, 'a, 'n> {
    route: &'v RouteView<'a>,
    names: &'n LinkNames,
    opts: RouteFmt,
}

/// A serializable route with `ip -j route` field names: `type` (when not unicast), `dst`,
/// `gateway`, `dev`, `table`, `protocol`, `scope`, `prefsrc`, `metric`, `flags`, `metrics`,
/// `nexthops`, `pref`.
///
/// ```
/// # use nlkit_wire::{Messages, MessageBuilder, consts::*};
/// # use nlkit_route::{fmt::*, request, Route, RouteView};
/// let r = Route::new("10.1.0.0".parse().unwrap(), 24).via("10.0.0.2".parse().unwrap())
///     .dev(2).metric(100).proto(RTPROT_STATIC);
/// let mut b = MessageBuilder::new();
/// request::add_route(&mut b, 1, &r, request::RouteOp::Add).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = RouteView::parse(&m).unwrap();
/// let mut names = LinkNames::new();
/// names.insert(2, "va");
/// let j = serde_json::to_string(&route_json(&v, &names, RouteFmt::default())).unwrap();
/// assert_eq!(j, r#"{"dst":"10.1.0.0/24","gateway":"10.0.0.2","dev":"va","protocol":"static","metric":100,"flags":[]}"#);
/// ```
pub fn route_json<'v, 'a, 'n>(
    route: &'v RouteView<'a>,
    names: &'n LinkNames,
    opts: RouteFmt,
) -> RouteJson<'v, 'a, 'n> {
    RouteJson { route, names, opts }
}

struct NexthopsJson<'v, 'a, 'n>(&'v RouteView<'a>, &'n LinkNames);

impl serde::Serialize for NexthopsJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for nh in self.0.nexthops() {
            seq.serialize_element(&NexthopJson(nh, self.1))?;
        }
        seq.end()
    }
}

struct NexthopJson<'n>(crate::NexthopView, &'n LinkNames);

impl serde::Serialize for NexthopJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let nh = &self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(gw) = nh.gateway {
            m.serialize_entry("gateway", &gw)?;
        }
        if nh.ifindex != 0 {
            m.serialize_entry("dev", &self.1.name(nh.ifindex))?;
        }
        m.serialize_entry("weight", &nh.weight())?;
        m.serialize_entry("flags", &name_list(flag_names(nh.flags as u32)))?;
        m.end()
    }
}

struct MetricsJson<'v, 'a>(&'v RouteView<'a>);

impl serde::Serialize for MetricsJson<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `ip -j` prints a one-element array holding an object of metrics.
        struct Inner<'v, 'a>(&'v RouteView<'a>);
        impl serde::Serialize for Inner<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                for (t, v) in self.0.metrics() {
                    if let Some(n) = names::metric(t) {
                        m.serialize_entry(n, &v)?;
                    }
                }
                m.end()
            }
        }
        s.collect_seq(std::iter::once(Inner(self.0)))
    }
}

impl serde::Serialize for RouteJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.route;
        let fam = r.family();
        let mut m = s.serialize_map(None)?;
        if r.msg_type() == RTM_DELROUTE {
            m.serialize_entry("deleted", &true)?;
        }
        if r.route_type() != RTN_UNICAST {
            m.serialize_entry("type", &AsStr(RouteType(r.route_type())))?;
        }
        m.serialize_entry("dst", &AsStr(Prefix(r.dst(), r.dst_len(), fam)))?;
        if r.src().is_some() || r.src_len() != 0 {
            m.serialize_entry("from", &AsStr(Prefix(r.src(), r.src_len(), fam)))?;
        }
        if let Some(id) = r.nh_id() {
            m.serialize_entry("nhid", &id)?;
        }
        if let Some(gw) = r.gateway() {
            m.serialize_entry("gateway", &gw)?;
        }
        if let Some(o) = r.oif().filter(|_| self.opts.show_dev) {
            m.serialize_entry("dev", &self.names.name(o))?;
        }
        let table = r.table();
        if self.opts.show_table && table != RT_TABLE_MAIN as u32 {
            m.serialize_entry("table", &AsStr(Table(table)))?;
        }
        if r.flags() & RTM_F_CLONED == 0 {
            if r.protocol() != RTPROT_BOOT && self.opts.show_proto {
                m.serialize_entry("protocol", &AsStr(Protocol(r.protocol())))?;
            }
            if r.scope() != RT_SCOPE_UNIVERSE {
                m.serialize_entry("scope", &AsStr(Scope(r.scope())))?;
            }
        }
        if let Some(p) = r.prefsrc() {
            m.serialize_entry("prefsrc", &p)?;
        }
        if let Some(p) = r.priority() {
            m.serialize_entry("metric", &p)?;
        }
        m.serialize_entry("flags", &name_list(flag_names(r.flags())))?;
        if let Some(mk) = r.mark().filter(|&x| x != 0) {
            m.serialize_entry("mark", &mk)?;
        }
        if let Some(e) = r.expires() {
            m.serialize_entry("expires", &(e / 100))?;
        }
        if r.metrics().any(|(t, _)| names::metric(t).is_some()) {
            m.serialize_entry("metrics", &MetricsJson(r))?;
        }
        if let Some(p) = r.pref() {
            m.serialize_entry("pref", names::pref(p))?;
        }
        if r.is_multipath() {
            m.serialize_entry("nexthops", &NexthopsJson(r, self.names))?;
        }
        m.end()
    }
}
