//! Property tests: builder → parser round trips on random attribute trees and batches, and
//! arbitrary (or corrupted) bytes never panic any parser.

use nlkit_wire::consts::*;
use nlkit_wire::fuzzing::parse_all;
use nlkit_wire::{
    Attrs, FamilyHeader, GenlMsgHdr, IfAddrMsg, IfInfoMsg, MessageBuilder, Messages, NdMsg,
    NfGenMsg, RtMsg,
};
use proptest::prelude::*;

/// A random attribute tree. Leaves keep their raw type (with or without
/// `NLA_F_NET_BYTEORDER`, never `NLA_F_NESTED`); nests are written with `nest_begin`, which sets
/// `NLA_F_NESTED`, and so are told apart from leaves when parsed back.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Leaf { raw_ty: u16, payload: Vec<u8> },
    Nest { ty: u16, children: Vec<Node> },
}

fn leaf() -> impl Strategy<Value = Node> {
    let ty =
        (0..=NLA_TYPE_MASK, any::<bool>())
            .prop_map(|(t, be)| if be { t | NLA_F_NET_BYTEORDER } else { t });
    // Lengths 0..=40 cover empty, odd and every padding remainder.
    (ty, prop::collection::vec(any::<u8>(), 0..=40))
        .prop_map(|(raw_ty, payload)| Node::Leaf { raw_ty, payload })
}

/// Trees nested up to depth 4 (a nest inside a nest inside a nest inside a nest).
fn tree() -> impl Strategy<Value = Vec<Node>> {
    let node = leaf().prop_recursive(4, 48, 6, |inner| {
        (0..=NLA_TYPE_MASK, prop::collection::vec(inner, 0..6))
            .prop_map(|(ty, children)| Node::Nest { ty, children })
    });
    prop::collection::vec(node, 0..8)
}

fn write(b: &mut MessageBuilder, nodes: &[Node]) {
    for n in nodes {
        match n {
            Node::Leaf { raw_ty, payload } => {
                b.attr_bytes(*raw_ty, payload);
            }
            Node::Nest { ty, children } => {
                let nest = b.nest_begin(*ty);
                write(b, children);
                b.nest_end(nest);
            }
        }
    }
}

fn read(attrs: Attrs<'_>) -> Vec<Node> {
    attrs
        .map(|a| {
            let a = a.expect("a built attribute does not parse");
            if a.is_nested() {
                Node::Nest {
                    ty: a.ty(),
                    children: read(a.nested()),
                }
            } else {
                Node::Leaf {
                    raw_ty: a.raw_ty(),
                    payload: a.payload().to_vec(),
                }
            }
        })
        .collect()
}

fn count(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Leaf { .. } => 1,
            Node::Nest { children, .. } => 1 + count(children),
        })
        .sum()
}

/// A family header of a random kind with random fields (or none).
#[derive(Debug, Clone, PartialEq)]
enum Header {
    None,
    Rt(RtMsg),
    IfInfo(IfInfoMsg),
    IfAddr(IfAddrMsg),
    Nd(NdMsg),
    NfGen(NfGenMsg),
    Genl(GenlMsgHdr),
}

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        Just(Header::None),
        (any::<[u8; 8]>(), any::<u32>()).prop_map(|(b, flags)| Header::Rt(RtMsg {
            family: b[0],
            dst_len: b[1],
            src_len: b[2],
            tos: b[3],
            table: b[4],
            protocol: b[5],
            scope: b[6],
            ty: b[7],
            flags,
        })),
        (any::<(u8, u16, i32, u32, u32)>()).prop_map(|(family, ty, index, flags, change)| {
            Header::IfInfo(IfInfoMsg {
                family,
                ty,
                index,
                flags,
                change,
            })
        }),
        (any::<[u8; 4]>(), any::<u32>()).prop_map(|(b, index)| Header::IfAddr(IfAddrMsg {
            family: b[0],
            prefixlen: b[1],
            flags: b[2],
            scope: b[3],
            index,
        })),
        (any::<(u8, i32, u16, u8, u8)>()).prop_map(|(family, ifindex, state, flags, ty)| {
            Header::Nd(NdMsg {
                family,
                ifindex,
                state,
                flags,
                ty,
            })
        }),
        (any::<(u8, u8, u16)>()).prop_map(|(family, version, res_id)| {
            Header::NfGen(NfGenMsg {
                family,
                version,
                res_id,
            })
        }),
        (any::<(u8, u8)>()).prop_map(|(cmd, version)| Header::Genl(GenlMsgHdr { cmd, version })),
    ]
}

#[derive(Debug, Clone)]
struct Msg {
    ty: u16,
    flags: u16,
    seq: u32,
    header: Header,
    attrs: Vec<Node>,
}

fn msg() -> impl Strategy<Value = Msg> {
    (any::<u16>(), any::<u16>(), any::<u32>(), header(), tree()).prop_map(
        |(ty, flags, seq, header, attrs)| Msg {
            ty,
            flags,
            seq,
            header,
            attrs,
        },
    )
}

fn build(b: &mut MessageBuilder, m: &Msg) {
    b.begin(m.ty, m.flags, m.seq);
    match &m.header {
        Header::None => {}
        Header::Rt(h) => {
            b.header(h);
        }
        Header::IfInfo(h) => {
            b.header(h);
        }
        Header::IfAddr(h) => {
            b.header(h);
        }
        Header::Nd(h) => {
            b.header(h);
        }
        Header::NfGen(h) => {
            b.header(h);
        }
        Header::Genl(h) => {
            b.header(h);
        }
    }
    write(b, &m.attrs);
    b.finish().expect("building a valid tree failed");
}

