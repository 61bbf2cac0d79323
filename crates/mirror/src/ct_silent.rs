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
//! after that reports itself. Those found by the initial dump may predate every listener: the
//! initial dump flags each connection it inserts ([`CtStore::set_dump_marks_silent`]; one bit
//! in the entry, no memory of its own), and any event for a connection clears its flag (it
//! has the extension). While some flagged connection is still in the table, the sync thread
//! re-dumps conntrack every [`SilentConns::due`] (ten times the last dump's duration, between
//! [`MIN_INTERVAL`] and [`MAX_INTERVAL`]: about 12 s for a million entries); the re-dump's
//! sweep removes what the kernel deleted silently, so such a deletion leaves the mirror within
//! one interval plus one dump. Once no flagged connection is left the re-dumps stop (the
//! periodic verification dump, `MirrorConfig::ct_verify_interval`, still runs).
//!
//! Owned by the sync thread; no sharing.

use std::time::{Duration, Instant};

use crate::conn::CtStore;

/// Shortest interval between verification re-dumps.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest interval between verification re-dumps.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// A re-dump every this many times its own duration (at most ~10% of the sync thread's time).
const INTERVAL_FACTOR: u32 = 10;

/// When the next re-dump for connections that may be silent is due (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SilentConns {
    /// When the next verification re-dump is due (`None`: none needed).
    next: Option<Instant>,
}

fn interval(dump_time: Duration) -> Duration {
    dump_time
        .saturating_mul(INTERVAL_FACTOR)
        .clamp(MIN_INTERVAL, MAX_INTERVAL)
}

impl SilentConns {
    /// Before the initial dump: flag the connections it inserts.
    pub(crate) fn before_initial_dump(&self, ct: &CtStore) {
        ct.set_dump_marks_silent(true);
    }

    /// Right after the initial sync (which took `dump_time`): stops flagging, and schedules
    /// a re-dump if some connection is flagged.
    pub(crate) fn seed(&mut self, ct: &CtStore, dump_time: Duration) {
        ct.set_dump_marks_silent(false);
        self.schedule(ct, dump_time);
        if self.next.is_some() {
            tracing::debug!(
                connections = ct.len(),
                "conntrack entries older than the mirror: re-dumping until they are gone"
            );
        }
    }

    /// A conntrack dump (taking `dump_time`) was applied and swept: schedules the next
    /// re-dump if some flagged connection remains. (Called after the initial dump too,
    /// before [`seed`](Self::seed), when nothing is scheduled yet.)
    pub(crate) fn after_dump(&mut self, ct: &CtStore, dump_time: Duration) {
        if self.next.is_some() {
            self.schedule(ct, dump_time);
        }
    }

    fn schedule(&mut self, ct: &CtStore, dump_time: Duration) {
        self.next = if ct.any_silent() {
            Instant::now().checked_add(interval(dump_time))
        } else {
            None
        };
    }

    /// When the next verification re-dump is due; `None` when no connection may be silent.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next
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
        let ct = CtStore::new(1024).unwrap();
        let mut s = SilentConns::default();
        s.before_initial_dump(&ct);
        s.seed(&ct, Duration::from_millis(1));
        assert_eq!(ct.silent_count(), 0);
        assert!(s.due().is_none());
    }
}
