//! Compact storage of conntrack messages.
//!
//! A ctnetlink message starts with its two tuple nests (`CTA_TUPLE_ORIG`, `CTA_TUPLE_REPLY`,
//! about 104 bytes for IPv4 TCP/UDP out of about 200), and the connection table already holds
//! both tuples as its keys. [`pack`] drops the nests when re-encoding the table's tuples gives
//! back exactly the kernel's bytes — checked byte for byte on every pack, so a kernel that
//! encodes differently (another attribute order, no `NLA_F_NESTED`, a protocol without ports,
//! a zone) simply keeps its message whole. [`unpack_into`] puts the nests back, so what is
//! served is always the kernel's message as it arrived.

use std::net::IpAddr;

use nlkit_table::ConnKey;
use nlkit_wire::consts::*;
use nlkit_wire::NLMSG_HDRLEN;

/// Header plus `nfgenmsg`: the part of a ctnetlink message before its attributes.
pub const BODY: usize = NLMSG_HDRLEN + 4;

/// Protocols whose tuple carries `CTA_PROTO_SRC_PORT` and `CTA_PROTO_DST_PORT`.
#[inline]
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
#[inline]
fn addr_attr(a: &std::net::IpAddr) -> usize {
    if a.is_ipv6() {
        ATTR + 16
    } else {
        ATTR + 4
    }
}

/// Bytes of `t`'s `CTA_TUPLE_IP` nest.
#[inline]
fn ip_nest(t: &ConnKey) -> usize {
    ATTR + addr_attr(&t.src) + addr_attr(&t.dst)
}

/// Bytes of both tuple nests as the kernel writes them, or `None` when either tuple is not of
/// the kind this module re-encodes (a port-carrying protocol in zone 0, both addresses of one
/// family: the kernel's tuples always are).
#[inline]
fn nests_len(orig: &ConnKey, reply: &ConnKey) -> Option<usize> {
    let encodable =
        |t: &ConnKey| t.zone == 0 && has_ports(t.proto) && t.src.is_ipv6() == t.dst.is_ipv6();
    (encodable(orig) && encodable(reply))
        .then(|| 2 * (ATTR + PROTO_NEST) + ip_nest(orig) + ip_nest(reply))
}

/// Writes a message's bytes four at a time, storing two 4-byte units at once: every field
/// of the parts this module writes is a whole number of 4-byte units (attribute headers, an
/// IPv4 address, an IPv6 address is four, a protocol number or port padded to 4, the
/// header's words). The general encoder (IPv6, and both families in one connection);
/// [`write_parts`] has a faster path for IPv4.
struct Units<'a> {
    dst: &'a mut [u8],
    at: usize,
    held: Option<u32>,
}

impl<'a> Units<'a> {
    fn new(dst: &'a mut [u8]) -> Self {
        Units {
            dst,
            at: 0,
            held: None,
        }
    }

    #[inline(always)]
    fn unit(&mut self, u: [u8; 4]) {
        let u = u32::from_ne_bytes(u);
        match self.held.take() {
            None => self.held = Some(u),
            Some(h) => {
                // The first unit's bytes first in memory: one 64-bit word (built as a number,
                // so that the compiler stores it at once rather than as its two halves).
                let w = if cfg!(target_endian = "little") {
                    u64::from(h) | u64::from(u) << 32
                } else {
                    u64::from(h) << 32 | u64::from(u)
                };
                self.dst[self.at..self.at + 8].copy_from_slice(&w.to_ne_bytes());
                self.at += 8;
            }
        }
    }

    /// An attribute header (`nla_len`, `nla_type`, native-endian).
    #[inline(always)]
    fn attr(&mut self, len: usize, ty: u16) {
        let [l0, l1] = (len as u16).to_ne_bytes();
        let [t0, t1] = ty.to_ne_bytes();
        self.unit([l0, l1, t0, t1]);
    }

