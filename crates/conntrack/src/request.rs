//! ctnetlink request builders: each function appends one request to a [`MessageBuilder`]
//! and returns its byte range (or the build error). Several requests in one builder form a
//! batch for a single `sendmsg`.
//!
//! Attributes go out in network byte order, as ctnetlink expects, and nests carry
//! `NLA_F_NESTED`.
//!
//! ```
//! use nlkit_wire::MessageBuilder;
//! use nlkit_conntrack::{request::{self, DumpFilter}};
//! let mut b = MessageBuilder::new();
//! request::dump(&mut b, 1, &DumpFilter { mark: Some((7, u32::MAX)), ..Default::default() }).unwrap();
//! request::flush_mark(&mut b, 2, 0, 7, u32::MAX).unwrap();
//! assert_eq!(b.message_count(), 2);
//! ```

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, NfGenMsg, WireError};

use crate::{CtEntry, CtEntryView, Tuple};

pub use nlkit_wire::Built;

/// Flags of the `CTA_FILTER` tuple filter (`CTA_FILTER_F_*` in the kernel's
/// `nf_internals.h`; not part of the uAPI headers).
pub mod filter_flags {
    /// Match the source address.
    pub const IP_SRC: u32 = 1 << 0;
    /// Match the destination address.
    pub const IP_DST: u32 = 1 << 1;
    /// Match the tuple zone.
    pub const TUPLE_ZONE: u32 = 1 << 2;
    /// Match the protocol number.
    pub const PROTO_NUM: u32 = 1 << 3;
    /// Match the source port.
    pub const PROTO_SRC_PORT: u32 = 1 << 4;
    /// Match the destination port.
    pub const PROTO_DST_PORT: u32 = 1 << 5;
}

/// The `nlmsg_type` of a ctnetlink message.
pub fn msg_type(msg: u8) -> u16 {
    nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, msg)
}

/// Begins a ctnetlink message of type `msg` (`IPCTNL_MSG_CT_*`) with its `nfgenmsg` header
/// for `family`; the attributes follow, then `b.finish()`.
///
/// ```
/// use nlkit_wire::consts::{AF_INET, IPCTNL_MSG_CT_NEW};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_conntrack::request::begin(&mut b, IPCTNL_MSG_CT_NEW, 0, 0, AF_INET);
/// b.finish().unwrap();
/// assert_eq!(b.as_bytes().len(), 20); // netlink header + nfgenmsg
/// ```
pub fn begin(b: &mut MessageBuilder, msg: u8, flags: u16, seq: u32, family: u8) {
    b.begin(msg_type(msg), flags, seq);
    b.header(&NfGenMsg {
        family,
        version: NFNETLINK_V0,
        res_id: 0,
    });
}

/// A tuple filter (`CTA_FILTER` + a tuple): only the fields that are set are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TupleFilter {
    /// Source address.
    pub src: Option<IpAddr>,
    /// Destination address.
    pub dst: Option<IpAddr>,
    /// Protocol number (required by the kernel when ports are given).
    pub proto: Option<u8>,
    /// Source port.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
}

impl TupleFilter {
    /// The `CTA_FILTER_F_*` flags for this filter.
    pub fn flags(&self) -> u32 {
        use filter_flags::*;
        let mut f = 0;
        if self.src.is_some() {
            f |= IP_SRC;
        }
        if self.dst.is_some() {
            f |= IP_DST;
        }
        if self.proto.is_some() || self.sport.is_some() || self.dport.is_some() {
            f |= PROTO_NUM;
        }
        if self.sport.is_some() {
            f |= PROTO_SRC_PORT;
        }
        if self.dport.is_some() {
            f |= PROTO_DST_PORT;
        }
        f
    }
    fn family(&self) -> Option<u8> {
        self.src
            .or(self.dst)
            .map(|a| if a.is_ipv4() { AF_INET } else { AF_INET6 })
    }
    /// The same test in user space.
    pub fn matches(&self, t: &Tuple) -> bool {
        self.src.is_none_or(|a| t.src == a)
            && self.dst.is_none_or(|a| t.dst == a)
            && self.proto.is_none_or(|p| t.proto == p)
            && self.sport.is_none_or(|p| t.sport() == Some(p))
            && self.dport.is_none_or(|p| t.dport() == Some(p))
    }
    fn write(&self, b: &mut MessageBuilder, ty: u16) {
        let t = b.nest_begin(ty);
        if self.src.is_some() || self.dst.is_some() {
            crate::tuple::write_ip(b, self.src, self.dst);
        }
        if self.flags() & filter_flags::PROTO_NUM != 0 {
            let p = b.nest_begin(CTA_TUPLE_PROTO);
            b.attr_u8(CTA_PROTO_NUM, self.proto.unwrap_or(0));
            if let Some(s) = self.sport {
                b.attr_be16(CTA_PROTO_SRC_PORT, s);
            }
            if let Some(d) = self.dport {
                b.attr_be16(CTA_PROTO_DST_PORT, d);
            }
            b.nest_end(p);
        }
        b.nest_end(t);
    }
}

