//! [`CtStore`]: the mirror's conntrack table, on the nulls-based [`ConnTable`].
//!
//! Each connection is linked by both its original and reply tuple (so a `GET` by either tuple
//! is one lock-free lookup) and keeps the kernel's last message for it. A connection leaves
//! only on a destroy event or when a verification dump no longer lists it: traffic refreshes
//! the kernel's timer without any event, so the mirror never expires entries by their
//! `CTA_TIMEOUT` (which it lists as of the kernel's last report). Update events carry only
//! what changed, so they are merged into the stored message attribute by attribute.

use std::sync::atomic::{AtomicBool, Ordering};

use nlkit_table::{ConnConfig, ConnInsertError, ConnKey, ConnRef, ConnTable, NewConn, NoCounters};
use nlkit_wire::{align, Attrs, Message, MessageHeaderMut, NLA_HDRLEN, NLMSG_HDRLEN};

use crate::ct_pack::{pack, unpack_into};
use crate::keys::{ct_info, CtInfo};
use crate::store::normalize;
use nlkit_table::ChangeSeq;

/// Timeout used for entries without `CTA_TIMEOUT` (well inside the table clock's wrap range).
const NO_TIMEOUT_MS: u32 = 1 << 30;

/// What each connection keeps under its entry lock (24 bytes: a million connections pay
/// for every field).
#[derive(Debug, Default)]
pub struct CtState {
    /// The normalised kernel message (`IPCTNL_MSG_CT_NEW`), stored packed: without its
    /// tuple nests and canonical header when they re-encode exactly (see `ct_pack`).
    pub(crate) msg: Box<[u8]>,
    /// Generation that last confirmed the entry (its low 32 bits: generations count dump
    /// attempts).
    pub(crate) gen: u32,
    /// What was dropped from `msg` (0: stored whole).
    pub(crate) dropped: u16,
    /// Bits 0-14: offset of `CTA_TIMEOUT`'s value in the full (unpacked) message (0: none;
    /// an offset of 32 KiB or more is not kept, conntrack messages are a few hundred bytes).
    /// Bit 15 ([`SILENT`]): the connection may never send events (see `ct_silent`); kept
    /// here because a separate set of a million tuples cost ~20 MiB and a pass over the table.
    pub(crate) timeout_off: u16,
}

/// In [`CtState::timeout_off`]: the connection was found by the initial dump and no event
/// for it has arrived since.
const SILENT: u16 = 1 << 15;

/// A generation as [`CtState`] keeps it.
fn gen32(gen: u64) -> u32 {
    gen as u32
}

impl CtState {
    fn new(
        msg: Vec<u8>,
        orig: &ConnKey,
        reply: &ConnKey,
        gen: u64,
        timeout_off: Option<usize>,
        silent: bool,
    ) -> Self {
        let (msg, dropped) = pack(msg, orig, reply);
        let off = timeout_off
            .and_then(|o| u16::try_from(o).ok())
            .filter(|o| o & SILENT == 0)
            .unwrap_or(0);
        CtState {
            gen: gen32(gen),
            msg,
            dropped,
            timeout_off: off | if silent { SILENT } else { 0 },
        }
    }

    /// Offset of `CTA_TIMEOUT`'s value in the full message (0: none).
    fn timeout_offset(&self) -> usize {
        usize::from(self.timeout_off & !SILENT)
    }

    /// Whether the connection may never send events: found by the initial dump, and no
    /// event for it since.
    pub(crate) fn is_silent(&self) -> bool {
        self.timeout_off & SILENT != 0
    }
}

/// The conntrack table of the mirror.
///
/// Concurrency contract: lookups and iteration are lock-free; a connection's message is read
/// and replaced under its entry lock (`ConnRef::state`), held only for a copy. Writers are the
/// sync thread (events, gc, sweep) and, during a (re)sync, the conntrack apply thread; each
/// change is bracketed by `seq.write()`.
///
/// ```
/// let ct = nlkit_mirror::CtStore::new(1024);
/// assert_eq!(ct.len(), 0);
/// ```
pub struct CtStore {
    pub(crate) table: ConnTable<CtState, NoCounters>,
    /// Bumped around every insert, update, delete and expiry.
    pub seq: ChangeSeq,
    /// Whether connections a dump inserts are flagged [silent](CtState::is_silent) (on
    /// during the initial sync only). Written by the sync thread between dumps; relaxed:
    /// the dump threads are started and joined after each change.
    dump_marks_silent: AtomicBool,
}

