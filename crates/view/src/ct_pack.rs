//! Compact storage of conntrack messages.
//!
//! A ctnetlink message starts with its two tuple nests (`CTA_TUPLE_ORIG`, `CTA_TUPLE_REPLY`,
//! about 104 bytes for IPv4 TCP/UDP out of about 200), and the connection table already holds
//! both tuples as its keys. [`pack`] drops the nests when re-encoding the table's tuples gives
//! back exactly the kernel's bytes — checked byte for byte on every pack, so a kernel that
//! encodes differently (another attribute order, no `NLA_F_NESTED`, a protocol without ports,
//! a zone) simply keeps its message whole. [`unpack_into`] puts the nests back, so what is
//! served is always the kernel's message as it arrived.

use nlkit_table::ConnKey;
use nlkit_wire::consts::*;
use nlkit_wire::NLMSG_HDRLEN;

/// Header plus `nfgenmsg`: the part of a ctnetlink message before its attributes.
pub const BODY: usize = NLMSG_HDRLEN + 4;

/// Protocols whose tuple carries `CTA_PROTO_SRC_PORT` and `CTA_PROTO_DST_PORT`.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136) // TCP, UDP, DCCP, SCTP, UDP-Lite
}

/// An attribute header (`struct nlattr`): 4 bytes.
const ATTR: usize = 4;
/// `CTA_TUPLE_PROTO` with `CTA_PROTO_NUM` (u8), `CTA_PROTO_SRC_PORT` and `CTA_PROTO_DST_PORT`
/// (be16), each padded to 8.
const PROTO_NEST: usize = ATTR + 3 * 8;
/// Most bytes both tuple nests take (IPv6 addresses).
const NESTS_MAX: usize = 2 * (ATTR + ATTR + 2 * (ATTR + 16) + PROTO_NEST);

/// Bytes of an address attribute (`CTA_IP_V4_*`: 8, `CTA_IP_V6_*`: 20).
fn addr_attr(a: &std::net::IpAddr) -> usize {
    if a.is_ipv6() {
        ATTR + 16
    } else {
        ATTR + 4
    }
}

/// Bytes of `t`'s `CTA_TUPLE_IP` nest.
fn ip_nest(t: &ConnKey) -> usize {
    ATTR + addr_attr(&t.src) + addr_attr(&t.dst)
}

/// Bytes of both tuple nests as the kernel writes them, or `None` when either tuple is not of
/// the kind this module re-encodes (a port-carrying protocol in zone 0).
fn nests_len(orig: &ConnKey, reply: &ConnKey) -> Option<usize> {
    let encodable = |t: &ConnKey| t.zone == 0 && has_ports(t.proto);
    (encodable(orig) && encodable(reply))
        .then(|| 2 * (ATTR + PROTO_NEST) + ip_nest(orig) + ip_nest(reply))
}

/// Writes both tuple nests into `dst`, which is exactly [`nests_len`] bytes long: the bytes
/// `ctnetlink_dump_tuples` writes for a port-carrying protocol in zone 0 (every nest with
/// `NLA_F_NESTED`, every attribute padded to 4 with zeros and counted in its nest's length).
///
/// The one encoder of the tuple nests: [`pack`] drops the kernel's bytes only when these are
/// equal to them, so [`unpack_into`] writing these gives back exactly the kernel's message.
/// Allocation-free, with no shared state.
fn write_nests(orig: &ConnKey, reply: &ConnKey, dst: &mut [u8]) {
    let n = write_tuple(CTA_TUPLE_ORIG, orig, dst);
    write_tuple(CTA_TUPLE_REPLY, reply, &mut dst[n..]);
}