/// Kernel-side dump filters. The kernel applies `mark` (`CTA_MARK` + `CTA_MARK_MASK`, for
/// years), `zone` (`CTA_ZONE`, since about 6.8) and the tuple filters (`CTA_FILTER`, since
/// 5.8); an older kernel ignores what it does not know, so callers should re-check each entry
/// with [`matches`](DumpFilter::matches) — the socket-level dump functions of this crate do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpFilter {
    /// `AF_INET`, `AF_INET6`, or 0 for both (overridden by a tuple filter's address family).
    pub family: u8,
    /// `(value, mask)`: entries with `mark & mask == value`.
    pub mark: Option<(u32, u32)>,
    /// Only this zone.
    pub zone: Option<u16>,
    /// `(value, mask)`: entries with `status & mask == value` (`CTA_STATUS_MASK`, 6.1+).
    pub status: Option<(u32, u32)>,
    /// Original-tuple filter.
    pub orig: Option<TupleFilter>,
    /// Reply-tuple filter.
    pub reply: Option<TupleFilter>,
}

impl DumpFilter {
    /// Only entries whose mark is `mark` (all bits).
    pub fn mark(mark: u32) -> Self {
        DumpFilter {
            mark: Some((mark, u32::MAX)),
            ..Default::default()
        }
    }
    /// Only entries of `zone`.
    pub fn zone(zone: u16) -> Self {
        DumpFilter {
            zone: Some(zone),
            ..Default::default()
        }
    }
    /// The family the request carries.
    pub fn request_family(&self) -> u8 {
        self.orig
            .and_then(|t| t.family())
            .or(self.reply.and_then(|t| t.family()))
            .unwrap_or(self.family)
    }
    /// The same test in user space.
    pub fn matches(&self, e: &CtEntryView<'_>) -> bool {
        let fam = self.request_family();
        (fam == AF_UNSPEC || e.family() == fam)
            && self
                .mark
                .is_none_or(|(v, m)| e.mark().unwrap_or(0) & m == v)
            && self.zone.is_none_or(|z| e.zone_or_default() == z)
            && self
                .status
                .is_none_or(|(v, m)| e.status().unwrap_or(0) & m == v)
            && self
                .orig
                .is_none_or(|f| e.orig().is_some_and(|t| f.matches(&t)))
            && self
                .reply
                .is_none_or(|f| e.reply().is_some_and(|t| f.matches(&t)))
    }
}

/// `IPCTNL_MSG_CT_GET` dump with kernel-side filters.
///
/// ```
/// use nlkit_conntrack::request::{dump, DumpFilter, TupleFilter};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// let f = DumpFilter {
///     orig: Some(TupleFilter { dst: Some("10.0.0.2".parse().unwrap()), proto: Some(17), dport: Some(53), ..Default::default() }),
///     ..Default::default()
/// };
/// dump(&mut b, 1, &f).unwrap();
/// ```
pub fn dump(b: &mut MessageBuilder, seq: u32, f: &DumpFilter) -> Built {
    begin(
        b,
        IPCTNL_MSG_CT_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        f.request_family(),
    );
    write_filter_attrs(b, f);
    b.finish()
}

