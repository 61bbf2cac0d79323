//! Compact storage of conntrack messages.
//!
//! A ctnetlink message starts with its two tuple nests (`CTA_TUPLE_ORIG`, `CTA_TUPLE_REPLY`,
//! about 104 bytes for IPv4 TCP/UDP out of about 200), and the connection table already holds
//! both tuples as its keys. [`pack`] drops the nests when re-encoding the table's tuples gives
//! back exactly the kernel's bytes — checked byte for byte on every pack, so a kernel that
//! encodes differently (another attribute order, no `NLA_F_NESTED`, a protocol without ports,
//! a zone) simply keeps its message whole. [`unpack_into`] puts the nests back, so what is
//! served is always the kernel's message as it arrived.

use std::cell::RefCell;

use nlkit_table::ConnKey;
use nlkit_wire::consts::*;
use nlkit_wire::{FamilyHeader, MessageBuilder, MessageHeader, NfGenMsg, NLMSG_HDRLEN};

/// Header plus `nfgenmsg`: the part of a ctnetlink message before its attributes.
pub const BODY: usize = NLMSG_HDRLEN + 4;

/// Protocols whose tuple carries `CTA_PROTO_SRC_PORT` and `CTA_PROTO_DST_PORT`.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136) // TCP, UDP, DCCP, SCTP, UDP-Lite
}

thread_local! {
    /// Where each thread encodes tuple nests (reused: no allocation per entry).
    static SCRATCH: RefCell<MessageBuilder> = RefCell::new(MessageBuilder::with_capacity(256));
}

/// Calls `f` with the kernel's encoding of both tuple nests (as `ctnetlink_dump_tuples`
/// writes them for a port-carrying protocol in zone 0, with `nlkit-conntrack`'s encoder), or
/// with `None` when either tuple is not of that kind.
fn with_tuple_nests<R>(orig: &ConnKey, reply: &ConnKey, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    let encodable = |t: &ConnKey| t.zone == 0 && has_ports(t.proto);
    if !encodable(orig) || !encodable(reply) {
        return f(None);
    }
    SCRATCH.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        for (ty, t) in [(CTA_TUPLE_ORIG, orig), (CTA_TUPLE_REPLY, reply)] {
            nlkit_conntrack::Tuple::with_ports(t.proto, t.src, t.src_port, t.dst, t.dst_port)
                .write(&mut b, ty);
        }
        f(Some(b.as_bytes()))
    })
}

/// In a `dropped` count: the header and `nfgenmsg` were dropped too.
const HEAD: u16 = 1 << 15;

/// The normalised header and `nfgenmsg` the kernel writes before a conntrack entry of
/// `len` bytes whose tuples are of `t`'s family (`IPCTNL_MSG_CT_NEW`, no flags, version 0,
/// resource id 0).
fn canonical_head(len: usize, t: &ConnKey) -> [u8; BODY] {
    let mut h = [0u8; BODY];
    MessageHeader {
        len: len as u32,
        ty: nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
        flags: 0,
        seq: 0,
        pid: 0,
    }
    .write(&mut h[..NLMSG_HDRLEN]);
    NfGenMsg {
        family: if t.src.is_ipv6() { AF_INET6 } else { AF_INET },
        version: NFNETLINK_V0,
        res_id: 0,
    }
    .write(&mut h[NLMSG_HDRLEN..]);
    h
}

/// The stored form of the normalised message `msg` of the connection `orig`/`reply`, and
/// what was dropped from it: the tuple bytes (0: stored whole), with the high bit (`HEAD`) set when the
/// header and `nfgenmsg` were the canonical ones and went too.
///
/// ```ignore
/// let (stored, dropped) = pack(msg, &orig, &reply);
/// let mut out = Vec::new();
/// unpack_into(&stored, dropped, &orig, &reply, &mut out);
/// assert_eq!(out, msg);
/// ```
pub fn pack(msg: Vec<u8>, orig: &ConnKey, reply: &ConnKey) -> (Box<[u8]>, u16) {
    if msg.len() <= BODY {
        return (msg.into_boxed_slice(), 0);
    }
    let packed = with_tuple_nests(orig, reply, |nests| {
        let nests = nests?;
        let end = BODY + nests.len();
        if msg.get(BODY..end) != Some(nests) {
            return None;
        }
        let head = msg[..BODY] == canonical_head(msg.len(), orig);
        let mut stored = Vec::with_capacity(msg.len() - nests.len());
        if !head {
            stored.extend_from_slice(&msg[..BODY]);
        }
        stored.extend_from_slice(&msg[end..]);
        let dropped = nests.len() as u16 | if head { HEAD } else { 0 };
        Some((stored.into_boxed_slice(), dropped))
    });
    packed.unwrap_or_else(|| (msg.into_boxed_slice(), 0))
}

/// Appends the full message stored as `stored` (see [`pack`]) to `out`.
pub fn unpack_into(
    stored: &[u8],
    dropped: u16,
    orig: &ConnKey,
    reply: &ConnKey,
    out: &mut Vec<u8>,
) {
    let tuples = usize::from(dropped & !HEAD);
    let (head, attrs) = if dropped & HEAD != 0 {
        (canonical_head(BODY + tuples + stored.len(), orig), stored)
    } else if tuples == 0 || stored.len() < BODY {
        out.extend_from_slice(stored);
        return;
    } else {
        let mut h = [0u8; BODY];
        h.copy_from_slice(&stored[..BODY]);
        (h, &stored[BODY..])
    };
    out.reserve(BODY + tuples + attrs.len());
    out.extend_from_slice(&head);
    let start = out.len();
    with_tuple_nests(orig, reply, |nests| match nests {
        Some(n) if n.len() == tuples => out.extend_from_slice(n),
        // Cannot happen: the same tuples encoded to these bytes when the message was packed
        // (tuples are immutable for a connection's life). Keep the output well-formed anyway.
        _ => out.resize(start + tuples, 0),
    });
    out.extend_from_slice(attrs);
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
    use std::net::IpAddr;

    /// A message built the way the kernel lays it out, attribute by attribute (independent of
    /// the `nlkit-conntrack` tuple encoder that `pack` uses).
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
}