/// Writes `t` as the nest `ty` at the start of `dst`; returns its length.
fn write_tuple(ty: u16, t: &ConnKey, dst: &mut [u8]) -> usize {
    let ip = ip_nest(t);
    let len = ATTR + ip + PROTO_NEST;
    let dst = &mut dst[..len];
    let mut at = attr_header(dst, 0, len, ty | NLA_F_NESTED);
    at = attr_header(dst, at, ip, CTA_TUPLE_IP | NLA_F_NESTED);
    at = addr(dst, at, &t.src, CTA_IP_V4_SRC, CTA_IP_V6_SRC);
    at = addr(dst, at, &t.dst, CTA_IP_V4_DST, CTA_IP_V6_DST);
    at = attr_header(dst, at, PROTO_NEST, CTA_TUPLE_PROTO | NLA_F_NESTED);
    // Each value padded to 4 bytes with zeros.
    at = attr_header(dst, at, ATTR + 1, CTA_PROTO_NUM);
    dst[at..at + 4].copy_from_slice(&[t.proto, 0, 0, 0]);
    at = attr_header(dst, at + 4, ATTR + 2, CTA_PROTO_SRC_PORT);
    let [a, b] = t.src_port.to_be_bytes();
    dst[at..at + 4].copy_from_slice(&[a, b, 0, 0]);
    at = attr_header(dst, at + 4, ATTR + 2, CTA_PROTO_DST_PORT);
    let [a, b] = t.dst_port.to_be_bytes();
    dst[at..at + 4].copy_from_slice(&[a, b, 0, 0]);
    debug_assert_eq!(at + 4, len);
    len
}

/// Writes an attribute header (`nla_len`, `nla_type`, native-endian) at `at`; returns where
/// its payload starts.
#[inline]
fn attr_header(dst: &mut [u8], at: usize, len: usize, ty: u16) -> usize {
    let mut h = [0u8; ATTR];
    h[..2].copy_from_slice(&(len as u16).to_ne_bytes());
    h[2..].copy_from_slice(&ty.to_ne_bytes());
    dst[at..at + ATTR].copy_from_slice(&h);
    at + ATTR
}

/// Writes an address attribute (`v4` or `v6` by the address's family) at `at`; returns its
/// end.
#[inline]
fn addr(dst: &mut [u8], at: usize, a: &std::net::IpAddr, v4: u16, v6: u16) -> usize {
    match a {
        std::net::IpAddr::V4(a) => {
            let at = attr_header(dst, at, ATTR + 4, v4);
            dst[at..at + 4].copy_from_slice(&a.octets());
            at + 4
        }
        std::net::IpAddr::V6(a) => {
            let at = attr_header(dst, at, ATTR + 16, v6);
            dst[at..at + 16].copy_from_slice(&a.octets());
            at + 16
        }
    }
}

/// In a `dropped` count: the header and `nfgenmsg` were dropped too.
const HEAD: u16 = 1 << 15;

/// The normalised header and `nfgenmsg` the kernel writes before a conntrack entry of
/// `len` bytes whose tuples are of `t`'s family (`IPCTNL_MSG_CT_NEW`, no flags, sequence and
/// port id 0, version 0, resource id 0).
fn canonical_head(len: usize, t: &ConnKey) -> [u8; BODY] {
    let mut h = [0u8; BODY];
    // nlmsghdr: len, type, flags (0), seq (0), pid (0); then nfgenmsg: family, version
    // (NFNETLINK_V0 = 0), res_id (0).
    h[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    h[4..6].copy_from_slice(&nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW).to_ne_bytes());
    h[NLMSG_HDRLEN] = if t.src.is_ipv6() { AF_INET6 } else { AF_INET };
    h[NLMSG_HDRLEN + 1] = NFNETLINK_V0;
    h
}