fn write_filter_attrs(b: &mut MessageBuilder, f: &DumpFilter) {
    if let Some((v, m)) = f.mark {
        b.attr_be32(CTA_MARK, v);
        b.attr_be32(CTA_MARK_MASK, m);
    }
    if let Some((v, m)) = f.status {
        b.attr_be32(CTA_STATUS, v);
        b.attr_be32(CTA_STATUS_MASK, m);
    }
    if let Some(z) = f.zone {
        b.attr_be16(CTA_ZONE, z);
    }
    // The kernel parses a tuple filter only for a concrete L3 family (AF_UNSPEC answers
    // EOPNOTSUPP). A filter without addresses and without a family (`-p udp --dport 53`)
    // therefore stays in user space: `DumpFilter::matches` applies it to every entry.
    if (f.orig.is_some() || f.reply.is_some()) && f.request_family() != AF_UNSPEC {
        let n = b.nest_begin(CTA_FILTER);
        b.attr_u32(CTA_FILTER_ORIG_FLAGS, f.orig.map_or(0, |t| t.flags()));
        b.attr_u32(CTA_FILTER_REPLY_FLAGS, f.reply.map_or(0, |t| t.flags()));
        b.nest_end(n);
        if let Some(t) = f.orig {
            t.write(b, CTA_TUPLE_ORIG);
        }
        if let Some(t) = f.reply {
            t.write(b, CTA_TUPLE_REPLY);
        }
    }
}

/// `IPCTNL_MSG_CT_GET` for one entry by original tuple (and zone); the reply is an
/// `IPCTNL_MSG_CT_NEW` message, or `ENOENT`.
///
/// ```
/// use nlkit_conntrack::{request::get, Tuple};
/// let t = Tuple::udp("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 53);
/// let mut b = nlkit_wire::MessageBuilder::new();
/// get(&mut b, 1, &t, None).unwrap();
/// ```
pub fn get(b: &mut MessageBuilder, seq: u32, orig: &Tuple, zone: Option<u16>) -> Built {
    begin(b, IPCTNL_MSG_CT_GET, NLM_F_REQUEST, seq, orig.family());
    orig.write(b, CTA_TUPLE_ORIG);
    if let Some(z) = zone {
        b.attr_be16(CTA_ZONE, z);
    }
    b.finish()
}

fn entry_attrs(b: &mut MessageBuilder, e: &CtEntry) {
    e.orig.write(b, CTA_TUPLE_ORIG);
    e.reply.write(b, CTA_TUPLE_REPLY);
    if let Some(z) = e.zone {
        b.attr_be16(CTA_ZONE, z);
    }
    if let Some(s) = e.status {
        // ctnetlink refuses (EBUSY) a status that would clear IPS_CONFIRMED, which every
        // entry in the table has (and which current kernels also expect on create).
        b.attr_be32(CTA_STATUS, s | IPS_CONFIRMED);
    }
    if let Some(t) = e.timeout {
        b.attr_be32(CTA_TIMEOUT, t);
    }
    if let Some(m) = e.mark {
        b.attr_be32(CTA_MARK, m);
    }
    if let Some(st) = e.tcp_state {
        let p = b.nest_begin(CTA_PROTOINFO);
        let t = b.nest_begin(CTA_PROTOINFO_TCP);
        b.attr_u8(CTA_PROTOINFO_TCP_STATE, st);
        b.nest_end(t);
        b.nest_end(p);
    }
    if let Some(l) = e.labels {
        b.attr_bytes(CTA_LABELS, &l);
    }
}

/// `IPCTNL_MSG_CT_NEW` with `NLM_F_CREATE | NLM_F_EXCL`: creates an entry (both tuples and a
/// timeout are required; `EEXIST` if it exists). A given status is sent with
/// `IPS_CONFIRMED` added, since the kernel answers `EBUSY` to a status that lacks it.
///
/// ```
/// use nlkit_conntrack::{request::create, CtEntry, Tuple};
/// let t = Tuple::udp("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 53);
/// let mut b = nlkit_wire::MessageBuilder::new();
/// create(&mut b, 1, &CtEntry::new(t).timeout(30)).unwrap();
/// assert!(create(&mut b, 2, &CtEntry::new(t)).is_err()); // no timeout
/// ```
pub fn create(b: &mut MessageBuilder, seq: u32, e: &CtEntry) -> Built {
    if e.timeout.is_none() {
        return Err(WireError::Build("a conntrack create needs a timeout"));
    }
    begin(
        b,
        IPCTNL_MSG_CT_NEW,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        e.family(),
    );
    entry_attrs(b, e);
    b.finish()
}