    /// An address attribute: `v4` or `v6` by the address's family.
    #[inline(always)]
    fn addr(&mut self, a: &std::net::IpAddr, v4: u16, v6: u16) {
        match a {
            std::net::IpAddr::V4(a) => {
                self.attr(ATTR + 4, v4);
                self.unit(a.octets());
            }
            std::net::IpAddr::V6(a) => {
                self.attr(ATTR + 16, v6);
                let o = a.octets();
                for i in 0..4 {
                    self.unit([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
                }
            }
        }
    }

    /// The tuple `t` as the nest `ty`: what `ctnetlink_dump_tuples` writes for a
    /// port-carrying protocol in zone 0 (every nest with `NLA_F_NESTED`, every value padded
    /// to 4 with zeros and counted in its nest's length).
    #[inline(always)]
    fn tuple(&mut self, ty: u16, t: &ConnKey) {
        let ip = ip_nest(t);
        self.attr(ATTR + ip + PROTO_NEST, ty | NLA_F_NESTED);
        self.attr(ip, CTA_TUPLE_IP | NLA_F_NESTED);
        self.addr(&t.src, CTA_IP_V4_SRC, CTA_IP_V6_SRC);
        self.addr(&t.dst, CTA_IP_V4_DST, CTA_IP_V6_DST);
        self.attr(PROTO_NEST, CTA_TUPLE_PROTO | NLA_F_NESTED);
        self.attr(ATTR + 1, CTA_PROTO_NUM);
        self.unit([t.proto, 0, 0, 0]);
        let [a, b] = t.src_port.to_be_bytes();
        self.attr(ATTR + 2, CTA_PROTO_SRC_PORT);
        self.unit([a, b, 0, 0]);
        let [a, b] = t.dst_port.to_be_bytes();
        self.attr(ATTR + 2, CTA_PROTO_DST_PORT);
        self.unit([a, b, 0, 0]);
    }

    /// The normalised header and `nfgenmsg` the kernel writes before a conntrack entry of
    /// `len` bytes whose tuples are of `t`'s family (`IPCTNL_MSG_CT_NEW`, no flags, sequence
    /// and port id 0, version 0, resource id 0).
    #[inline(always)]
    fn head(&mut self, len: usize, t: &ConnKey) {
        // nlmsghdr: len, type, flags (0), seq (0), pid (0); then nfgenmsg: family, version
        // (NFNETLINK_V0 = 0), res_id (0).
        self.unit((len as u32).to_ne_bytes());
        let [t0, t1] = nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW).to_ne_bytes();
        self.unit([t0, t1, 0, 0]);
        self.unit([0; 4]);
        self.unit([0; 4]);
        let family = if t.src.is_ipv6() { AF_INET6 } else { AF_INET };
        self.unit([family, NFNETLINK_V0, 0, 0]);
    }

    /// Stores a unit still held; returns the bytes written.
    #[inline(always)]
    fn finish(self) -> usize {
        match self.held {
            Some(h) => {
                self.dst[self.at..self.at + 4].copy_from_slice(&h.to_ne_bytes());
                self.at + 4
            }
            None => self.at,
        }
    }
}

/// Writes, into `dst` (exactly their length), the canonical header of a message of `len`
/// bytes when `head` is `Some(len)`, then both tuple nests ([`nests_len`] bytes).
///
/// The one encoder of these parts: [`pack`] drops the kernel's bytes only when these are
/// equal to them, so unpacking, which writes these, gives back exactly the kernel's message.
/// Allocation-free, with no shared state. An IPv4 connection (the usual case) is a copy of
/// [`V4_PARTS`] and a store of each tuple field: a few wide stores rather than one per
/// attribute (the cached unpack in the `ct_get` bench: 18.7 ns before, ~13 ns with it).
#[inline]
fn write_parts(head: Option<usize>, orig: &ConnKey, reply: &ConnKey, dst: &mut [u8]) {
    if let (IpAddr::V4(os), IpAddr::V4(od), IpAddr::V4(rs), IpAddr::V4(rd)) =
        (orig.src, orig.dst, reply.src, reply.dst)
    {
        // The usual case, IPv4: the constant bytes at once, then the tuples' fields.
        let at = match head {
            Some(len) => {
                dst[..V4_PARTS.len()].copy_from_slice(&V4_PARTS);
                dst[..4].copy_from_slice(&(len as u32).to_ne_bytes());
                BODY
            }
            None => {
                dst[..V4_PARTS.len() - BODY].copy_from_slice(&V4_PARTS[BODY..]);
                0
            }
        };
        let dst = &mut dst[at..at + 2 * V4_TUPLE];
        for (i, (t, s, d)) in [(orig, os, od), (reply, rs, rd)].into_iter().enumerate() {
            let at = i * V4_TUPLE;
            let [p0, p1] = t.src_port.to_be_bytes();
            let [q0, q1] = t.dst_port.to_be_bytes();
            dst[at + 12..at + 16].copy_from_slice(&s.octets());
            dst[at + 20..at + 24].copy_from_slice(&d.octets());
            dst[at + 32..at + 36].copy_from_slice(&[t.proto, 0, 0, 0]);
            dst[at + 40..at + 44].copy_from_slice(&[p0, p1, 0, 0]);
            dst[at + 48..at + 52].copy_from_slice(&[q0, q1, 0, 0]);
        }
        return;
    }
    let mut u = Units::new(dst);
    if let Some(len) = head {
        u.head(len, orig);
    }
    u.tuple(CTA_TUPLE_ORIG, orig);
    u.tuple(CTA_TUPLE_REPLY, reply);
    let n = u.finish();
    debug_assert_eq!(n, dst.len());
}

/// Bytes of an IPv4 tuple nest.
const V4_TUPLE: usize = ATTR + ATTR + 2 * (ATTR + 4) + PROTO_NEST;

/// The canonical header (length 0) and both tuple nests of an IPv4 connection with zero
/// addresses, protocol and ports: what [`write_parts`] copies before it writes those fields.
/// Built at compile time from the same layout as [`Units::tuple`] (which is not `const`);
/// a property test checks that both write the same bytes.
const V4_PARTS: [u8; BODY + 2 * V4_TUPLE] = {
    const fn attr(
        mut t: [u8; BODY + 2 * V4_TUPLE],
        at: usize,
        len: usize,
        ty: u16,
    ) -> [u8; BODY + 2 * V4_TUPLE] {
        let l = (len as u16).to_ne_bytes();
        let y = ty.to_ne_bytes();
        t[at] = l[0];
        t[at + 1] = l[1];
        t[at + 2] = y[0];
        t[at + 3] = y[1];
        t
    }
    let mut t = [0u8; BODY + 2 * V4_TUPLE];
    let ty = nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW).to_ne_bytes();
    t[4] = ty[0];
    t[5] = ty[1];
    t[NLMSG_HDRLEN] = AF_INET;
    t[NLMSG_HDRLEN + 1] = NFNETLINK_V0;
    let tys = [CTA_TUPLE_ORIG, CTA_TUPLE_REPLY];
    let mut i = 0;
    while i < 2 {
        let at = BODY + i * V4_TUPLE;
        t = attr(t, at, V4_TUPLE, tys[i] | NLA_F_NESTED);
        t = attr(
            t,
            at + 4,
            ATTR + 2 * (ATTR + 4),
            CTA_TUPLE_IP | NLA_F_NESTED,
        );
        t = attr(t, at + 8, ATTR + 4, CTA_IP_V4_SRC);
        t = attr(t, at + 16, ATTR + 4, CTA_IP_V4_DST);
        t = attr(t, at + 24, PROTO_NEST, CTA_TUPLE_PROTO | NLA_F_NESTED);
        t = attr(t, at + 28, ATTR + 1, CTA_PROTO_NUM);
        t = attr(t, at + 36, ATTR + 2, CTA_PROTO_SRC_PORT);
        t = attr(t, at + 44, ATTR + 2, CTA_PROTO_DST_PORT);
        i += 1;
    }
    t
};

