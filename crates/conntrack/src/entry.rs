//! Conntrack entries: the zero-copy [`CtEntryView`], counters, protocol info, events and the
//! owned [`CtEntry`] used for create and update requests.

use nlkit_wire::consts::*;
use nlkit_wire::{Attr, Message, NfGenMsg};

use crate::{Error, Tuple};

/// Packet and byte counters of one direction (`CTA_COUNTERS_ORIG` / `CTA_COUNTERS_REPLY`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Counters {
    fn parse(nest: &Attr<'_>) -> Result<Self, Error> {
        let mut c = Counters::default();
        for a in nest.nested() {
            let a = a?;
            match a.ty() {
                CTA_COUNTERS_PACKETS => c.packets = a.be64()?,
                CTA_COUNTERS_BYTES => c.bytes = a.be64()?,
                CTA_COUNTERS32_PACKETS => c.packets = a.be32()? as u64,
                CTA_COUNTERS32_BYTES => c.bytes = a.be32()? as u64,
                _ => {}
            }
        }
        Ok(c)
    }
}

/// TCP protocol info (`CTA_PROTOINFO_TCP`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpInfo {
    /// `TCP_CONNTRACK_*` state.
    pub state: u8,
    /// Window scale, original direction.
    pub wscale_orig: Option<u8>,
    /// Window scale, reply direction.
    pub wscale_reply: Option<u8>,
}

/// What a conntrack event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum EventKind {
    /// A new connection (`IPCTNL_MSG_CT_NEW` with `NLM_F_CREATE | NLM_F_EXCL`).
    New,
    /// A change to an existing one (`IPCTNL_MSG_CT_NEW` without them).
    Update,
    /// A connection went away (`IPCTNL_MSG_CT_DELETE`).
    Destroy,
}

impl EventKind {
    /// The kind of an event message, or `None` for a message that is not a conntrack event.
    pub fn of(msg: &Message<'_>) -> Option<Self> {
        let [subsys, ty] = msg.ty().to_be_bytes();
        if subsys != NFNL_SUBSYS_CTNETLINK {
            return None;
        }
        match ty {
            IPCTNL_MSG_CT_NEW if msg.flags() & (NLM_F_CREATE | NLM_F_EXCL) != 0 => {
                Some(EventKind::New)
            }
            IPCTNL_MSG_CT_NEW => Some(EventKind::Update),
            IPCTNL_MSG_CT_DELETE => Some(EventKind::Destroy),
            _ => None,
        }
    }
    /// The tag `conntrack -E` prints: `[NEW]`, `[UPDATE]`, `[DESTROY]`.
    pub fn tag(&self) -> &'static str {
        match self {
            EventKind::New => "[NEW]",
            EventKind::Update => "[UPDATE]",
            EventKind::Destroy => "[DESTROY]",
        }
    }
}

/// A borrowed view of one conntrack entry message (a dump item, a get reply or an event),
/// decoded in one pass over its attributes.
///
/// Values that ctnetlink sends big-endian (status, timeout, mark, id, use, zone, ports,
/// counters) are converted to host order. Attributes this view does not decode are skipped
/// and counted in [`unknown_attrs`](CtEntryView::unknown_attrs).
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_conntrack::{request, CtEntry, CtEntryView, Tuple};
/// let orig = Tuple::udp("10.0.0.1".parse().unwrap(), 1234, "10.0.0.2".parse().unwrap(), 53);
/// let e = CtEntry::new(orig).timeout(30).mark(7);
/// let mut b = MessageBuilder::new();
/// request::create(&mut b, 1, &e).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = CtEntryView::parse(&m).unwrap();
/// assert_eq!((v.orig(), v.reply(), v.mark(), v.timeout()),
///            (Some(orig), Some(orig.reversed()), Some(7), Some(30)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CtEntryView<'a> {
    msg_type: u8,
    nl_flags: u16,
    hdr: NfGenMsg,
    orig: Option<Tuple>,
    reply: Option<Tuple>,
    status: Option<u32>,
    timeout: Option<u32>,
    mark: Option<u32>,
    zone: Option<u16>,
    id: Option<u32>,
    use_count: Option<u32>,
    secmark: Option<u32>,
    counters_orig: Option<Counters>,
    counters_reply: Option<Counters>,
    tcp: Option<TcpInfo>,
    sctp_state: Option<u8>,
    labels: Option<&'a [u8]>,
    unknown_attrs: u32,
}

