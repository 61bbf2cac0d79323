//! The change feed: one bounded in-memory log of every change the mirror applies, across all
//! tables, served to subscribers (see `nlkit_wire::feed` for the wire format).
//!
//! * **Positions.** Each change gets the next position (from 1) of one sequence across all
//!   tables; a mirror start draws a random **epoch**, so a position of another run is
//!   recognised as stale.
//! * **Bounds.** The log keeps at most [`MirrorConfig::feed_max_events`] entries and
//!   [`MirrorConfig::feed_max_bytes`] bytes of messages (the smaller bound wins); the oldest
//!   entries are dropped first.
//! * **Writers.** Changes come from the sync thread (events, sweeps) and, during a resync,
//!   its dump threads. Each change is made through a [`FeedWriter`]: the log lock is taken,
//!   the table is written, the change is appended, the lock is released. So a change is in
//!   the tables before it is in the feed, and — what the snapshot relies on — whoever takes
//!   the lock sees every table change that is visible at that moment already in the log.
//!   Before the first subscriber can exist (the initial sync) nothing is recorded and no
//!   lock is taken.
//! * **Readers.** Server threads copy batches out under the lock (a copy of at most one
//!   datagram, ~32 KiB, per hold: microseconds), so neither side waits long for the other.
//!   A `Mutex` around a `VecDeque` rather than a lock-free ring: the writer must hold it
//!   across the table write anyway (see above), readers copy out, and the hold times are
//!   short on both sides.
//! * **Wake-ups.** [`Feed::notify`] writes an eventfd when the head advanced since the last
//!   notification; the server's epoll thread waits on it.
//! * **The shared ring.** Each change is also appended to a `nlkit_shm::FeedRing` in the
//!   tables' shared region (published under `nlkit_view::schema::FEED_OBJECT`, its stamp the
//!   epoch), at the same position and with the same bytes, tagged with a
//!   `nlkit_view::schema::FeedTag`; [`Feed::notify`], called once per batch the sync thread
//!   applies, publishes what was appended (one store and one `FUTEX_WAKE` per batch, however
//!   many clients map the ring). A change too large for the ring is appended without its
//!   bytes, flagged truncated, so positions stay equal.
//!
//! Concurrency contract: `epoch`, the bounds, `wake` and `ring` (set by `attach_ring` before
//! the feed is shared) are immutable after construction; `log` (entries, byte count, head) is
//! protected by its mutex, and the ring is appended to only under it (so in position order); `head` mirrors `log.head`
//! (stored under the lock, `Release`; read lock-free as a hint); `wseq` is odd while a writer
//! holds the lock (`SeqCst` increments on taking and before releasing it): a reader that read a
//! table entry and then sees `wseq` even and unchanged since its last catch-up knows the
//! entry's change, if any, is already in the log; `recording` is set once (`Release`) when the
//! initial sync is done.
//!
//! [`MirrorConfig::feed_max_events`]: crate::MirrorConfig::feed_max_events
//! [`MirrorConfig::feed_max_bytes`]: crate::MirrorConfig::feed_max_bytes

pub(crate) mod capture;
pub(crate) mod key;
pub(crate) mod snapshot;
pub(crate) mod subscriber;

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nlkit_shm::{FeedRing, Region, ShmError};
use nlkit_view::schema::{FeedKind, FeedTag, FEED_OBJECT};
use nlkit_wire::consts::{IPCTNL_MSG_CT_DELETE, NFNL_SUBSYS_CTNETLINK};
use nlkit_wire::feed::FEED_SYNTHESIZED;
use parking_lot::{Mutex, MutexGuard};
use rustix::event::{eventfd, EventfdFlags};
use std::sync::Arc;

use crate::tables::TableId;

/// Per-entry overhead counted against the byte bound (the entry and its allocation).
const ENTRY_OVERHEAD: usize = 48;

/// One change in the log.
#[derive(Debug)]
pub(crate) struct FeedEntry {
    pub pos: u64,
    pub table: TableId,
    /// `nlkit_wire::feed::FEED_*` bits (only `FEED_SYNTHESIZED` is stored).
    pub flags: u32,
    /// The kernel-format message(s): headers with sequence number and port id zeroed, the
    /// kernel's flags kept.
    pub msgs: Box<[u8]>,
}

#[derive(Debug, Default)]
pub(crate) struct Log {
    entries: VecDeque<FeedEntry>,
    bytes: usize,
    head: u64,
}

impl Log {
    /// The newest position (0: none yet).
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// The oldest position still held (`head + 1` when empty).
    pub(crate) fn first(&self) -> u64 {
        self.entries.front().map_or(self.head + 1, |e| e.pos)
    }

    /// The entries after `pos` (an empty iterator if `pos` is at or past the head).
    pub(crate) fn after(&self, pos: u64) -> impl Iterator<Item = &FeedEntry> {
        let first = self.first();
        let skip = pos.saturating_add(1).saturating_sub(first);
        self.entries
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }
}

