//! `entry_text` and `event_text` (their byte writer and their `Display`) against a
//! reference: the line builder as it was before it wrote through `nlkit_wire::text` (words
//! joined by spaces, every number and address through `std`'s `Display`), kept here only as
//! the reference, on random conntrack messages covering every field the line prints.

use nlkit_testns::shaped_addr;
use std::fmt::Write as _;
use std::net::IpAddr;

use nlkit_conntrack::fmt::{entry_text, event_text, proto_name, sctp_state_name, tcp_state_name};
use nlkit_conntrack::{Counters, CtEntryView, Tuple, L4};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder, Messages, NfGenMsg};
use proptest::prelude::*;

/// The reference line: space-separated words, as the formatter built them before.
struct Line {
    s: String,
    first: bool,
}

impl Line {
    fn word(&mut self) -> &mut Self {
        if !self.first {
            self.s.push(' ');
        }
        self.first = false;
        self
    }
    fn str(&mut self, x: &str) -> &mut Self {
        self.s.push_str(x);
        self
    }
    fn num(&mut self, n: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.s, "{n}");
        self
    }
    fn ip(&mut self, a: IpAddr) -> &mut Self {
        self.num(a)
    }
    fn tuple(&mut self, t: &Tuple) -> &mut Self {
        self.word().str("src=").ip(t.src).str(" dst=").ip(t.dst);
        match t.l4 {
            L4::Ports { sport, dport } => self.str(" sport=").num(sport).str(" dport=").num(dport),
            L4::Icmp { id, ty, code } => self
                .str(" type=")
                .num(ty)
                .str(" code=")
                .num(code)
                .str(" id=")
                .num(id),
            L4::Other => self,
        }
    }
    fn counters(&mut self, c: Counters) -> &mut Self {
        self.word()
            .str("packets=")
            .num(c.packets)
            .str(" bytes=")
            .num(c.bytes)
    }
}

/// The reference: `conntrack -L` (or with `event`, `conntrack -E`) text of `e`.
fn reference(e: &CtEntryView<'_>, event: bool) -> String {
    let mut w = Line {
        s: String::new(),
        first: true,
    };
    if event {
        if let Some(k) = e.event() {
            let tag = k.tag();
            w.word().str(&"         "[tag.len().min(9)..]).str(tag);
        }
    }
    let proto = e.proto().unwrap_or(0);
    let name = proto_name(proto);
    w.word()
        .str(name)
        .str(&"        "[name.len().min(8)..])
        .str(" ")
        .num(proto);
    if let Some(t) = e.timeout() {
        w.word().num(t);
    }
    if let Some(st) = e.tcp_state() {
        w.word().str(tcp_state_name(st));
    } else if let Some(st) = e.sctp_state() {
        w.word().str(sctp_state_name(st));
    }
    if let Some(t) = e.orig() {
        w.tuple(&t);
    }
    if let Some(c) = e.counters_orig() {
        w.counters(c);
    }
    let status = e.status();
    if status.is_some_and(|s| s & IPS_SEEN_REPLY == 0) {
        w.word().str("[UNREPLIED]");
    }
    if let Some(t) = e.reply() {
        w.tuple(&t);
    }
    if let Some(c) = e.counters_reply() {
        w.counters(c);
    }
    let st = status.unwrap_or(0);
    for (bit, tag) in [
        (IPS_OFFLOAD, "[OFFLOAD]"),
        (IPS_HW_OFFLOAD, "[HW_OFFLOAD]"),
        (IPS_ASSURED, "[ASSURED]"),
    ] {
        if st & bit != 0 {
            w.word().str(tag);
        }
    }
    if let Some(m) = e.mark() {
        w.word().str("mark=").num(m);
    }
    if let Some(z) = e.zone().filter(|&z| z != 0) {
        w.word().str("zone=").num(z);
    }
    if let Some(u) = e.use_count() {
        w.word().str("use=").num(u);
    }
    w.s
}

/// One random tuple: protocol, addresses (raw, shape), which layer-4 attributes are present
/// (bits: sport, dport, icmp id, icmp type, icmp code, tuple zone) and their values.
#[derive(Debug, Clone)]
struct TupleSpec {
    proto: u8,
    addrs: [(u128, u8); 2],
    present: u8,
    ports: (u16, u16),
    icmp: (u16, u8, u8),
    zone: u16,
}

