//! `ct_pack`'s tests: the encoder against the wire crate's builder, and pack/unpack round trips.

use super::*;
use nlkit_conntrack::request::begin;
use nlkit_wire::MessageBuilder;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A message built the way the kernel lays it out, attribute by attribute, with the wire
/// crate's builder (independent of the encoder under test).
fn kernel_like(orig: &ConnKey, reply: &ConnKey, nested_flag: bool) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    let family = if orig.src.is_ipv6() {
        AF_INET6
    } else {
        AF_INET
    };
    begin(&mut b, IPCTNL_MSG_CT_NEW, 0, 0, family);
    let f = if nested_flag { NLA_F_NESTED } else { 0 };
    for (ty, t) in [(CTA_TUPLE_ORIG, orig), (CTA_TUPLE_REPLY, reply)] {
        let n = b.nest_begin_flags(ty | f);
        let ip = b.nest_begin_flags(CTA_TUPLE_IP | f);
        let (s, d) = if t.src.is_ipv6() {
            (CTA_IP_V6_SRC, CTA_IP_V6_DST)
        } else {
            (CTA_IP_V4_SRC, CTA_IP_V4_DST)
        };
        b.attr_ip(s, t.src);
        b.attr_ip(d, t.dst);
        b.nest_end(ip);
        let p = b.nest_begin_flags(CTA_TUPLE_PROTO | f);
        b.attr_u8(CTA_PROTO_NUM, t.proto);
        b.attr_be16(CTA_PROTO_SRC_PORT, t.src_port);
        b.attr_be16(CTA_PROTO_DST_PORT, t.dst_port);
        b.nest_end(p);
        b.nest_end(n);
    }
    b.attr_be32(CTA_STATUS, 8);
    b.attr_be32(CTA_TIMEOUT, 120);
    b.attr_be32(CTA_MARK, 7);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn tuples(v6: bool, proto: u8) -> (ConnKey, ConnKey) {
    let (a, c): (IpAddr, IpAddr) = if v6 {
        ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
    } else {
        ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
    };
    let o = ConnKey::new(a, 1234, c, 80, proto);
    (o, o.reverse())
}

#[test]
fn packs_and_restores_ipv4_and_ipv6() {
    for v6 in [false, true] {
        for proto in [6, 17] {
            let (o, r) = tuples(v6, proto);
            let msg = kernel_like(&o, &r, true);
            let (stored, dropped) = pack(msg.clone(), &o, &r);
            assert!(dropped & HEAD != 0, "v6={v6} proto={proto}");
            let tuples = usize::from(dropped & !HEAD);
            assert_eq!(stored.len() + tuples + BODY, msg.len());
            let mut out = vec![0xaa];
            unpack_into(&stored, dropped, &o, &r, &mut out);
            assert_eq!(out[1..], msg[..]);
        }
    }
}

#[test]
fn anything_else_is_kept_whole() {
    let (o, r) = tuples(false, 6);
    // Nests without NLA_F_NESTED: the re-encoding differs, so nothing is dropped.
    let msg = kernel_like(&o, &r, false);
    assert_eq!(
        pack(msg.clone(), &o, &r),
        (msg.clone().into_boxed_slice(), 0)
    );
    // Tuples that are not the message's.
    let (o2, r2) = tuples(true, 6);
    let msg = kernel_like(&o, &r, true);
    assert_eq!(pack(msg.clone(), &o2, &r2).1, 0);
    // A zone or a protocol without ports.
    assert_eq!(pack(msg.clone(), &o.with_zone(3), &r).1, 0);
    let (o3, r3) = tuples(false, 1);
    assert_eq!(pack(kernel_like(&o3, &r3, true), &o3, &r3).1, 0);
    // A header that is not the canonical one stays; the tuples still go.
    let mut odd = msg.clone();
    odd[NLMSG_HDRLEN] = AF_UNSPEC;
    let (stored, dropped) = pack(odd.clone(), &o, &r);
    assert!(dropped != 0 && dropped & HEAD == 0);
    let mut out = Vec::new();
    unpack_into(&stored, dropped, &o, &r, &mut out);
    assert_eq!(out, odd);
    // Too short to hold attributes.
    assert_eq!(pack(msg[..BODY].to_vec(), &o, &r).1, 0);
    let mut out = Vec::new();
    unpack_into(&msg, 0, &o, &r, &mut out);
    assert_eq!(out, msg);
}