/// The feed (see the module docs).
pub(crate) struct Feed {
    epoch: u64,
    max_events: usize,
    max_bytes: usize,
    log: Mutex<Log>,
    head: AtomicU64,
    wseq: AtomicU64,
    recording: AtomicBool,
    notified: AtomicU64,
    wake: OwnedFd,
    /// The ring clients map (`None` in unit tests).
    ring: Option<FeedRing>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("epoch", &self.epoch)
            .field("head", &self.head())
            .finish()
    }
}

/// A random epoch (from `/dev/urandom`; mixed with the clock and pid if that fails).
fn random_epoch() -> u64 {
    let mut b = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    let mut e = u64::from_ne_bytes(b);
    if !ok {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        e = now ^ u64::from(std::process::id()).rotate_left(32);
    }
    e.max(1)
}

impl Feed {
    /// An empty feed with a fresh epoch, not yet recording.
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> std::io::Result<Feed> {
        Ok(Feed {
            epoch: random_epoch(),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(4096),
            log: Mutex::new(Log::default()),
            head: AtomicU64::new(0),
            wseq: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            notified: AtomicU64::new(0),
            wake: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
            ring: None,
        })
    }

    /// Allocates the feed's ring of `bytes` in `region`, stamps it with the epoch and
    /// publishes it in the region's directory under [`FEED_OBJECT`]. Before recording starts.
    pub(crate) fn attach_ring(&mut self, region: &Arc<Region>, bytes: u64) -> Result<(), ShmError> {
        let ring = FeedRing::create_at(region.clone(), bytes, self.head() + 1)?;
        ring.set_stamp(self.epoch);
        region.publish(FEED_OBJECT, ring.offset())?;
        self.ring = Some(ring);
        Ok(())
    }

    /// Appends change `pos` to the ring (under the log's lock, so in position order).
    fn ring_append(&self, pos: u64, table: TableId, flags: u32, msgs: &[u8]) {
        let Some(ring) = &self.ring else {
            return;
        };
        let mut tag = FeedTag {
            table,
            kind: change_kind(table, msgs),
            synthesized: flags & FEED_SYNTHESIZED != 0,
            truncated: false,
            epoch: self.epoch as u32,
        };
        let r = ring.append(tag.to_word(), msgs).or_else(|e| {
            if !matches!(e, ShmError::TooLarge(_)) {
                tracing::warn!(error = %e, pos, "feed ring append failed; appended truncated");
            }
            tag.truncated = true;
            ring.append(tag.to_word(), &[])
        });
        match r {
            Ok(p) if p == pos => {}
            other => tracing::error!(?other, pos, "feed ring out of step with the feed"),
        }
    }

    /// This mirror's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The newest position (lock-free hint).
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Starts recording (after the initial sync).
    pub(crate) fn start_recording(&self) {
        self.recording.store(true, Ordering::Release);
    }

    /// Whether changes are recorded.
    pub(crate) fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Acquire)
    }

    /// The writer-activity word (see the concurrency contract).
    pub(crate) fn wseq(&self) -> u64 {
        self.wseq.load(Ordering::SeqCst)
    }

    /// Takes the log for one change (or several applied together): write the tables, then
    /// [`push`](FeedWriter::push). Not recording: a no-op writer, no lock.
    pub(crate) fn writer(&self) -> FeedWriter<'_> {
        if !self.is_recording() {
            return FeedWriter {
                feed: self,
                log: None,
            };
        }
        let log = self.log.lock();
        self.wseq.fetch_add(1, Ordering::SeqCst);
        FeedWriter {
            feed: self,
            log: Some(log),
        }
    }

    /// The log, for readers: hold it only to copy out.
    pub(crate) fn read(&self) -> MutexGuard<'_, Log> {
        self.log.lock()
    }

    /// The descriptor readable when the head advanced (an eventfd: read it to re-arm).
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Clears the wake-up descriptor.
    pub(crate) fn clear_wake(&self) {
        let mut n = [0u8; 8];
        let _ = rustix::io::read(&self.wake, &mut n);
    }

    /// Publishes the ring's new entries (waking the clients waiting on it) and wakes the
    /// server if the head advanced since the last notification: once per batch of changes.
    pub(crate) fn notify(&self) {
        if let Some(ring) = &self.ring {
            ring.publish();
        }
        let head = self.head();
        if self.notified.swap(head, Ordering::AcqRel) != head {
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
    }
}

/// The log held for one change (see [`Feed::writer`]).
pub(crate) struct FeedWriter<'a> {
    feed: &'a Feed,
    log: Option<MutexGuard<'a, Log>>,
}