/// The stored form of the normalised message `msg` of the connection `orig`/`reply`, and
/// what was dropped from it: the tuple bytes (0: stored whole), with the high bit (`HEAD`)
/// set when the header and `nfgenmsg` were the canonical ones and went too.
///
/// The tuple nests are dropped only when the module's one encoder of them (the one
/// [`unpack_into`] uses) gives exactly the message's bytes, so unpacking always restores the
/// message byte for byte.
///
/// ```
/// use nlkit_table::ConnKey;
/// use nlkit_view::ct_pack::{pack, unpack_into};
/// let orig = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// let msg = vec![0u8; 40]; // not a conntrack message of these tuples: kept whole
/// let (stored, dropped) = pack(msg.clone(), &orig, &orig.reverse());
/// assert_eq!(dropped, 0);
/// let mut out = Vec::new();
/// unpack_into(&stored, dropped, &orig, &orig.reverse(), &mut out);
/// assert_eq!(out, msg);
/// ```
pub fn pack(msg: Vec<u8>, orig: &ConnKey, reply: &ConnKey) -> (Box<[u8]>, u16) {
    if msg.len() <= BODY {
        return (msg.into_boxed_slice(), 0);
    }
    let Some(n) = nests_len(orig, reply) else {
        return (msg.into_boxed_slice(), 0);
    };
    let end = BODY + n;
    let mut nests = [0u8; NESTS_MAX];
    write_nests(orig, reply, &mut nests[..n]);
    if msg.get(BODY..end) != Some(&nests[..n]) {
        return (msg.into_boxed_slice(), 0);
    }
    let head = msg[..BODY] == canonical_head(msg.len(), orig);
    let mut stored = Vec::with_capacity(msg.len() - n);
    if !head {
        stored.extend_from_slice(&msg[..BODY]);
    }
    stored.extend_from_slice(&msg[end..]);
    let dropped = n as u16 | if head { HEAD } else { 0 };
    (stored.into_boxed_slice(), dropped)
}

/// Writes the tuple nests into `dst` (`tuples` bytes). They cannot be of another length: the
/// same tuples encoded to `tuples` bytes when the message was packed (tuples are immutable for
/// a connection's life). A record that lies (any bytes may be in the mapping) still gets a
/// well-formed buffer of the right size: zeros.
fn restore_nests(orig: &ConnKey, reply: &ConnKey, dst: &mut [u8]) {
    if nests_len(orig, reply) == Some(dst.len()) {
        write_nests(orig, reply, dst);
    } else {
        dst.fill(0);
    }
}

/// Appends the full message stored as `stored` (see [`pack`]) to `out`.
///
/// Allocation-free apart from growing `out` (once).
pub fn unpack_into(
    stored: &[u8],
    dropped: u16,
    orig: &ConnKey,
    reply: &ConnKey,
    out: &mut Vec<u8>,
) {
    let base = out.len();
    out.extend_from_slice(stored);
    unpack_in_place(out, base, dropped, orig, reply);
}

/// Turns the stored record at `buf[base..]` (see [`pack`]) into the full message, in place:
/// what [`unpack_into`] appends, without a copy of the record elsewhere first (a lookup
/// reads the record straight into the caller's buffer, this puts the dropped parts back
/// around it). Any bytes give some message, never a panic.
///
/// ```
/// use nlkit_table::ConnKey;
/// use nlkit_view::ct_pack::{pack, unpack_in_place};
/// let orig = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// let (stored, dropped) = pack(vec![1; 40], &orig, &orig.reverse());
/// let mut buf = b"before".to_vec();
/// buf.extend_from_slice(&stored);
/// unpack_in_place(&mut buf, 6, dropped, &orig, &orig.reverse());
/// assert_eq!(&buf[6..], &[1; 40][..]);
/// ```
pub fn unpack_in_place(
    buf: &mut Vec<u8>,
    base: usize,
    dropped: u16,
    orig: &ConnKey,
    reply: &ConnKey,
) {
    let tuples = usize::from(dropped & !HEAD);
    let Some(stored) = buf.len().checked_sub(base) else {
        return;
    };
    // Where the stored bytes that follow the nests start, and the gap to open before them.
    let (from, gap) = if dropped & HEAD != 0 {
        (base, BODY + tuples)
    } else if tuples == 0 || stored < BODY {
        return;
    } else {
        (base + BODY, tuples)
    };
    let end = buf.len();
    buf.resize(end + gap, 0);
    buf.copy_within(from..end, from + gap);
    if dropped & HEAD != 0 {
        let head = canonical_head(BODY + tuples + stored, orig);
        buf[base..base + BODY].copy_from_slice(&head);
    }
    let at = from + gap - tuples;
    restore_nests(orig, reply, &mut buf[at..at + tuples]);
}