fn tuple_spec() -> impl Strategy<Value = TupleSpec> {
    let proto = prop_oneof![
        Just(IPPROTO_TCP),
        Just(IPPROTO_UDP),
        Just(IPPROTO_ICMP),
        Just(IPPROTO_ICMPV6),
        Just(IPPROTO_SCTP),
        Just(IPPROTO_DCCP),
        Just(IPPROTO_UDPLITE),
        Just(IPPROTO_GRE),
        any::<u8>(),
    ];
    (
        proto,
        any::<[(u128, u8); 2]>(),
        prop_oneof![Just(0b11u8), any::<u8>()],
        any::<(u16, u16)>(),
        any::<(u16, u8, u8)>(),
        any::<u16>(),
    )
        .prop_map(|(proto, addrs, present, ports, icmp, zone)| TupleSpec {
            proto,
            addrs,
            present,
            ports,
            icmp,
            zone,
        })
}

/// One random entry message: every field the line prints, each present or not.
#[derive(Debug, Clone)]
struct Spec {
    v6: bool,
    /// `IPCTNL_MSG_CT_NEW` with or without `NLM_F_CREATE`, `IPCTNL_MSG_CT_DELETE`, `GET`.
    kind: u8,
    orig: Option<TupleSpec>,
    reply: Option<TupleSpec>,
    /// Bits: status, timeout, mark, zone, use, id, counters orig, counters reply, TCP info,
    /// SCTP info, labels.
    present: u16,
    status: u32,
    nums: [u32; 5],
    zone: u16,
    counters: [(u64, u64); 2],
    states: (u8, u8),
}

fn spec() -> impl Strategy<Value = Spec> {
    let status = prop_oneof![
        Just(IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED),
        Just(IPS_CONFIRMED),
        Just(IPS_OFFLOAD | IPS_HW_OFFLOAD | IPS_SEEN_REPLY),
        any::<u32>(),
    ];
    let counters = prop_oneof![
        (0u64..1000, 0u64..100_000),
        any::<(u64, u64)>(),
        Just((u64::MAX, 0)),
    ];
    (
        any::<bool>(),
        0u8..4,
        proptest::option::weighted(0.9, tuple_spec()),
        proptest::option::weighted(0.9, tuple_spec()),
        any::<u16>(),
        status,
        any::<[u32; 5]>(),
        prop_oneof![Just(0u16), any::<u16>()],
        [counters.clone(), counters],
        (0u8..16, prop_oneof![0u8..12, any::<u8>()]),
    )
        .prop_map(
            |(v6, kind, orig, reply, present, status, nums, zone, counters, states)| Spec {
                v6,
                kind,
                orig,
                reply,
                present,
                status,
                nums,
                zone,
                counters,
                states,
            },
        )
}

fn put_tuple(b: &mut MessageBuilder, ty: u16, v6: bool, t: &TupleSpec) {
    let n = b.nest_begin(ty);
    let ip = b.nest_begin(CTA_TUPLE_IP);
    for (i, &(raw, shape)) in t.addrs.iter().enumerate() {
        match shaped_addr(v6, raw, shape) {
            IpAddr::V4(a) => b.attr_bytes([CTA_IP_V4_SRC, CTA_IP_V4_DST][i], &a.octets()),
            IpAddr::V6(a) => b.attr_bytes([CTA_IP_V6_SRC, CTA_IP_V6_DST][i], &a.octets()),
        };
    }
    b.nest_end(ip);
    let p = b.nest_begin(CTA_TUPLE_PROTO);
    b.attr_u8(CTA_PROTO_NUM, t.proto);
    let on = |bit: u8| t.present & (1 << bit) != 0;
    if on(0) {
        b.attr_be16(CTA_PROTO_SRC_PORT, t.ports.0);
    }
    if on(1) {
        b.attr_be16(CTA_PROTO_DST_PORT, t.ports.1);
    }
    let v6_icmp = t.proto == IPPROTO_ICMPV6;
    if on(2) {
        b.attr_be16(
            if v6_icmp {
                CTA_PROTO_ICMPV6_ID
            } else {
                CTA_PROTO_ICMP_ID
            },
            t.icmp.0,
        );
    }
    if on(3) {
        b.attr_u8(
            if v6_icmp {
                CTA_PROTO_ICMPV6_TYPE
            } else {
                CTA_PROTO_ICMP_TYPE
            },
            t.icmp.1,
        );
    }
    if on(4) {
        b.attr_u8(
            if v6_icmp {
                CTA_PROTO_ICMPV6_CODE
            } else {
                CTA_PROTO_ICMP_CODE
            },
            t.icmp.2,
        );
    }
    b.nest_end(p);
    if on(5) {
        b.attr_be16(CTA_TUPLE_ZONE, t.zone);
    }
    b.nest_end(n);
}