impl<'a> CtEntryView<'a> {
    /// Decodes an `IPCTNL_MSG_CT_NEW` or `IPCTNL_MSG_CT_DELETE` message (also accepts the
    /// request types `IPCTNL_MSG_CT_GET`, so built requests can be inspected).
    pub fn parse(msg: &Message<'a>) -> Result<Self, Error> {
        let [subsys, ty] = msg.ty().to_be_bytes();
        if subsys != NFNL_SUBSYS_CTNETLINK
            || !matches!(
                ty,
                IPCTNL_MSG_CT_NEW | IPCTNL_MSG_CT_DELETE | IPCTNL_MSG_CT_GET
            )
        {
            return Err(Error::UnexpectedType(msg.ty()));
        }
        let (hdr, attrs) = msg.family_header::<NfGenMsg>()?;
        let mut v = CtEntryView {
            msg_type: ty,
            nl_flags: msg.flags(),
            hdr,
            orig: None,
            reply: None,
            status: None,
            timeout: None,
            mark: None,
            zone: None,
            id: None,
            use_count: None,
            secmark: None,
            counters_orig: None,
            counters_reply: None,
            tcp: None,
            sctp_state: None,
            labels: None,
            unknown_attrs: 0,
        };
        let mut unknown = 0;
        for a in attrs {
            let a = a?;
            match a.ty() {
                CTA_TUPLE_ORIG => v.orig = Some(Tuple::parse(&a, &mut unknown)?),
                CTA_TUPLE_REPLY => v.reply = Some(Tuple::parse(&a, &mut unknown)?),
                CTA_STATUS => v.status = Some(a.be32()?),
                CTA_TIMEOUT => v.timeout = Some(a.be32()?),
                CTA_MARK => v.mark = Some(a.be32()?),
                CTA_ZONE => v.zone = Some(a.be16()?),
                CTA_ID => v.id = Some(a.be32()?),
                CTA_USE => v.use_count = Some(a.be32()?),
                CTA_SECMARK => v.secmark = Some(a.be32()?),
                CTA_COUNTERS_ORIG => v.counters_orig = Some(Counters::parse(&a)?),
                CTA_COUNTERS_REPLY => v.counters_reply = Some(Counters::parse(&a)?),
                CTA_PROTOINFO => v.parse_protoinfo(&a, &mut unknown)?,
                CTA_LABELS => v.labels = Some(a.payload()),
                _ => unknown += 1,
            }
        }
        v.unknown_attrs = unknown;
        Ok(v)
    }

    fn parse_protoinfo(&mut self, a: &Attr<'a>, unknown: &mut u32) -> Result<(), Error> {
        for p in a.nested() {
            let p = p?;
            match p.ty() {
                CTA_PROTOINFO_TCP => {
                    let mut t = TcpInfo::default();
                    for x in p.nested() {
                        let x = x?;
                        match x.ty() {
                            CTA_PROTOINFO_TCP_STATE => t.state = x.u8()?,
                            CTA_PROTOINFO_TCP_WSCALE_ORIGINAL => t.wscale_orig = Some(x.u8()?),
                            CTA_PROTOINFO_TCP_WSCALE_REPLY => t.wscale_reply = Some(x.u8()?),
                            _ => {}
                        }
                    }
                    self.tcp = Some(t);
                }
                CTA_PROTOINFO_SCTP => {
                    if let Some(s) = p.nested().find(CTA_PROTOINFO_SCTP_STATE) {
                        self.sctp_state = Some(s?.u8()?);
                    }
                }
                _ => *unknown += 1,
            }
        }
        Ok(())
    }