fn check_header<H: FamilyHeader + PartialEq + std::fmt::Debug>(
    m: &nlkit_wire::Message<'_>,
    want: &H,
) -> Vec<Node> {
    let (got, attrs) = m.family_header::<H>().expect("header does not parse");
    assert_eq!(&got, want);
    read(attrs)
}

/// Parses one message back and checks it against what was built.
fn check(m: &nlkit_wire::Message<'_>, want: &Msg) {
    assert_eq!(
        (m.ty(), m.flags(), m.seq(), m.pid()),
        (want.ty, want.flags, want.seq, 0)
    );
    assert_eq!(m.len() % 4, 0, "built messages are 4-byte aligned");
    let attrs = match &want.header {
        Header::None => read(m.attrs(0)),
        Header::Rt(h) => check_header(m, h),
        Header::IfInfo(h) => check_header(m, h),
        Header::IfAddr(h) => check_header(m, h),
        Header::Nd(h) => check_header(m, h),
        Header::NfGen(h) => check_header(m, h),
        Header::Genl(h) => check_header(m, h),
    };
    assert_eq!(attrs, want.attrs);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn attribute_tree_round_trips(m in msg()) {
        let mut b = MessageBuilder::new();
        build(&mut b, &m);
        let bytes = b.as_bytes();
        let mut it = Messages::new(bytes);
        let parsed = it.next().unwrap().unwrap();
        prop_assert!(it.next().is_none());
        prop_assert_eq!(parsed.len(), bytes.len());
        check(&parsed, &m);
        if m.header == Header::None {
            prop_assert_eq!(parsed.attrs(0).validate(), Ok(count(&m.attrs)));
        }
    }

    #[test]
    fn batch_round_trips(msgs in prop::collection::vec(msg(), 1..6)) {
        let mut b = MessageBuilder::new();
        // Reuse: a first, discarded batch must leave nothing behind after `clear`.
        build(&mut b, &msgs[0]);
        b.clear();
        for m in &msgs {
            build(&mut b, m);
        }
        prop_assert_eq!(b.message_count(), msgs.len());
        let parsed: Vec<_> = Messages::new(b.as_bytes()).map(Result::unwrap).collect();
        prop_assert_eq!(parsed.len(), msgs.len());
        let mut total = 0;
        for (p, m) in parsed.iter().zip(&msgs) {
            check(p, m);
            total += p.len();
        }
        prop_assert_eq!(total, b.len());
    }

    #[test]
    fn stamp_seq_numbers_every_message(
        msgs in prop::collection::vec(msg(), 0..6),
        first in any::<u32>(),
    ) {
        let mut b = MessageBuilder::new();
        for m in &msgs {
            build(&mut b, m);
        }
        let next = b.stamp_seq(first);
        prop_assert_eq!(next, first.wrapping_add(msgs.len() as u32));
        let parsed: Vec<_> = Messages::new(b.as_bytes()).map(Result::unwrap).collect();
        prop_assert_eq!(parsed.len(), msgs.len());
        for (i, (p, m)) in parsed.iter().zip(&msgs).enumerate() {
            prop_assert_eq!(p.seq(), first.wrapping_add(i as u32));
            // Nothing but the sequence number changed.
            let mut want = m.clone();
            want.seq = p.seq();
            check(p, &want);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let r = parse_all(&bytes);
        prop_assert!(r.messages * 16 <= bytes.len());
    }

    #[test]
    fn random_control_messages_never_panic(
        ty in prop_oneof![Just(NLMSG_ERROR), Just(NLMSG_DONE)],
        flags in any::<u16>(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        // Random bytes rarely spell a well-framed NLMSG_ERROR or NLMSG_DONE; these always are,
        // so the error, echo and ext-ack decoding sees arbitrary content.
        let mut bytes = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
        bytes.extend_from_slice(&ty.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&payload);
        let r = parse_all(&bytes);
        prop_assert_eq!(r.messages, 1);
        let m = Messages::new(&bytes).next().unwrap().unwrap();
        if ty == NLMSG_ERROR {
            if let Ok(e) = nlkit_wire::ErrorMsg::parse(&m) {
                prop_assert!(e.request_payload.len() <= payload.len());
            }
        } else if let Ok(d) = nlkit_wire::DoneMsg::parse(&m) {
            prop_assert_eq!(d.interrupted, flags & NLM_F_DUMP_INTR != 0);
        }
    }

    #[test]
    fn corrupted_messages_never_panic(
        msgs in prop::collection::vec(msg(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        // Valid batches with a few bytes overwritten and the tail cut off: close enough to real
        // messages to reach deep into the parsers.
        let mut b = MessageBuilder::new();
        for m in &msgs {
            build(&mut b, m);
        }
        let mut bytes = b.as_bytes().to_vec();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let end = cut.index(bytes.len() + 1);
        parse_all(&bytes[..end]);
        parse_all(&bytes);
    }

    #[test]
    fn truncating_a_batch_gives_a_typed_error(
        msgs in prop::collection::vec(msg(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = MessageBuilder::new();
        for m in &msgs {
            build(&mut b, m);
        }
        let bytes = b.as_bytes();
        let end = cut.index(bytes.len());
        let items: Vec<_> = Messages::new(&bytes[..end]).collect();
        // Every message that ends before the cut parses; the one cut through is an error.
        let whole = items.iter().filter(|r| r.is_ok()).count();
        prop_assert!(whole < msgs.len());
        if let Some(Err(e)) = items.last() {
            let typed = matches!(
                e,
                nlkit_wire::WireError::Truncated { what: "nlmsghdr", .. }
                    | nlkit_wire::WireError::MessageLength { .. }
            );
            prop_assert!(typed, "{e:?}");
        }
    }
}
