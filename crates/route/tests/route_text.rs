//! `route_text` (its byte writer and its `Display`) against a reference: the formatter as it
//! was before it wrote bytes itself (`core::fmt` and `std`'s address `Display`), kept here
//! only as the reference, on random route messages covering every field it prints.

use nlkit_testns::shaped_addr;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use nlkit_route::fmt::{route_text, LinkNames, RouteFmt};
use nlkit_route::names::{self, Protocol, RouteType, Scope, Table};
use nlkit_route::RouteView;
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder, Messages, RtMsg};
use proptest::prelude::*;

/// The reference: iproute2's `ip route show` line, as the formatter wrote it through
/// `core::fmt`.
fn reference(r: &RouteView<'_>, names: &LinkNames, opts: RouteFmt) -> String {
    let mut f = String::new();
    reference_into(&mut f, r, names, opts).unwrap();
    f
}

fn prefix(addr: Option<IpAddr>, len: u8, fam: u8) -> String {
    let host = if fam == AF_INET6 { 128 } else { 32 };
    match addr {
        Some(a) if len == host => format!("{a}"),
        Some(a) => format!("{a}/{len}"),
        None if len != 0 => format!("0/{len}"),
        None => "default".into(),
    }
}

fn flag_names(flags: u32) -> impl Iterator<Item = &'static str> {
    names::ROUTE_FLAGS
        .iter()
        .filter(move |(b, _)| flags & b != 0)
        .map(|e| e.1)
}

fn reference_into(
    f: &mut String,
    r: &RouteView<'_>,
    names: &LinkNames,
    opts: RouteFmt,
) -> fmt::Result {
    let fam = r.family();
    if r.msg_type() == RTM_DELROUTE {
        f.write_str("Deleted ")?;
    }
    if r.route_type() != RTN_UNICAST {
        write!(f, "{} ", RouteType(r.route_type()))?;
    }
    write!(f, "{} ", prefix(r.dst(), r.dst_len(), fam))?;
    if r.src().is_some() || r.src_len() != 0 {
        write!(f, "from {} ", prefix(r.src(), r.src_len(), fam))?;
    }
    if let Some(id) = r.nh_id() {
        write!(f, "nhid {id} ")?;
    }
    if let Some(gw) = r.gateway() {
        if r.gateway_is_via() {
            let fam = if gw.is_ipv4() { "inet" } else { "inet6" };
            write!(f, "via {fam} {gw} ")?;
        } else {
            write!(f, "via {gw} ")?;
        }
    }
    if let Some(o) = r.oif().filter(|_| opts.show_dev) {
        write!(f, "dev {} ", names.name(o))?;
    }
    let table = r.table();
    if opts.show_table && table != RT_TABLE_MAIN as u32 {
        write!(f, "table {} ", Table(table))?;
    }
    if r.flags() & RTM_F_CLONED == 0 {
        if r.protocol() != RTPROT_BOOT && opts.show_proto {
            write!(f, "proto {} ", Protocol(r.protocol()))?;
        }
        if r.scope() != RT_SCOPE_UNIVERSE {
            write!(f, "scope {} ", Scope(r.scope()))?;
        }
    }
    if let Some(s) = r.prefsrc() {
        write!(f, "src {s} ")?;
    }
    if let Some(p) = r.priority() {
        write!(f, "metric {p} ")?;
    }
    for n in flag_names(r.flags()) {
        write!(f, "{n} ")?;
    }
    if let Some(m) = r.mark().filter(|&m| m != 0) {
        write!(f, "mark {m} ")?;
    }
    if let Some(e) = r.expires() {
        write!(f, "expires {}sec ", e / 100)?;
    }
    let locked = r.metric(RTAX_LOCK).unwrap_or(0);
    for (t, v) in r.metrics() {
        if let Some(n) = names::metric(t) {
            let lock = if locked & (1 << t) != 0 { "lock " } else { "" };
            write!(f, "{n} {lock}{v} ")?;
        }
    }
    if let Some(u) = r.uid() {
        write!(f, "uid {u} ")?;
    }
    if r.flags() & RTM_F_CLONED != 0 && fam == AF_INET {
        f.write_str("\n    cache ")?;
        if let Some(ci) = r.cacheinfo() {
            if ci.expires != 0 {
                write!(f, "expires {}sec ", ci.expires / 100)?;
            }
            if ci.error != 0 {
                write!(f, "error {} ", ci.error)?;
            }
        }
    }
    if let Some(p) = r.pref() {
        write!(f, "pref {}", names::pref(p))?;
    }
    for nh in r.nexthops() {
        f.write_str("\n\tnexthop ")?;
        if let Some(gw) = nh.gateway {
            write!(f, "via {gw} ")?;
        }
        if nh.ifindex != 0 {
            write!(f, "dev {} ", names.name(nh.ifindex))?;
        }
        write!(f, "weight {} ", nh.weight())?;
        for n in flag_names(nh.flags as u32) {
            write!(f, "{n} ")?;
        }
    }
    Ok(())
}