fn build(s: &Spec) -> MessageBuilder {
    let (ty, flags) = match s.kind {
        0 => (IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL),
        1 => (IPCTNL_MSG_CT_NEW, 0),
        2 => (IPCTNL_MSG_CT_DELETE, 0),
        _ => (IPCTNL_MSG_CT_GET, 0),
    };
    let mut b = MessageBuilder::new();
    b.begin(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, ty), flags, 0);
    b.header(&NfGenMsg {
        family: if s.v6 { AF_INET6 } else { AF_INET },
        ..Default::default()
    });
    if let Some(t) = &s.orig {
        put_tuple(&mut b, CTA_TUPLE_ORIG, s.v6, t);
    }
    if let Some(t) = &s.reply {
        put_tuple(&mut b, CTA_TUPLE_REPLY, s.v6, t);
    }
    let on = |bit: u16| s.present & (1 << bit) != 0;
    if on(0) {
        b.attr_be32(CTA_STATUS, s.status);
    }
    if on(1) {
        b.attr_be32(CTA_TIMEOUT, s.nums[0]);
    }
    if on(2) {
        b.attr_be32(CTA_MARK, s.nums[1]);
    }
    if on(3) {
        b.attr_be16(CTA_ZONE, s.zone);
    }
    if on(4) {
        b.attr_be32(CTA_USE, s.nums[2]);
    }
    if on(5) {
        b.attr_be32(CTA_ID, s.nums[3]);
    }
    for (bit, ty, (packets, bytes)) in [
        (6, CTA_COUNTERS_ORIG, s.counters[0]),
        (7, CTA_COUNTERS_REPLY, s.counters[1]),
    ] {
        if on(bit) {
            let c = b.nest_begin(ty);
            b.attr_be64(CTA_COUNTERS_PACKETS, packets)
                .attr_be64(CTA_COUNTERS_BYTES, bytes);
            b.nest_end(c);
        }
    }
    if on(8) || on(9) {
        let pi = b.nest_begin(CTA_PROTOINFO);
        if on(8) {
            let t = b.nest_begin(CTA_PROTOINFO_TCP);
            b.attr_u8(CTA_PROTOINFO_TCP_STATE, s.states.0);
            b.nest_end(t);
        }
        if on(9) {
            let t = b.nest_begin(CTA_PROTOINFO_SCTP);
            b.attr_u8(CTA_PROTOINFO_SCTP_STATE, s.states.1);
            b.nest_end(t);
        }
        b.nest_end(pi);
    }
    if on(10) {
        b.attr_bytes(CTA_LABELS, &s.nums[4].to_ne_bytes().repeat(4));
    }
    b.finish().unwrap();
    b
}

fn first(b: &MessageBuilder) -> Message<'_> {
    Messages::new(b.as_bytes()).next().unwrap().unwrap()
}

/// The writer's and `Display`'s text of `e` equal the reference, for listings and events.
fn check(e: &CtEntryView<'_>) -> Result<(), TestCaseError> {
    for (text, event) in [(entry_text(e), false), (event_text(e), true)] {
        let want = reference(e, event);
        let mut out = b"prefix ".to_vec();
        text.write_to(&mut out);
        prop_assert_eq!(String::from_utf8(out[7..].to_vec()).unwrap(), want.clone());
        prop_assert_eq!(text.to_string(), want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn same_text_as_the_reference(s in spec()) {
        let b = build(&s);
        // Every message built is well formed.
        let e = CtEntryView::parse(&first(&b)).unwrap();
        check(&e)?;
    }
}

#[test]
fn every_field_at_least_once() {
    // Every protocol number and state, every field present (so a field the strategy rarely
    // reaches is still compared).
    for proto in 0..=255u8 {
        for state in 0..12u8 {
            let t = TupleSpec {
                proto,
                addrs: [(0x0a00_0001, 0), (u128::MAX, 0)],
                present: if proto % 2 == 0 { 0b10_0011 } else { 0b01_1100 },
                ports: (1, 65535),
                icmp: (9, 8, 0),
                zone: 3,
            };
            let s = Spec {
                v6: proto % 3 == 0,
                kind: proto % 4,
                orig: Some(t.clone()),
                reply: Some(t),
                present: if state % 2 == 0 {
                    0x7ff
                } else {
                    0x7ff & !(1 << 8)
                },
                status: u32::from(state) * 0x1_0101,
                nums: [u32::MAX, 0, 1, 2, 3],
                zone: u16::from(state),
                counters: [(0, u64::MAX), (10, 100)],
                states: (state, state),
            };
            let b = build(&s);
            let e = CtEntryView::parse(&first(&b)).unwrap();
            check(&e).unwrap();
        }
    }
}