impl std::fmt::Debug for CtStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtStore").field("len", &self.len()).finish()
    }
}

/// Merges an update event into the stored message: the update's header and attributes, then
/// every stored attribute whose type the update does not carry.
fn merge(update: &[u8], old: &[u8]) -> Vec<u8> {
    const BODY: usize = NLMSG_HDRLEN + 4;
    if update.len() < BODY || old.len() < BODY {
        return update.to_vec();
    }
    let mut out = update.to_vec();
    out.resize(align(out.len()), 0);
    let mut present = [false; 64];
    for a in Attrs::new(&update[BODY..]).flatten() {
        if let Some(p) = present.get_mut(usize::from(a.ty())) {
            *p = true;
        }
    }
    let mut pos = BODY;
    for a in Attrs::new(&old[BODY..]).flatten() {
        let len = NLA_HDRLEN + a.payload().len();
        let seen = present.get(usize::from(a.ty())).copied().unwrap_or(true);
        if !seen && pos + len <= old.len() {
            out.extend_from_slice(&old[pos..pos + len]);
            out.resize(align(out.len()), 0);
        }
        pos += align(len);
    }
    let total = out.len() as u32;
    if let Ok(mut h) = MessageHeaderMut::new(&mut out) {
        h.set_len(total);
    }
    out
}

/// The table's timer for every connection: entries never expire in the mirror (see the
/// module docs); each change re-arms it.
fn timeout_ms(_info: &CtInfo) -> Option<u32> {
    Some(NO_TIMEOUT_MS)
}

/// Whether two messages differ only in the value of `CTA_TIMEOUT` at `off` (the kernel's
/// countdown, which every dump reports anew).
fn same_but_timeout(a: &[u8], b: &[u8], off: usize) -> bool {
    a.len() == b.len()
        && off != 0
        && off + 4 <= a.len()
        && a[..off] == b[..off]
        && a[off + 4..] == b[off + 4..]
}

/// Attributes a dump reports anew each time without the connection changing: the timer, the
/// use count, the traffic counters and the timestamps.
fn is_volatile(ty: u16) -> bool {
    use nlkit_wire::consts::{
        CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_TIMEOUT, CTA_TIMESTAMP, CTA_USE,
    };
    matches!(
        ty,
        CTA_TIMEOUT | CTA_USE | CTA_COUNTERS_ORIG | CTA_COUNTERS_REPLY | CTA_TIMESTAMP
    )
}

/// The attributes that describe the connection, sorted: what is left of a message once the
/// volatile ones (and a zero `CTA_MARK`, which events leave out) are set aside.
fn identity_attrs(bytes: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let (m, _) = Message::parse(bytes).ok()?;
    let (_, attrs) = m.family_header::<nlkit_wire::NfGenMsg>().ok()?;
    let mut v = Vec::new();
    for a in attrs {
        let a = a.ok()?;
        if is_volatile(a.ty()) || (a.ty() == nlkit_wire::consts::CTA_MARK && a.payload() == [0; 4])
        {
            continue;
        }
        v.push((a.ty(), a.payload()));
    }
    v.sort_unstable();
    Some(v)
}

/// Whether two messages describe the same connection state: a kernel `NEW` event lacks the
/// `CTA_USE` (and a zero `CTA_MARK`) a dump carries, which is no change to report.
fn same_connection(a: &[u8], b: &[u8]) -> bool {
    matches!((identity_attrs(a), identity_attrs(b)), (Some(x), Some(y)) if x == y)
}

impl CtStore {
    /// A table for at most `max` connections.
    pub fn new(max: u32) -> Self {
        CtStore {
            // Two chains per connection over max/2 buckets: chains of four on average when
            // full, half the bucket array of the kernel's one bucket per connection.
            table: ConnTable::with_counters(ConnConfig {
                buckets: (max / 2).max(64),
                ..ConnConfig::new(max.max(64))
            }),
            seq: ChangeSeq::default(),
            dump_marks_silent: AtomicBool::new(false),
        }
    }