/// The room [`unpack_placed`] wants before a connection's stored record: what [`pack`] drops
/// from a kernel message whose tuples are `tuple` (either one of them) and its reverse — the
/// canonical header and both tuple nests — or 0 when it would keep such a message whole.
///
/// ```
/// use nlkit_table::ConnKey;
/// let t = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// assert_eq!(nlkit_view::ct_pack::room_for(&t), nlkit_view::ct_pack::BODY + 104);
/// ```
pub fn room_for(tuple: &ConnKey) -> usize {
    nests_len(tuple, tuple).map_or(0, |n| BODY + n)
}

/// Turns the stored record at `buf[base + room..]` into the full message at `buf[base..]`,
/// where `buf[base..base + room]` is room the caller opened before reading the record (any
/// bytes): when the record's header and tuples were dropped and take exactly `room` bytes
/// ([`room_for`] of the tuple looked up: the usual case), they are written there and the
/// record's bytes are neither read nor moved (a lookup that copied them out of the mapping
/// need not wait for them); otherwise the record is moved and unpacked as by
/// [`unpack_in_place`]. Any bytes give some message, never a panic.
///
/// ```
/// use nlkit_table::ConnKey;
/// use nlkit_view::ct_pack::{pack, room_for, unpack_placed};
/// let orig = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// let (stored, dropped) = pack(vec![1; 40], &orig, &orig.reverse());
/// let room = room_for(&orig);
/// let mut buf = vec![0; room];
/// buf.extend_from_slice(&stored);
/// unpack_placed(&mut buf, 0, room, dropped, &orig, &orig.reverse());
/// assert_eq!(buf, [1; 40]);
/// ```
pub fn unpack_placed(
    buf: &mut Vec<u8>,
    base: usize,
    room: usize,
    dropped: u16,
    orig: &ConnKey,
    reply: &ConnKey,
) {
    let Some(stored) = buf.len().checked_sub(base.saturating_add(room)) else {
        // Nothing past the room: no record; keep what the room holds as the "record".
        unpack_in_place(buf, base, dropped, orig, reply);
        return;
    };
    let tuples = usize::from(dropped & !HEAD);
    if dropped & HEAD != 0 && BODY + tuples == room {
        let head = canonical_head(BODY + tuples + stored, orig);
        buf[base..base + BODY].copy_from_slice(&head);
        restore_nests(orig, reply, &mut buf[base + BODY..base + room]);
        return;
    }
    let end = buf.len();
    buf.copy_within(base + room..end, base);
    buf.truncate(base + stored);
    unpack_in_place(buf, base, dropped, orig, reply);
}

/// The attributes of a stored record (see [`pack`]) that follow the tuple nests — all of
/// them when the message was stored whole — without unpacking it: for filters on other
/// attributes (`CTA_MARK`). Any bytes give some slice, never a panic.
///
/// ```
/// assert!(nlkit_view::ct_pack::stored_attrs(&[1, 2, 3], 0).is_empty());
/// ```
pub fn stored_attrs(stored: &[u8], dropped: u16) -> &[u8] {
    if dropped & HEAD != 0 {
        stored
    } else {
        stored.get(BODY..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::{MessageBuilder, NfGenMsg};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// A message built the way the kernel lays it out, attribute by attribute, with the wire
    /// crate's builder (independent of the encoder under test).
    fn kernel_like(orig: &ConnKey, reply: &ConnKey, nested_flag: bool) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            0,
            0,
        );
        b.header(&NfGenMsg {
            family: if orig.src.is_ipv6() {
                AF_INET6
            } else {
                AF_INET
            },
            version: NFNETLINK_V0,
            res_id: 0,
        });
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
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            0,
            0,
        );
        b.header(&NfGenMsg {
            family: if t.src.is_ipv6() { AF_INET6 } else { AF_INET },
            version: NFNETLINK_V0,
            res_id: 0,
        });
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
                prop_assert!(o.zone != 0 || r.zone != 0 || !has_ports(o.proto) || !has_ports(r.proto));
            }
            prop_assert_eq!(canonical_head(len, &o).to_vec(), reference_head(len, &o));
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

    #[test]
    fn in_place_with_a_base_past_the_end_does_nothing() {
        let (o, r) = tuples(false, 6);
        let mut buf = vec![1, 2, 3];
        unpack_in_place(&mut buf, 7, HEAD | 104, &o, &r);
        assert_eq!(buf, [1, 2, 3]);
    }
}