/// `IPCTNL_MSG_CT_NEW` without `NLM_F_CREATE`: changes an existing entry (timeout, mark,
/// status bits, TCP state, labels); `ENOENT` if it does not exist.
///
/// ```
/// use nlkit_conntrack::{request::update, CtEntry, Tuple};
/// let t = Tuple::udp("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 53);
/// let mut b = nlkit_wire::MessageBuilder::new();
/// update(&mut b, 1, &CtEntry::new(t).mark(9)).unwrap();
/// ```
pub fn update(b: &mut MessageBuilder, seq: u32, e: &CtEntry) -> Built {
    begin(
        b,
        IPCTNL_MSG_CT_NEW,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        e.family(),
    );
    entry_attrs(b, e);
    b.finish()
}

/// `IPCTNL_MSG_CT_DELETE` of one entry by original tuple, zone and (optionally) id; with the
/// id the kernel refuses (`ENOENT`) to delete a newer entry that reuses the tuple.
///
/// ```
/// use nlkit_conntrack::{request::delete, Tuple};
/// let t = Tuple::udp("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 53);
/// let mut b = nlkit_wire::MessageBuilder::new();
/// delete(&mut b, 1, &t, None, None).unwrap();
/// ```
pub fn delete(
    b: &mut MessageBuilder,
    seq: u32,
    orig: &Tuple,
    zone: Option<u16>,
    id: Option<u32>,
) -> Built {
    begin(
        b,
        IPCTNL_MSG_CT_DELETE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        orig.family(),
    );
    orig.write(b, CTA_TUPLE_ORIG);
    if let Some(z) = zone {
        b.attr_be16(CTA_ZONE, z);
    }
    if let Some(i) = id {
        b.attr_be32(CTA_ID, i);
    }
    b.finish()
}

/// Deletes the entry a view describes (original tuple, zone and id). Fails with
/// [`WireError::Build`] when the view has no original tuple.
pub fn delete_entry(b: &mut MessageBuilder, seq: u32, e: &CtEntryView<'_>) -> Built {
    let orig = e
        .orig()
        .ok_or(WireError::Build("conntrack entry without original tuple"))?;
    delete(b, seq, &orig, e.zone(), e.id())
}

/// `IPCTNL_MSG_CT_DELETE` without a tuple: flushes every entry of `family` (0 = all
/// families) in the socket's network namespace (`conntrack -F`).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_conntrack::request::flush(&mut b, 1, 0).unwrap();
/// ```
pub fn flush(b: &mut MessageBuilder, seq: u32, family: u8) -> Built {
    begin(
        b,
        IPCTNL_MSG_CT_DELETE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        family,
    );
    b.finish()
}

/// Flushes, kernel-side, the entries with `mark & mask == value`.
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_conntrack::request::flush_mark(&mut b, 1, 0, 0x10, 0xf0).unwrap();
/// ```
pub fn flush_mark(b: &mut MessageBuilder, seq: u32, family: u8, value: u32, mask: u32) -> Built {
    begin(
        b,
        IPCTNL_MSG_CT_DELETE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        family,
    );
    b.attr_be32(CTA_MARK, value);
    b.attr_be32(CTA_MARK_MASK, mask);
    b.finish()
}

/// `IPCTNL_MSG_CT_GET_STATS`: the number of entries (`conntrack -C`); parse the reply with
/// [`GlobalStats::parse`](crate::GlobalStats::parse).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_conntrack::request::count(&mut b, 1).unwrap();
/// ```
pub fn count(b: &mut MessageBuilder, seq: u32) -> Built {
    begin(b, IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST, seq, AF_UNSPEC);
    b.finish()
}

/// `IPCTNL_MSG_CT_GET_STATS_CPU` dump: one message per CPU (`conntrack -S`); parse each
/// with [`CpuStats::parse`](crate::CpuStats::parse).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_conntrack::request::stats_cpu(&mut b, 1).unwrap();
/// ```
pub fn stats_cpu(b: &mut MessageBuilder, seq: u32) -> Built {
    begin(
        b,
        IPCTNL_MSG_CT_GET_STATS_CPU,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        AF_UNSPEC,
    );
    b.finish()
}