    /// Whether connections that dumps insert from now on are flagged as possibly silent
    /// (the initial sync: they may predate every event listener; see `ct_silent`).
    pub(crate) fn set_dump_marks_silent(&self, on: bool) {
        self.dump_marks_silent.store(on, Ordering::Relaxed);
    }

    /// Whether some connection is still flagged as possibly silent (stops at the first one).
    pub(crate) fn any_silent(&self) -> bool {
        self.table.iter().any(|c| c.state().is_silent())
    }

    /// How many connections are flagged as possibly silent (a pass over the table).
    #[cfg(test)]
    pub(crate) fn silent_count(&self) -> usize {
        self.table.iter().filter(|c| c.state().is_silent()).count()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.table.count()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a `IPCTNL_MSG_CT_NEW` message (dump entry or new/update event). `merge_update`
    /// keeps stored attributes the message lacks (update events carry only what changed).
    /// An event: the connection reports itself, so it is not [silent](CtState::is_silent).
    pub(crate) fn upsert(&self, msg: &Message<'_>, gen: u64, merge_update: bool) -> bool {
        self.apply(msg, gen, merge_update, true)
    }

    /// [`upsert`](Self::upsert); `heard`: from an event (else from a dump, which keeps an
    /// existing entry's silent flag and gives a new one the flag if
    /// [`set_dump_marks_silent`](Self::set_dump_marks_silent) is on).
    fn apply(&self, msg: &Message<'_>, gen: u64, merge_update: bool, heard: bool) -> bool {
        let Some(info) = ct_info(msg) else {
            return false;
        };
        let silent = !heard && self.dump_marks_silent.load(Ordering::Relaxed);
        let norm = normalize(msg);
        if let Some(c) = self.table.get(&info.original) {
            if c.original() == info.original && info.reply.is_none_or(|r| r == c.reply()) {
                return self.update_in_place(&c, &info, norm, gen, merge_update, heard);
            }
            // Same tuple, other connection (a stale entry): replace it.
            let _w = self.seq.write();
            c.delete();
        }
        let Some(reply) = info.reply else {
            return false; // an update for a connection we never saw, without its reply tuple
        };
        let timeout = timeout_ms(&info).unwrap_or(NO_TIMEOUT_MS);
        let state = CtState::new(norm, &info.original, &reply, gen, info.timeout_off, silent);
        let _w = self.seq.write();
        let mut conn = NewConn::new(info.original, reply, timeout, state);
        conn.mark = info.mark.unwrap_or(0);
        match self.table.insert(conn) {
            Ok(_) => true,
            Err(ConnInsertError::Clash(_)) => {
                // A stale entry holds the reply tuple: drop it and try once more.
                self.table.remove(&reply);
                let state = CtState::new(
                    normalize(msg),
                    &info.original,
                    &reply,
                    gen,
                    info.timeout_off,
                    silent,
                );
                self.table
                    .insert(NewConn::new(info.original, reply, timeout, state))
                    .is_ok()
            }
            Err(e) => {
                tracing::debug!(error = ?e, "conntrack mirror insert refused");
                false
            }
        }
    }

    /// Dump fast path: inserts a dumped connection directly; falls back to
    /// [`upsert`](Self::upsert) when a tuple is already held.
    pub(crate) fn insert_dump(&self, msg: &Message<'_>, gen: u64) -> bool {
        let Some(info) = ct_info(msg) else {
            return false;
        };
        let Some(reply) = info.reply else {
            return false;
        };
        let state = CtState::new(
            normalize(msg),
            &info.original,
            &reply,
            gen,
            info.timeout_off,
            self.dump_marks_silent.load(Ordering::Relaxed),
        );
        let timeout = timeout_ms(&info).unwrap_or(NO_TIMEOUT_MS);
        let mut conn = NewConn::new(info.original, reply, timeout, state);
        conn.mark = info.mark.unwrap_or(0);
        let inserted = {
            let _w = self.seq.write();
            self.table.insert(conn)
        };
        match inserted {
            Ok(_) => true,
            Err(ConnInsertError::Clash(_)) => self.apply(msg, gen, false, false),
            Err(e) => {
                tracing::debug!(error = ?e, "conntrack mirror insert refused");
                false
            }
        }
    }

    /// Returns whether the connection changed in more than its `CTA_TIMEOUT` countdown.
    fn update_in_place(
        &self,
        c: &ConnRef<'_, CtState, NoCounters>,
        info: &CtInfo,
        norm: Vec<u8>,
        gen: u64,
        merge_update: bool,
        heard: bool,
    ) -> bool {
        let (orig, reply) = (c.original(), c.reply());
        let mut st = c.state();
        st.gen = st.gen.max(gen32(gen));
        if heard {
            st.timeout_off &= !SILENT;
        }
        let mut old = Vec::with_capacity(st.msg.len() + usize::from(st.dropped));
        unpack_into(&st.msg, st.dropped, &orig, &reply, &mut old);
        if old == norm {
            if let Some(t) = timeout_ms(info) {
                c.refresh(t);
            }
            return false;
        }
        let timeout_only = !merge_update
            && (same_but_timeout(&old, &norm, st.timeout_offset()) || same_connection(&old, &norm));
        let new = if merge_update {
            merge(&norm, &old)
        } else {
            norm
        };
        let off = Message::parse(&new)
            .ok()
            .and_then(|(m, _)| ct_info(&m))
            .and_then(|i| i.timeout_off);
        let new = CtState::new(new, &orig, &reply, u64::from(st.gen), off, st.is_silent());
        let _w = self.seq.write();
        *st = new;
        if let Some(t) = timeout_ms(info) {
            c.refresh(t);
        }
        if let Some(m) = info.mark {
            c.set_mark(m);
        }
        !timeout_only
    }

    /// Applies a destroy event (or a delete): removes the connection with this tuple.
    pub(crate) fn remove_msg(&self, msg: &Message<'_>) -> bool {
        let Some(info) = ct_info(msg) else {
            return false;
        };
        self.remove(&info.original)
    }

    /// Removes the connection with this tuple (either direction).
    pub(crate) fn remove(&self, tuple: &ConnKey) -> bool {
        if self.table.peek(tuple).is_none() && self.table.get(tuple).is_none() {
            return false;
        }
        let _w = self.seq.write();
        self.table.remove(tuple)
    }

    /// Appends the connection's message to `out`; its `CTA_TIMEOUT` is the kernel's as of
    /// its last report (event or verification dump).
    pub(crate) fn copy_msg(c: &ConnRef<'_, CtState, NoCounters>, out: &mut Vec<u8>) {
        let (orig, reply) = (c.original(), c.reply());
        let st = c.state();
        unpack_into(&st.msg, st.dropped, &orig, &reply, out);
    }

    /// The connections not confirmed at generation `gen` or later: their original tuple and
    /// message (what a sweep at `gen` would remove).
    pub(crate) fn unconfirmed(&self, gen: u64) -> Vec<(ConnKey, Vec<u8>)> {
        let mut v = Vec::new();
        for c in self.table.iter() {
            if c.state().gen < gen32(gen) {
                let mut b = Vec::new();
                Self::copy_msg(&c, &mut b);
                v.push((c.original(), b));
            }
        }
        v
    }

    /// Looks a connection up by either tuple and appends its message to `out`.
    pub fn get_into(&self, tuple: &ConnKey, out: &mut Vec<u8>) -> bool {
        match self.table.get(tuple) {
            Some(c) if !c.is_expired() => {
                Self::copy_msg(&c, out);
                true
            }
            _ => false,
        }
    }

    /// Removes connections not confirmed at generation `gen` or later.
    pub(crate) fn sweep(&self, gen: u64) -> usize {
        let _w = self.seq.write();
        self.table.remove_matching(|c| c.state().gen < gen32(gen))
    }

    /// Iterates over all connections (lock-free).
    pub fn iter(&self) -> nlkit_table::ConnIter<'_, CtState, NoCounters> {
        self.table.iter()
    }

