//! Event counters and the change stamp.

use crate::sync::{AtomicU64, Ordering};

/// Counters of rare events, updated with `Relaxed` adds off the hot path.
#[derive(Default)]
pub(crate) struct RawStats {
    pub(crate) restarts: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) chain_too_long: AtomicU64,
    pub(crate) early_drop: AtomicU64,
    pub(crate) gc_expired: AtomicU64,
    pub(crate) full: AtomicU64,
}

impl RawStats {
    pub(crate) fn snapshot(&self) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            search_restart: l(&self.restarts),
            recycled: l(&self.recycled),
            insert_failed: 0, // summed from the stripes by `RawTable::stats`
            chain_too_long: l(&self.chain_too_long),
            early_drop: l(&self.early_drop),
            gc_expired: l(&self.gc_expired),
            full: l(&self.full),
        }
    }
}

/// A snapshot of a table's event counters (named after the kernel's conntrack stats).
///
/// ```
/// use nlkit_table::NullsTable;
/// let t: NullsTable<u64, ()> = NullsTable::new(4);
/// t.insert(1, ()).unwrap();
/// assert!(t.insert(1, ()).is_err());
/// assert_eq!(t.stats().insert_failed, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups restarted: a walk ended on another bucket's nulls marker, or a candidate failed
    /// validation.
    pub search_restart: u64,
    /// A reference was taken on a candidate that turned out to be recycled, unhashed or dying.
    pub recycled: u64,
    /// Inserts refused because the key (or either tuple) already existed.
    pub insert_failed: u64,
    /// Inserts refused because a chain was longer than the randomised cap.
    pub chain_too_long: u64,
    /// Entries evicted early because the table was full.
    pub early_drop: u64,
    /// Entries deleted by garbage collection or lookups because they had expired.
    pub gc_expired: u64,
    /// Inserts refused because the table was full.
    pub full: u64,
}

/// A stamp of a table's change counters, for detecting that an iteration overlapped a change
/// (the mirror sets `NLM_F_DUMP_INTR` when it did).
///
/// Each lock stripe counts the chain mutations made under it; the stamp is their sum. The
/// counters only grow, so equal stamps mean no insert, delete or replace completed in
/// between. Iteration visits each bucket under its stripe lock, so a dump is consistent if
/// the stamps taken before and after it are equal.
///
/// ```
/// use nlkit_table::NullsTable;
/// let t: NullsTable<u64, u64> = NullsTable::new(8);
/// t.insert(1, 10).unwrap();
/// let before = t.change_stamp();
/// let dump: Vec<u64> = t.iter().map(|e| *e).collect();
/// assert_eq!(dump, vec![10]);
/// assert_eq!(t.change_stamp(), before); // consistent dump
/// t.remove(&1);
/// assert_ne!(t.change_stamp(), before);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp(pub(crate) u64);

impl ChangeStamp {
    /// The raw counter sum.
    pub fn value(self) -> u64 {
        self.0
    }
}