fn put_addr(b: &mut MessageBuilder, ty: u16, a: IpAddr) {
    b.attr_ip(ty, a);
}

/// A multipath entry: flags, hops (weight - 1), ifindex, gateway (raw address, shape).
type Hop = (u8, u8, i32, Option<(u128, u8)>);

/// One random route message: every field `route_text` prints, each present or not.
#[derive(Debug, Clone)]
struct Spec {
    del: bool,
    v6: bool,
    /// `(dst_len, src_len, type, table, protocol, scope, flags)`.
    hdr: (u8, u8, u8, u8, u8, u8, u32),
    addrs: [(u128, u8); 4],
    present: u32,
    nums: [u32; 8],
    via_v6: bool,
    metrics: Vec<(u16, u32)>,
    hops: Vec<Hop>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let flags = prop_oneof![Just(0u32), Just(RTM_F_CLONED), any::<u32>(), (0u32..0x400)];
    (
        any::<(bool, bool, bool)>(),
        (
            0u8..=129,
            0u8..=129,
            Just(0u8),
            prop_oneof![Just(RT_TABLE_MAIN), any::<u8>()],
            prop_oneof![Just(RTPROT_BOOT), Just(RTPROT_STATIC), any::<u8>()],
            prop_oneof![Just(RT_SCOPE_UNIVERSE), Just(RT_SCOPE_LINK), any::<u8>()],
            prop_oneof![Just(RTN_UNICAST), any::<u8>()],
        ),
        flags,
        any::<[(u128, u8); 4]>(),
        any::<u32>(),
        any::<[u32; 8]>(),
        proptest::collection::vec((0u16..20, any::<u32>()), 0..5),
        proptest::collection::vec(
            (
                any::<u8>(),
                any::<u8>(),
                0i32..6,
                proptest::option::of(any::<(u128, u8)>()),
            ),
            0..4,
        ),
    )
        .prop_map(
            |((del, v6, via_v6), h, flags, addrs, present, nums, metrics, hops)| Spec {
                del,
                v6,
                hdr: (h.0, h.1, h.6, h.3, h.4, h.5, flags),
                addrs,
                present,
                nums,
                via_v6,
                metrics,
                hops,
            },
        )
}

fn build(s: &Spec) -> MessageBuilder {
    let (dst_len, src_len, ty, table, protocol, scope, flags) = s.hdr;
    let fam = if s.v6 { AF_INET6 } else { AF_INET };
    let mut b = MessageBuilder::new();
    b.begin(if s.del { RTM_DELROUTE } else { RTM_NEWROUTE }, 0, 0);
    b.header(&RtMsg {
        family: fam,
        dst_len: dst_len.min(if s.v6 { 128 } else { 32 } + 1),
        src_len,
        tos: 0,
        table,
        protocol,
        scope,
        ty,
        flags,
    });
    let on = |bit: u32| s.present & (1 << bit) != 0;
    let a = |i: usize| shaped_addr(s.v6, s.addrs[i].0, s.addrs[i].1);
    if on(0) {
        b.attr_u32(RTA_TABLE, s.nums[0] % 1100);
    }
    if on(1) {
        put_addr(&mut b, RTA_DST, a(0));
    }
    if on(2) {
        put_addr(&mut b, RTA_SRC, a(1));
    }
    if on(3) {
        if on(4) {
            // RTA_VIA: struct rtvia { family; addr }.
            let gw = shaped_addr(s.via_v6, s.addrs[2].0, s.addrs[2].1);
            let (f, bytes): (u16, Vec<u8>) = match gw {
                IpAddr::V4(g) => (AF_INET as u16, g.octets().to_vec()),
                IpAddr::V6(g) => (AF_INET6 as u16, g.octets().to_vec()),
            };
            let mut p = f.to_ne_bytes().to_vec();
            p.extend_from_slice(&bytes);
            b.attr_bytes(RTA_VIA, &p);
        } else {
            put_addr(&mut b, RTA_GATEWAY, a(2));
        }
    }
    if on(5) {
        b.attr_u32(RTA_OIF, s.nums[1] % 6);
    }
    if on(6) {
        b.attr_u32(RTA_PRIORITY, s.nums[2]);
    }
    if on(7) {
        put_addr(&mut b, RTA_PREFSRC, a(3));
    }
    if on(8) {
        b.attr_u32(RTA_MARK, if on(9) { 0 } else { s.nums[3] });
    }
    if on(10) {
        b.attr_u8(RTA_PREF, s.nums[4] as u8 % 5);
    }
    if on(11) {
        b.attr_u32(RTA_EXPIRES, s.nums[5]);
    }
    if on(12) {
        b.attr_u32(RTA_NH_ID, s.nums[6]);
    }
    if on(13) {
        b.attr_u32(RTA_UID, s.nums[7]);
    }
    if on(14) {
        // struct rta_cacheinfo: clntref, lastuse, expires (i32), error, used, id, ts, tsage.
        let mut p = [0u8; 32];
        p[8..12].copy_from_slice(&(s.nums[5] as i32).to_ne_bytes());
        p[12..16].copy_from_slice(&(if on(15) { 0 } else { s.nums[6] }).to_ne_bytes());
        b.attr_bytes(RTA_CACHEINFO, &p);
    }
    if on(16) && !s.metrics.is_empty() {
        let n = b.nest_begin(RTA_METRICS);
        for &(t, v) in &s.metrics {
            if t == RTAX_CC_ALGO {
                b.attr_str(t, "cubic");
            } else {
                b.attr_u32(t, v);
            }
        }
        b.nest_end(n);
    }
    if on(17) && !s.hops.is_empty() {
        let mut p = Vec::new();
        for &(flags, hops, ifindex, gw) in &s.hops {
            let mut e = Vec::new();
            if let Some((raw, shape)) = gw {
                let g = shaped_addr(s.v6, raw, shape);
                let bytes = match g {
                    IpAddr::V4(g) => g.octets().to_vec(),
                    IpAddr::V6(g) => g.octets().to_vec(),
                };
                e.extend_from_slice(&(4 + bytes.len() as u16).to_ne_bytes());
                e.extend_from_slice(&RTA_GATEWAY.to_ne_bytes());
                e.extend_from_slice(&bytes);
            }
            let len = 8 + e.len() as u16;
            p.extend_from_slice(&len.to_ne_bytes());
            p.extend_from_slice(&[flags, hops]);
            p.extend_from_slice(&ifindex.to_ne_bytes());
            p.extend_from_slice(&e);
        }
        b.attr_bytes(RTA_MULTIPATH, &p);
    }
    b.finish().unwrap();
    b
}