    /// Approximate memory: table plus stored messages.
    pub fn memory_bytes(&self) -> usize {
        let msgs: usize = self.table.iter().map(|c| c.state().msg.len() + 16).sum();
        self.table.memory_bytes() + msgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::consts::*;
    use nlkit_wire::{MessageBuilder, NfGenMsg};

    #[test]
    fn merge_keeps_missing_attributes() {
        let mut b = MessageBuilder::new();
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            0,
            0,
        );
        b.header(&NfGenMsg::default());
        b.attr_be32(CTA_TIMEOUT, 30);
        b.attr_be32(CTA_MARK, 5);
        b.finish().unwrap();
        let old = b.as_bytes().to_vec();
        b.clear();
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            0,
            0,
        );
        b.header(&NfGenMsg::default());
        b.attr_be32(CTA_TIMEOUT, 60);
        b.finish().unwrap();
        let m = merge(b.as_bytes(), &old);
        let (msg, _) = Message::parse(&m).unwrap();
        let (_, attrs) = msg.family_header::<NfGenMsg>().unwrap();
        let got: Vec<(u16, u32)> = attrs
            .map(|a| a.unwrap())
            .map(|a| (a.ty(), a.be32().unwrap()))
            .collect();
        assert_eq!(got, vec![(CTA_TIMEOUT, 60), (CTA_MARK, 5)]);
    }

    fn ct_msg(attrs: &[(u16, u32)]) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            0,
            0,
        );
        b.header(&NfGenMsg::default());
        for &(ty, v) in attrs {
            b.attr_be32(ty, v);
        }
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    #[test]
    fn a_dump_adding_use_and_zero_mark_is_no_change() {
        // A kernel NEW event: status and timeout, no CTA_USE, no zero CTA_MARK.
        let event = ct_msg(&[(CTA_STATUS, 8), (CTA_TIMEOUT, 30)]);
        // The verification dump's message for the same connection.
        let dump = ct_msg(&[
            (CTA_STATUS, 8),
            (CTA_TIMEOUT, 29),
            (CTA_MARK, 0),
            (CTA_USE, 1),
        ]);
        assert!(same_connection(&event, &dump));
        // A real change: a mark set, or another status.
        assert!(!same_connection(
            &event,
            &ct_msg(&[(CTA_STATUS, 8), (CTA_MARK, 5)])
        ));
        assert!(!same_connection(
            &event,
            &ct_msg(&[(CTA_STATUS, 10), (CTA_USE, 1)])
        ));
        // Bytes that are no message are never "the same".
        assert!(!same_connection(&event, &[1, 2, 3]));
    }

    /// A ctnetlink message for a TCP connection from port `sport`, with a timeout.
    fn tcp_msg(sport: u16, timeout: u32) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            0,
            0,
        );
        b.header(&NfGenMsg {
            family: AF_INET,
            version: NFNETLINK_V0,
            res_id: 0,
        });
        let (a, c) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = nlkit_conntrack::Tuple::with_ports(IPPROTO_TCP, a, sport, c, 80);
        t.write(&mut b, CTA_TUPLE_ORIG);
        t.reversed().write(&mut b, CTA_TUPLE_REPLY);
        b.attr_be32(CTA_TIMEOUT, timeout);
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    fn first(b: &[u8]) -> Message<'_> {
        Message::parse(b).unwrap().0
    }

    #[test]
    fn silent_flag_set_by_marked_dumps_cleared_by_events() {
        let ct = CtStore::new(1024);
        let (m1, m2) = (tcp_msg(1000, 30), tcp_msg(1001, 30));
        ct.set_dump_marks_silent(true);
        assert!(ct.insert_dump(&first(&m1), 1));
        assert!(ct.insert_dump(&first(&m2), 1));
        assert_eq!(ct.silent_count(), 2);
        ct.set_dump_marks_silent(false);
        // A later dump (changed timeout) keeps the flag, and the timeout offset is intact.
        let m1b = tcp_msg(1000, 20);
        ct.insert_dump(&first(&m1b), 2);
        assert_eq!(ct.silent_count(), 2);
        let t = ct_info(&first(&m1)).unwrap().original;
        let off = ct.table.get(&t).unwrap().state().timeout_offset();
        assert_eq!(&m1b[off..off + 4], &20u32.to_be_bytes());
        // An event clears it; the stored message is the event's.
        ct.upsert(&first(&m1), 3, false);
        assert_eq!(ct.silent_count(), 1);
        assert!(ct.any_silent());
        let mut out = Vec::new();
        assert!(ct.get_into(&t, &mut out));
        assert_eq!(out, m1);
        ct.upsert(&first(&m2), 3, true);
        assert!(!ct.any_silent());
        // A dump while not marking inserts unflagged connections.
        assert!(ct.insert_dump(&first(&tcp_msg(1002, 30)), 4));
        assert_eq!(ct.silent_count(), 0);
    }
}