/// Writes both tuple nests into `dst`, which is exactly [`nests_len`] bytes long.
fn write_nests(orig: &ConnKey, reply: &ConnKey, dst: &mut [u8]) {
    write_parts(None, orig, reply, dst);
}

/// In a `dropped` count: the header and `nfgenmsg` were dropped too.
const HEAD: u16 = 1 << 15;

/// The normalised header and `nfgenmsg` the kernel writes before a conntrack entry of
/// `len` bytes whose tuples are of `t`'s family (see `Units::head`).
fn canonical_head(len: usize, t: &ConnKey) -> [u8; BODY] {
    let mut h = [0u8; BODY];
    let mut u = Units::new(&mut h);
    u.head(len, t);
    u.finish();
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

/// Writes back what [`pack`] dropped into `dst`: the canonical header of a message of
/// `len` bytes when `head` is `Some(len)` (its first [`BODY`] bytes), then the tuple nests
/// (the rest). They cannot be of another length: the same tuples encoded to that many bytes
/// when the message was packed (tuples are immutable for a connection's life). A record that
/// lies (any bytes may be in the mapping) still gets a well-formed buffer of the right size:
/// the header, and zeros for the nests.
#[inline]
fn restore(head: Option<usize>, orig: &ConnKey, reply: &ConnKey, dst: &mut [u8]) {
    let at = if head.is_some() { BODY } else { 0 };
    if nests_len(orig, reply) == dst.len().checked_sub(at) {
        write_parts(head, orig, reply, dst);
        return;
    }
    if let Some(len) = head {
        dst[..BODY].copy_from_slice(&canonical_head(len, orig));
    }
    dst[at..].fill(0);
}

/// Appends the full message stored as `stored` (see [`pack`]) to `out`.
///
/// Allocation-free apart from growing `out` (once). The dropped parts are written first and
/// the stored bytes copied after them once (nothing moved).
pub fn unpack_into(
    stored: &[u8],
    dropped: u16,
    orig: &ConnKey,
    reply: &ConnKey,
    out: &mut Vec<u8>,
) {
    let tuples = usize::from(dropped & !HEAD);
    let base = out.len();
    if dropped & HEAD != 0 {
        let room = BODY + tuples;
        out.reserve(room + stored.len());
        out.resize(base + room, 0);
        restore(Some(room + stored.len()), orig, reply, &mut out[base..]);
        out.extend_from_slice(stored);
    } else if tuples == 0 || stored.len() < BODY {
        out.extend_from_slice(stored);
    } else {
        let (head, rest) = stored.split_at(BODY);
        out.reserve(tuples + stored.len());
        out.extend_from_slice(head);
        out.resize(base + BODY + tuples, 0);
        restore(None, orig, reply, &mut out[base + BODY..]);
        out.extend_from_slice(rest);
    }
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
    let head = (dropped & HEAD != 0).then_some(BODY + tuples + stored);
    restore(head, orig, reply, &mut buf[from..from + gap]);
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
#[inline]
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
#[inline]
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
        restore(
            Some(room + stored),
            orig,
            reply,
            &mut buf[base..base + room],
        );
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