    /// The ctnetlink message type (`IPCTNL_MSG_CT_NEW`, `IPCTNL_MSG_CT_DELETE`, …).
    pub fn msg_type(&self) -> u8 {
        self.msg_type
    }
    /// The event kind, judged from the message type and flags.
    pub fn event(&self) -> Option<EventKind> {
        match self.msg_type {
            IPCTNL_MSG_CT_NEW if self.nl_flags & (NLM_F_CREATE | NLM_F_EXCL) != 0 => {
                Some(EventKind::New)
            }
            IPCTNL_MSG_CT_NEW => Some(EventKind::Update),
            IPCTNL_MSG_CT_DELETE => Some(EventKind::Destroy),
            _ => None,
        }
    }
    /// The layer-3 family from `nfgenmsg` (`AF_INET`, `AF_INET6`).
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// The original-direction tuple.
    pub fn orig(&self) -> Option<Tuple> {
        self.orig
    }
    /// The reply-direction tuple.
    pub fn reply(&self) -> Option<Tuple> {
        self.reply
    }
    /// The layer-4 protocol of the original tuple.
    pub fn proto(&self) -> Option<u8> {
        self.orig.or(self.reply).map(|t| t.proto)
    }
    /// `CTA_STATUS` (`IPS_*` bits).
    pub fn status(&self) -> Option<u32> {
        self.status
    }
    /// `CTA_TIMEOUT`: seconds left.
    pub fn timeout(&self) -> Option<u32> {
        self.timeout
    }
    /// `CTA_MARK`.
    pub fn mark(&self) -> Option<u32> {
        self.mark
    }
    /// `CTA_ZONE` (the kernel omits it for zone 0).
    pub fn zone(&self) -> Option<u16> {
        self.zone
    }
    /// The zone, 0 when absent.
    pub fn zone_or_default(&self) -> u16 {
        self.zone.unwrap_or(0)
    }
    /// `CTA_ID`.
    pub fn id(&self) -> Option<u32> {
        self.id
    }
    /// `CTA_USE`: the reference count.
    pub fn use_count(&self) -> Option<u32> {
        self.use_count
    }
    /// `CTA_SECMARK`.
    pub fn secmark(&self) -> Option<u32> {
        self.secmark
    }
    /// Original-direction counters (only with `nf_conntrack_acct` enabled).
    pub fn counters_orig(&self) -> Option<Counters> {
        self.counters_orig
    }
    /// Reply-direction counters.
    pub fn counters_reply(&self) -> Option<Counters> {
        self.counters_reply
    }
    /// TCP protocol info.
    pub fn tcp(&self) -> Option<TcpInfo> {
        self.tcp
    }
    /// The TCP state (`TCP_CONNTRACK_*`).
    pub fn tcp_state(&self) -> Option<u8> {
        self.tcp.map(|t| t.state)
    }
    /// The SCTP state.
    pub fn sctp_state(&self) -> Option<u8> {
        self.sctp_state
    }
    /// `CTA_LABELS`: the connection label bitmap (128 bits on current kernels).
    pub fn labels(&self) -> Option<&'a [u8]> {
        self.labels
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }

    /// An owned copy usable for create/update requests; `None` without both tuples.
    pub fn to_owned(&self) -> Option<CtEntry> {
        let mut labels = None;
        if let Some(l) = self.labels {
            let mut a = [0u8; 16];
            let n = l.len().min(16);
            a[..n].copy_from_slice(&l[..n]);
            labels = Some(a);
        }
        Some(CtEntry {
            orig: self.orig?,
            reply: self.reply?,
            status: self.status,
            timeout: self.timeout,
            mark: self.mark,
            zone: self.zone,
            tcp_state: self.tcp_state(),
            labels,
            id: self.id,
        })
    }
}

/// An owned conntrack entry: what [`request::create`](crate::request::create) and
/// [`request::update`](crate::request::update) send.
///
/// ```
/// use nlkit_conntrack::{CtEntry, Tuple};
/// use nlkit_wire::consts::*;
/// let t = Tuple::tcp("10.0.0.1".parse().unwrap(), 40000, "10.0.0.2".parse().unwrap(), 80);
/// let e = CtEntry::new(t).timeout(120).tcp_state(TCP_CONNTRACK_ESTABLISHED)
///     .status(IPS_SEEN_REPLY | IPS_ASSURED).zone(3);
/// assert_eq!(e.reply, t.reversed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CtEntry {
    /// The original tuple.
    pub orig: Tuple,
    /// The reply tuple (the kernel requires both to create an entry).
    pub reply: Tuple,
    /// `IPS_*` bits to set (`CTA_STATUS`).
    pub status: Option<u32>,
    /// Seconds to live (`CTA_TIMEOUT`; required to create).
    pub timeout: Option<u32>,
    /// `CTA_MARK`.
    pub mark: Option<u32>,
    /// `CTA_ZONE`.
    pub zone: Option<u16>,
    /// TCP state (`CTA_PROTOINFO_TCP_STATE`).
    pub tcp_state: Option<u8>,
    /// `CTA_LABELS` (128-bit bitmap).
    pub labels: Option<[u8; 16]>,
    /// `CTA_ID` (used by delete to avoid removing a newer entry with the same tuple).
    pub id: Option<u32>,
}

impl CtEntry {
    /// An entry for `orig` whose reply tuple is `orig.reversed()` (no NAT).
    pub fn new(orig: Tuple) -> Self {
        Self::with_reply(orig, orig.reversed())
    }
    /// An entry with explicit tuples (e.g. NATed).
    pub fn with_reply(orig: Tuple, reply: Tuple) -> Self {
        CtEntry {
            orig,
            reply,
            status: None,
            timeout: None,
            mark: None,
            zone: None,
            tcp_state: None,
            labels: None,
            id: None,
        }
    }
    /// `AF_INET` or `AF_INET6`.
    pub fn family(&self) -> u8 {
        self.orig.family()
    }
    /// Sets the timeout (seconds).
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout = Some(secs);
        self
    }
    /// Sets the mark.
    pub fn mark(mut self, mark: u32) -> Self {
        self.mark = Some(mark);
        self
    }
    /// Sets the zone.
    pub fn zone(mut self, zone: u16) -> Self {
        self.zone = Some(zone);
        self
    }
    /// Sets the status bits.
    pub fn status(mut self, status: u32) -> Self {
        self.status = Some(status);
        self
    }
    /// Sets the TCP state.
    pub fn tcp_state(mut self, state: u8) -> Self {
        self.tcp_state = Some(state);
        self
    }
    /// Sets the labels.
    pub fn labels(mut self, labels: [u8; 16]) -> Self {
        self.labels = Some(labels);
        self
    }
}