/// Both nests with `nlkit-conntrack`'s tuple encoder (the encoder `pack` used before it
/// had its own): the direct encoder must agree with it byte for byte.
fn reference_nests(orig: &ConnKey, reply: &ConnKey) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    for (ty, t) in [(CTA_TUPLE_ORIG, orig), (CTA_TUPLE_REPLY, reply)] {
        nlkit_conntrack::Tuple::with_ports(t.proto, t.src, t.src_port, t.dst, t.dst_port)
            .write(&mut b, ty);
    }
    b.as_bytes().to_vec()
}

/// The header the wire crate writes for a canonical entry.
fn reference_head(len: usize, t: &ConnKey) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    let family = if t.src.is_ipv6() { AF_INET6 } else { AF_INET };
    begin(&mut b, IPCTNL_MSG_CT_NEW, 0, 0, family);
    let mut h = b.as_bytes().to_vec();
    h[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    h
}

fn addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<u128>()
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .boxed()
    } else {
        any::<u32>()
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .boxed()
    }
}

/// TCP, UDP, SCTP, DCCP, UDP-Lite (ports), ICMP, ICMPv6, GRE, or any number.
fn proto() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(6u8),
        Just(17),
        Just(132),
        Just(33),
        Just(136),
        Just(1),
        Just(58),
        Just(47),
        any::<u8>(),
    ]
}

/// A tuple: one family for both addresses (as the kernel has), sometimes a zone.
fn conn_key() -> impl Strategy<Value = ConnKey> {
    any::<bool>()
        .prop_flat_map(|v6| {
            (
                addr(v6),
                any::<u16>(),
                addr(v6),
                any::<u16>(),
                proto(),
                prop_oneof![3 => Just(0u16), 1 => any::<u16>()],
            )
        })
        .prop_map(|(s, sp, d, dp, p, z)| ConnKey::new(s, sp, d, dp, p).with_zone(z))
}

/// A connection: the reply tuple the reverse of the original (no NAT) or another one.
fn connection() -> impl Strategy<Value = (ConnKey, ConnKey)> {
    (conn_key(), conn_key(), any::<bool>())
        .prop_map(|(o, other, nat)| (o, if nat { other } else { o.reverse() }))
}

