//! Round trips builder → view, both nest encodings, unknown attributes, arbitrary bytes.

use nlkit_conntrack::fmt::{entry_json, entry_text, event_text};
use nlkit_conntrack::request::{self, DumpFilter, TupleFilter};
use nlkit_conntrack::{CtEntry, CtEntryView, EventKind, Tuple, L4};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder, Messages, NfGenMsg};
use proptest::prelude::*;

fn first(b: &MessageBuilder) -> Message<'_> {
    Messages::new(b.as_bytes()).next().unwrap().unwrap()
}

#[test]
fn every_protocol_round_trips() {
    let a4 = "10.0.0.1".parse().unwrap();
    let b4 = "10.0.0.2".parse().unwrap();
    let a6 = "fd00::1".parse().unwrap();
    let b6 = "fd00::2".parse().unwrap();
    let tuples = [
        Tuple::tcp(a4, 40000, b4, 80),
        Tuple::udp(a6, 5353, b6, 53),
        Tuple::sctp(a4, 1, b4, 2),
        Tuple::icmp(a4, b4, 77, 8, 0),
        Tuple::icmp(a6, b6, 78, 128, 0),
    ];
    for t in tuples {
        let e = CtEntry::new(t)
            .timeout(30)
            .mark(5)
            .zone(9)
            .status(IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED)
            .labels([1; 16]);
        let e = if t.proto == IPPROTO_TCP {
            e.tcp_state(TCP_CONNTRACK_ESTABLISHED)
        } else {
            e
        };
        let mut b = MessageBuilder::new();
        request::create(&mut b, 1, &e).unwrap();
        let v = CtEntryView::parse(&first(&b)).unwrap();
        assert_eq!(v.to_owned().unwrap(), e, "{t:?}");
        assert_eq!(v.unknown_attrs(), 0);
        assert_eq!(v.family(), t.family());
    }
    let icmp = Tuple::icmp(a4, b4, 77, 8, 0).reversed();
    assert_eq!(
        icmp.l4,
        L4::Icmp {
            id: 77,
            ty: 0,
            code: 0
        }
    );
}

/// A kernel-style message: nests without NLA_F_NESTED, counters, use, id, unknown attributes.
fn kernel_style(flags: u16, ty: u8) -> MessageBuilder {
    let mut b = MessageBuilder::new();
    b.begin(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, ty), flags, 0);
    b.header(&NfGenMsg {
        family: AF_INET,
        ..Default::default()
    });
    for (which, (s, d, sp, dp)) in [
        (
            CTA_TUPLE_ORIG,
            ([10, 0, 0, 1], [10, 0, 0, 2], 1234u16, 53u16),
        ),
        (CTA_TUPLE_REPLY, ([10, 0, 0, 2], [10, 0, 0, 1], 53, 1234)),
    ] {
        let t = b.nest_begin_flags(which);
        let ip = b.nest_begin_flags(CTA_TUPLE_IP);
        b.attr_bytes(CTA_IP_V4_SRC, &s)
            .attr_bytes(CTA_IP_V4_DST, &d);
        b.nest_end(ip);
        let p = b.nest_begin_flags(CTA_TUPLE_PROTO);
        b.attr_u8(CTA_PROTO_NUM, IPPROTO_UDP)
            .attr_be16(CTA_PROTO_SRC_PORT, sp)
            .attr_be16(CTA_PROTO_DST_PORT, dp);
        b.attr_u8(99, 1);
        b.nest_end(p);
        b.nest_end(t);
    }
    let c = b.nest_begin_flags(CTA_COUNTERS_ORIG);
    b.attr_be64(CTA_COUNTERS_PACKETS, 3)
        .attr_be64(CTA_COUNTERS_BYTES, 180);
    b.nest_end(c);
    b.attr_be32(CTA_STATUS, IPS_CONFIRMED)
        .attr_be32(CTA_TIMEOUT, 29)
        .attr_be32(CTA_MARK, 0);
    b.attr_be32(CTA_USE, 1).attr_be32(CTA_ID, 0xdeadbeef);
    b.attr_bytes(999, &[1, 2, 3]);
    b.finish().unwrap();
    b
}

