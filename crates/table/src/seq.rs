//! [`ChangeSeq`]: a table's change sequence count, for lock-free dump consistency with any
//! number of writers (the mirror keeps one per table; checked by `tests/loom_seq.rs`).
//!
//! The kernel's FIB used a plain counter and got the race the RTNL talk describes (a dump can
//! start between "entry linked" and "counter bumped" and finish before the bump). A seqcount
//! closes it, but a classic odd/even seqcount allows one writer at a time, and a resync fills a
//! table from a receive thread while the sync thread may sweep it. So this counts writes twice:
//! `begun` before a write starts and `ended` after it completes.
//!
//! A reader takes a [`SeqSnapshot`] (loads `ended`, then `begun`); the snapshot is *clean* when
//! the two were equal (no write in flight). A pass over the table is consistent when the
//! snapshot was clean and `begun` has not moved since: no write was in flight at the start and
//! none started during the pass.

use crate::sync::{fence, AtomicU64, Ordering};

/// Change sequence count of one mirror table.
///
/// Concurrency contract: any number of writers and readers. Writers bracket every change with
/// [`ChangeSeq::write`] (a guard); `begun` is incremented before the change is made visible
/// (`Release` fence after the increment orders it before the table stores), and `ended` with
/// `Release` after. Readers load `ended` then `begun` with `Acquire`, and re-load `begun` after
/// an `Acquire` fence at the end of their pass.
///
/// ```
/// use nlkit_table::ChangeSeq;
/// let seq = ChangeSeq::default();
/// let snap = seq.snapshot();
/// assert!(!seq.changed_since(snap));
/// drop(seq.write());
/// assert!(seq.changed_since(snap));
/// assert_eq!(seq.changes(), 1);
/// ```
#[derive(Debug, Default)]
pub struct ChangeSeq {
    begun: AtomicU64,
    ended: AtomicU64,
}

/// A reader's view of a [`ChangeSeq`] at the start of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqSnapshot {
    begun: u64,
    clean: bool,
}

/// Marks a write in progress; dropping it completes the write.
#[derive(Debug)]
pub struct WriteGuard<'a>(&'a ChangeSeq);

impl SeqSnapshot {
    /// Whether no write was in flight when the snapshot was taken.
    pub fn is_clean(&self) -> bool {
        self.clean
    }
}

impl ChangeSeq {
    /// Starts a write: the returned guard must live until the change is fully applied.
    pub fn write(&self) -> WriteGuard<'_> {
        self.begun.fetch_add(1, Ordering::Relaxed);
        // Orders the increment before the table stores that follow.
        fence(Ordering::Release);
        WriteGuard(self)
    }

    /// Takes a snapshot at the start of a reading pass.
    pub fn snapshot(&self) -> SeqSnapshot {
        let ended = self.ended.load(Ordering::Acquire);
        let begun = self.begun.load(Ordering::Acquire);
        SeqSnapshot {
            begun,
            clean: begun == ended,
        }
    }

    /// Whether a write was in flight at `snap` or has started since.
    ///
    /// (See also [`SeqSnapshot::is_clean`].)
    pub fn changed_since(&self, snap: SeqSnapshot) -> bool {
        fence(Ordering::Acquire);
        !snap.clean || self.begun.load(Ordering::Relaxed) != snap.begun
    }

    /// Number of writes started so far (a monotonic change counter).
    pub fn changes(&self) -> u64 {
        self.begun.load(Ordering::Relaxed)
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_write_makes_snapshot_dirty() {
        let s = ChangeSeq::default();
        let g = s.write();
        let snap = s.snapshot();
        assert!(s.changed_since(snap));
        drop(g);
        let snap = s.snapshot();
        assert!(!s.changed_since(snap));
    }
}