impl FeedWriter<'_> {
    /// Whether pushes are recorded (so callers can skip building messages).
    pub(crate) fn recording(&self) -> bool {
        self.log.is_some()
    }

    /// Appends a change: `msgs` are whole messages whose headers get sequence number and port
    /// id zeroed.
    pub(crate) fn push(&mut self, table: TableId, flags: u32, mut msgs: Vec<u8>) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        zero_seq_pid(&mut msgs);
        let pos = log.head + 1;
        log.head = pos;
        self.feed.ring_append(pos, table, flags, &msgs);
        log.bytes += msgs.len() + ENTRY_OVERHEAD;
        log.entries.push_back(FeedEntry {
            pos,
            table,
            flags,
            msgs: msgs.into_boxed_slice(),
        });
        while log.entries.len() > self.feed.max_events
            || (log.bytes > self.feed.max_bytes && log.entries.len() > 1)
        {
            if let Some(e) = log.entries.pop_front() {
                log.bytes -= e.msgs.len() + ENTRY_OVERHEAD;
            }
        }
        self.feed.head.store(pos, Ordering::Release);
    }
}

impl Drop for FeedWriter<'_> {
    fn drop(&mut self) {
        if self.log.is_some() {
            self.feed.wseq.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Whether `msgs` (one change's messages) add or change an object, or remove it: from the
/// first message's type (`RTM_DEL*` are `RTM_NEW* + 1`, `IPCTNL_MSG_CT_DELETE` for conntrack).
fn change_kind(table: TableId, msgs: &[u8]) -> FeedKind {
    let ty = msgs
        .get(4..6)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]));
    let del = if table == TableId::Conntrack {
        ty == nlkit_wire::consts::nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE)
    } else {
        ty & 3 == 1
    };
    if del {
        FeedKind::Del
    } else {
        FeedKind::New
    }
}

/// Zeroes the sequence number and port id of every message in `msgs` (flags are kept: they
/// tell `NLM_F_CREATE`/`NLM_F_REPLACE`/`NLM_F_APPEND` apart, as on the kernel's events).
pub(crate) fn zero_seq_pid(msgs: &mut [u8]) {
    // A walk stopped by a malformed length leaves the rest as it was (the messages are the
    // kernel's, validated when they were stored).
    let _ = nlkit_wire::MessageHeaderMut::for_each(msgs, |_, mut h| {
        h.set_seq(0);
        h.set_pid(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::MessageBuilder;

    fn msg(ty: u16) -> Vec<u8> {
        let mut b = nlkit_wire::MessageBuilder::new();
        b.begin(ty, 0, 9);
        b.raw(&[0; 8]);
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    #[test]
    fn bounded_by_events_and_bytes() {
        let f = Feed::new(3, 1 << 20).unwrap();
        f.writer().push(TableId::Links, 0, msg(16)); // not recording yet
        assert_eq!(f.head(), 0);
        f.start_recording();
        for _ in 0..5 {
            f.writer().push(TableId::Links, 0, msg(16));
        }
        let log = f.read();
        assert_eq!((log.first(), log.head()), (3, 5));
        assert_eq!(log.after(3).map(|e| e.pos).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(log.after(0).count(), 3);
        assert_eq!(log.after(5).count(), 0);
        drop(log);
        assert_eq!(f.wseq() % 2, 0);
        let g = Feed::new(100, 4096).unwrap();
        g.start_recording();
        for _ in 0..200 {
            g.writer().push(TableId::Links, 0, msg(16));
        }
        let log = g.read();
        assert!(log.entries.len() < 100 && log.bytes <= 4096);
        assert_eq!(log.head(), 200);
    }

    #[test]
    fn ring_gets_every_change_at_its_position() {
        let region = Arc::new(Region::create("feed-unit").unwrap());
        let mut f = Feed::new(100, 1 << 20).unwrap();
        f.attach_ring(&region, 4096).unwrap();
        f.start_recording();
        let mut big = MessageBuilder::new();
        big.begin(17, 0, 9); // RTM_DELLINK
        big.raw(&[0; 2000]); // more than a quarter of the ring
        big.finish().unwrap();
        f.writer().push(TableId::Links, 0, msg(16));
        f.writer()
            .push(TableId::Links, FEED_SYNTHESIZED, big.as_bytes().to_vec());
        let view = nlkit_shm::RegionView::map(region.fd().try_clone_to_owned().unwrap()).unwrap();
        let r = nlkit_shm::FeedReader::open(&view, view.find(FEED_OBJECT).unwrap()).unwrap();
        assert_eq!(r.stamp().unwrap(), f.epoch());
        assert_eq!(r.next_pos().unwrap(), 1, "published only by notify");
        f.notify();
        assert_eq!(r.next_pos().unwrap(), 3);
        let mut out = Vec::new();
        let e = r.read(1, &mut out).unwrap().unwrap();
        let tag = FeedTag::from_word(e.tag).unwrap();
        assert_eq!(
            (tag.table, tag.kind, tag.synthesized),
            (TableId::Links, FeedKind::New, false)
        );
        assert_eq!(out, f.read().after(0).next().unwrap().msgs.as_ref());
        out.clear();
        let e = r.read(2, &mut out).unwrap().unwrap();
        let tag = FeedTag::from_word(e.tag).unwrap();
        assert_eq!(
            (tag.kind, tag.synthesized, tag.truncated, e.len),
            (FeedKind::Del, true, true, 0)
        );
        assert_eq!(tag.epoch, f.epoch() as u32);
    }
}