/// A message of the connection: the kernel's layout (with or without `NLA_F_NESTED`),
/// random attributes after the tuples, sometimes a header that is not the canonical one,
/// or random bytes altogether.
fn message(o: ConnKey, r: ConnKey) -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..8,
        proptest::collection::vec(any::<u8>(), 0..96),
        any::<u8>(),
    )
        .prop_map(move |(kind, tail, byte)| match kind {
            0 => tail,
            1 => {
                let mut m = kernel_like(&o, &r, false);
                m.extend_from_slice(&tail);
                m
            }
            2 => {
                let mut m = kernel_like(&o, &r, true);
                m[NLMSG_HDRLEN + usize::from(byte) % 4] ^= 1 | byte;
                m
            }
            _ => {
                let mut m = kernel_like(&o, &r, true);
                m.extend_from_slice(&tail);
                let len = m.len() as u32;
                m[..4].copy_from_slice(&len.to_ne_bytes());
                m
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The direct encoder and header writer give the bytes of the wire crate's builder and
    /// `nlkit-conntrack`'s tuple encoder, for every tuple they apply to.
    #[test]
    fn direct_encoder_matches_the_builder((o, r) in connection(), len in 0usize..4096) {
        if let Some(n) = nests_len(&o, &r) {
            let mut nests = vec![0xaau8; n];
            write_nests(&o, &r, &mut nests);
            prop_assert_eq!(nests, reference_nests(&o, &r));
        } else {
            prop_assert!(o.zone != 0 || r.zone != 0 || !has_ports(o.proto) || !has_ports(r.proto)
                || o.src.is_ipv6() != o.dst.is_ipv6() || r.src.is_ipv6() != r.dst.is_ipv6());
        }
        prop_assert_eq!(canonical_head(len, &o).to_vec(), reference_head(len, &o));
        // The IPv4 template path and the general one write the same header and nests.
        if let Some(n) = nests_len(&o, &r) {
            let mut fast = vec![0x55u8; BODY + n];
            write_parts(Some(len), &o, &r, &mut fast);
            let mut general = vec![0xaau8; BODY + n];
            let mut u = Units::new(&mut general);
            u.head(len, &o);
            u.tuple(CTA_TUPLE_ORIG, &o);
            u.tuple(CTA_TUPLE_REPLY, &r);
            prop_assert_eq!(u.finish(), BODY + n);
            prop_assert_eq!(&fast, &general);
            let mut expect = reference_head(len, &o);
            expect.extend_from_slice(&reference_nests(&o, &r));
            prop_assert_eq!(fast, expect);
        }
    }

    /// Whatever the message, unpacking what `pack` stored gives it back exactly (appended
    /// or in place, after bytes already in the buffer); a kernel-laid-out message of a
    /// port-carrying protocol in zone 0 loses its tuples (and its canonical header).
    #[test]
    fn pack_unpack_round_trips(
        ((o, r), msg) in connection().prop_flat_map(|(o, r)| (Just((o, r)), message(o, r))),
        prefix in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let (stored, dropped) = pack(msg.clone(), &o, &r);
        let mut out = prefix.clone();
        unpack_into(&stored, dropped, &o, &r, &mut out);
        prop_assert_eq!(&out[prefix.len()..], &msg[..]);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        let mut buf = prefix.clone();
        buf.extend_from_slice(&stored);
        unpack_in_place(&mut buf, prefix.len(), dropped, &o, &r);
        prop_assert_eq!(&buf, &out);
        // With room opened before the record: the lookup's room, or any other.
        for room in [room_for(&o), room_for(&r), 0, 7, BODY + 104, BODY + 152] {
            let mut buf = prefix.clone();
            buf.resize(prefix.len() + room, 0x5a);
            buf.extend_from_slice(&stored);
            unpack_placed(&mut buf, prefix.len(), room, dropped, &o, &r);
            prop_assert_eq!(&buf, &out, "room {}", room);
        }
        let kernel = msg.len() > BODY
            && msg.get(BODY..).is_some_and(|m| {
                nests_len(&o, &r).is_some_and(|n| m.starts_with(&reference_nests(&o, &r)[..n]))
            });
        prop_assert_eq!(dropped != 0, kernel);
        prop_assert_eq!(stored.len() + usize::from(dropped & !HEAD)
            + if dropped & HEAD != 0 { BODY } else { 0 }, msg.len());
    }

    /// Any record bytes and any `dropped` word (the mapping is untrusted) unpack to some
    /// message of the length the word says, never a panic.
    #[test]
    fn any_record_unpacks(
        stored in proptest::collection::vec(any::<u8>(), 0..256),
        dropped in any::<u16>(),
        (o, r) in connection(),
    ) {
        let mut out = Vec::new();
        unpack_into(&stored, dropped, &o, &r, &mut out);
        let tuples = usize::from(dropped & !HEAD);
        let want = if dropped & HEAD != 0 {
            BODY + tuples + stored.len()
        } else if tuples == 0 || stored.len() < BODY {
            stored.len()
        } else {
            tuples + stored.len()
        };
        prop_assert_eq!(out.len(), want);
        for room in [0, 3, BODY + 104, 300] {
            let mut buf = vec![9u8; room];
            buf.extend_from_slice(&stored);
            unpack_placed(&mut buf, 0, room, dropped, &o, &r);
            prop_assert_eq!(&buf, &out);
            // A room longer than the buffer: the bytes there are the record.
            let mut short = stored.clone();
            unpack_placed(&mut short, 0, stored.len() + 1 + room, dropped, &o, &r);
            prop_assert_eq!(&short, &out);
        }
    }
}

/// A tuple whose two addresses are of different families (no kernel has one) is kept whole.
#[test]
fn mixed_family_tuples_are_kept_whole() {
    let o = ConnKey::new(
        "10.0.0.1".parse().unwrap(),
        1,
        "fd00::1".parse().unwrap(),
        2,
        6,
    );
    let msg = kernel_like(&o, &o.reverse(), true);
    assert_eq!(pack(msg.clone(), &o, &o.reverse()).1, 0);
    assert_eq!(room_for(&o), 0);
}

#[test]
fn in_place_with_a_base_past_the_end_does_nothing() {
    let (o, r) = tuples(false, 6);
    let mut buf = vec![1, 2, 3];
    unpack_in_place(&mut buf, 7, HEAD | 104, &o, &r);
    assert_eq!(buf, [1, 2, 3]);
}