fn names() -> LinkNames {
    let mut n = LinkNames::new();
    n.insert(1, "lo");
    n.insert(2, "veth-with-a-long-name");
    n.insert(3, "é0");
    n
}

fn first(b: &MessageBuilder) -> Message<'_> {
    Messages::new(b.as_bytes()).next().unwrap().unwrap()
}

fn opts(bits: u8) -> RouteFmt {
    RouteFmt {
        show_table: bits & 1 != 0,
        show_dev: bits & 2 != 0,
        show_proto: bits & 4 != 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn same_text_as_the_reference(s in spec(), bits in 0u8..8) {
        let b = build(&s);
        let m = first(&b);
        let names = names();
        let opts = opts(bits);
        // Every message built is well formed.
        let r = RouteView::parse(&m).unwrap();
        let want = reference(&r, &names, opts);
        let text = route_text(&r, &names, opts);
        let mut out = b"prefix ".to_vec();
        text.write_to(&mut out);
        prop_assert_eq!(String::from_utf8(out[7..].to_vec()).unwrap(), want.clone());
        prop_assert_eq!(text.to_string(), want);
    }
}

#[test]
fn every_field_at_least_once() {
    // The reference and the writer on a route with everything set (so a field the strategy
    // rarely reaches is still compared).
    let s = Spec {
        del: true,
        v6: false,
        hdr: (24, 8, RTN_BLACKHOLE, 7, 99, 77, RTM_F_CLONED | 0x3ff),
        addrs: [
            (0x0a000001, 0),
            (0xc0a80000, 0),
            (0x01020304, 0),
            (0xffffffff, 0),
        ],
        present: !((1 << 9) | (1 << 15)),
        nums: [1000, 2, 100, 0xdead, 3, 12345, 42, 1000],
        via_v6: true,
        metrics: vec![
            (RTAX_LOCK, 1 << RTAX_MTU),
            (RTAX_MTU, 1400),
            (RTAX_CC_ALGO, 0),
            (19, 5),
        ],
        hops: vec![(1, 0, 2, Some((0x0a000002, 0))), (0x40, 6, 9, None)],
    };
    let b = build(&s);
    let r = RouteView::parse(&first(&b)).unwrap();
    let names = names();
    let want = reference(&r, &names, RouteFmt::default());
    assert!(
        want.contains("mtu lock 1400") && want.contains("nexthop"),
        "{want}"
    );
    assert!(want.contains("via inet6 "), "{want}");
    let mut out = Vec::new();
    route_text(&r, &names, RouteFmt::default()).write_to(&mut out);
    assert_eq!(String::from_utf8(out).unwrap(), want);
}