#[test]
fn kernel_messages_without_nested_flag_and_unknown_attrs() {
    let b = kernel_style(NLM_F_CREATE | NLM_F_EXCL, IPCTNL_MSG_CT_NEW);
    let v = CtEntryView::parse(&first(&b)).unwrap();
    assert_eq!(v.orig().unwrap().sport(), Some(1234));
    assert_eq!(v.counters_orig().unwrap().bytes, 180);
    assert_eq!(
        (v.id(), v.use_count(), v.timeout()),
        (Some(0xdeadbeef), Some(1), Some(29))
    );
    assert_eq!(v.unknown_attrs(), 3, "two inside tuples, one at top level");
    assert_eq!(v.event(), Some(EventKind::New));
    assert_eq!(
        entry_text(&v).to_string(),
        "udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=53 packets=3 bytes=180 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1234 mark=0 use=1"
    );
    assert!(event_text(&v)
        .to_string()
        .starts_with("    [NEW] udp      17 29 "));
    let j = serde_json::to_value(entry_json(&v)).unwrap();
    assert_eq!(j["orig"]["packets"], 3);
    assert_eq!(j["status"][0], "CONFIRMED");
    let d = kernel_style(0, IPCTNL_MSG_CT_DELETE);
    assert_eq!(
        CtEntryView::parse(&first(&d)).unwrap().event(),
        Some(EventKind::Destroy)
    );
}

#[test]
fn tcp_text_and_zone() {
    let t = Tuple::tcp(
        "10.0.0.1".parse().unwrap(),
        40000,
        "10.0.0.2".parse().unwrap(),
        80,
    );
    let e = CtEntry::new(t)
        .timeout(100)
        .tcp_state(TCP_CONNTRACK_ESTABLISHED)
        .status(IPS_SEEN_REPLY | IPS_ASSURED)
        .mark(1)
        .zone(4);
    let mut b = MessageBuilder::new();
    request::create(&mut b, 1, &e).unwrap();
    let v = CtEntryView::parse(&first(&b)).unwrap();
    assert_eq!(entry_text(&v).to_string(),
        "tcp      6 100 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=1 zone=4");
}

#[test]
fn dump_filter_request_and_user_space_match() {
    let f = DumpFilter {
        mark: Some((5, 0xff)),
        zone: Some(9),
        orig: Some(TupleFilter {
            dst: Some("10.0.0.2".parse().unwrap()),
            proto: Some(IPPROTO_UDP),
            dport: Some(53),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut b = MessageBuilder::new();
    request::dump(&mut b, 1, &f).unwrap();
    let m = first(&b);
    let (h, attrs) = m.family_header::<NfGenMsg>().unwrap();
    assert_eq!(h.family, AF_INET, "a tuple filter carries its family");
    assert_eq!(
        attrs
            .clone()
            .find(CTA_ZONE)
            .unwrap()
            .unwrap()
            .be16()
            .unwrap(),
        9
    );
    assert!(attrs.find(CTA_FILTER).is_some());
    let t = Tuple::udp(
        "10.0.0.1".parse().unwrap(),
        1,
        "10.0.0.2".parse().unwrap(),
        53,
    );
    let mut c = MessageBuilder::new();
    request::create(&mut c, 1, &CtEntry::new(t).timeout(5).mark(0x105).zone(9)).unwrap();
    assert!(f.matches(&CtEntryView::parse(&first(&c)).unwrap()));
    c.clear();
    request::create(&mut c, 1, &CtEntry::new(t).timeout(5).mark(0x105).zone(8)).unwrap();
    assert!(!f.matches(&CtEntryView::parse(&first(&c)).unwrap()));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), ty in 0u8..8) {
        let mut b = MessageBuilder::new();
        b.begin(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, ty), 0, 0);
        b.raw(&bytes);
        b.finish().unwrap();
        let m = first(&b);
        if let Ok(v) = CtEntryView::parse(&m) {
            let _ = entry_text(&v).to_string();
            let _ = serde_json::to_string(&entry_json(&v));
            let _ = v.to_owned();
        }
        let _ = nlkit_conntrack::GlobalStats::parse(&m);
        let _ = nlkit_conntrack::CpuStats::parse(&m);
    }
}
