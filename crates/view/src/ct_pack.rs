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
mod tests;
