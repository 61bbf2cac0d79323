//! [`SilentConns`]: conntrack connections the kernel may never report, and the re-dumps that
//! keep them honest.
//!
//! Kernel fact (`nf_conntrack_ecache.c`, `nf_ct_ecache_ext_add`): a connection sends events
//! only if it got the event-cache extension when it was created, and with
//! `net.netfilter.nf_conntrack_events = 2` (the default, "autodetect") it gets one only if a
//! socket somewhere on the host was subscribed to a ctnetlink event group at that moment (the
//! kernel's `nf_ctnetlink_has_listener` is global, not per namespace); with 0 no connection gets
//! one. A connection without it is deleted, flushed or expires without a `DESTROY` event, and
//! none of its updates are reported. An extension cannot be added later.
//!
//! The mirror joins its conntrack groups before its first dump, so every connection created
//! after that reports itself. Those found by the initial dump may predate every listener: their
//! original tuples (hashed, 8 bytes each) are kept here. A connection leaves the set when an
//! event for it arrives (it has the extension) or when it is no longer in the mirror's table.
//! While the set is not empty, the sync thread re-dumps conntrack every [`SilentConns::due`]
//! (ten times the last dump's duration, between [`MIN_INTERVAL`] and [`MAX_INTERVAL`]); the
//! re-dump's sweep removes what the kernel deleted silently. Once every such connection is
//! gone the re-dumps stop.
//!
//! Owned by the sync thread; no sharing.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use nlkit_table::ConnKey;
use nlkit_wire::consts::*;
use nlkit_wire::Message;

use crate::conn::CtStore;
use crate::keys::ct_info;

/// Shortest interval between verification re-dumps.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest interval between verification re-dumps.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// A re-dump every this many times its own duration (at most ~10% of the sync thread's time).
const INTERVAL_FACTOR: u32 = 10;

/// Connections of the initial dump not yet known to send events (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SilentConns {
    /// Hashes of their original tuples.
    tuples: HashSet<u64>,
    /// When the next verification re-dump is due (`None`: none needed).
    next: Option<Instant>,
}

fn key(t: &ConnKey) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

fn interval(dump_time: Duration) -> Duration {
    dump_time
        .saturating_mul(INTERVAL_FACTOR)
        .clamp(MIN_INTERVAL, MAX_INTERVAL)
}

impl SilentConns {
    /// Records every connection now in `ct` (right after the initial dump, which took
    /// `dump_time`).
    pub(crate) fn seed(&mut self, ct: &CtStore, dump_time: Duration) {
        self.tuples = ct.iter().map(|c| key(&c.original())).collect();
        self.schedule(dump_time);
        if !self.tuples.is_empty() {
            tracing::debug!(
                connections = self.tuples.len(),
                "conntrack entries older than the mirror: re-dumping until they are gone"
            );
        }
    }

    /// An event for the connection in `m` arrived: it reports itself. (A re-dump already
    /// scheduled still runs once; its [`after_dump`](Self::after_dump) schedules no other.)
    pub(crate) fn heard(&mut self, m: &Message<'_>) {
        if self.tuples.is_empty() || m.ty() >> 8 != u16::from(NFNL_SUBSYS_CTNETLINK) {
            return;
        }
        if let Some(info) = ct_info(m) {
            self.tuples.remove(&key(&info.original));
            if let Some(r) = info.reply {
                self.tuples.remove(&key(&r));
            }
        }
    }

    /// A conntrack dump (taking `dump_time`) was applied and swept: forgets connections no
    /// longer in `ct`, and schedules the next re-dump if some remain.
    pub(crate) fn after_dump(&mut self, ct: &CtStore, dump_time: Duration) {
        if !self.tuples.is_empty() {
            let present: HashSet<u64> = ct.iter().map(|c| key(&c.original())).collect();
            self.tuples.retain(|k| present.contains(k));
        }
        // Also when events emptied the set since: no re-dump is due any more.
        self.schedule(dump_time);
    }

    fn schedule(&mut self, dump_time: Duration) {
        self.next = if self.tuples.is_empty() {
            self.tuples = HashSet::new(); // give the memory back
            None
        } else {
            Instant::now().checked_add(interval(dump_time))
        };
    }

    /// When the next verification re-dump is due; `None` when no connection may be silent.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next
    }

    /// How many connections may still be silent.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tuples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_bounded() {
        assert_eq!(interval(Duration::ZERO), MIN_INTERVAL);
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(20));
        assert_eq!(interval(Duration::from_secs(3600)), MAX_INTERVAL);
    }

    #[test]
    fn empty_needs_no_redump() {
        let ct = CtStore::new(1024);
        let mut s = SilentConns::default();
        s.seed(&ct, Duration::from_millis(1));
        assert_eq!(s.len(), 0);
        assert!(s.due().is_none());
    }
}
