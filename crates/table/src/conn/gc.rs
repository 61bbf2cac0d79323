//! Incremental garbage collection and early drop, after the kernel's `gc_worker` and
//! `early_drop`.
//!
//! The kernel's gc worker walks hash buckets because its entries are scattered slab objects.
//! Ours live in contiguous slot chunks, so the collector scans slots in index order instead:
//! a sequential memory walk the CPU prefetches, where a bucket walk takes a cache miss per
//! entry. Each connection has one slot, so a pass still visits every connection once; a
//! candidate is pinned and rechecked before it is deleted, exactly as in a bucket walk.

use std::time::{Duration, Instant};

use super::{status, ConnCounters, ConnTable};
use crate::clock::expired;
use crate::raw::is_live;
use crate::sync::Ordering;

/// Buckets scanned by early drop (`NF_CT_EVICTION_RANGE`).
const EVICTION_RANGE: u32 = 8;
/// Bias of the running mean of remaining timeouts (`GC_SCAN_INITIAL_COUNT`).
const INITIAL_COUNT: u64 = 100;
const INTERVAL_MIN: Duration = Duration::from_secs(1);
const INTERVAL_MAX: Duration = Duration::from_secs(60);
/// Timeouts longer than this count as this much in the mean (kernel: 300 s).
const TIMEOUT_CLAMP_MS: u64 = 300_000;

/// Where the incremental collector left off. Protected by `ConnTable::gc`.
#[derive(Debug)]
pub(crate) struct GcCursor {
    next_slot: u32,
    avg_remaining_ms: u64,
    samples: u64,
}

impl Default for GcCursor {
    fn default() -> Self {
        Self {
            next_slot: 0,
            avg_remaining_ms: INTERVAL_MAX.as_millis() as u64,
            samples: INITIAL_COUNT,
        }
    }
}

/// Limits of one [`ConnTable::gc_step`].
///
/// ```
/// use nlkit_table::GcBudget;
/// let b = GcBudget::default();
/// assert_eq!(b.max_time.as_millis(), 10);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GcBudget {
    /// At most this many slots examined.
    pub max_scanned: u32,
    /// At most this long (checked every 256 slots; kernel: 10 ms).
    pub max_time: Duration,
    /// Stop after deleting this many (kernel: 64000/HZ).
    pub max_expired: u32,
}

impl Default for GcBudget {
    fn default() -> Self {
        Self {
            max_scanned: u32::MAX,
            max_time: Duration::from_millis(10),
            max_expired: 64_000,
        }
    }
}

/// What one [`ConnTable::gc_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Slots examined (each live connection has one).
    pub scanned: u32,
    /// Expired connections deleted.
    pub expired: u32,
    /// Non-assured connections deleted because the table was over 95 % full.
    pub early_dropped: u32,
    /// The scan reached the end of the table (the next step starts from slot 0).
    pub pass_complete: bool,
    /// When to run the next step: zero if the budget ran out mid-pass, otherwise the running
    /// mean of remaining timeouts clamped to 1–60 s (the kernel's adaptive interval).
    pub next_run: Duration,
}

impl<S: Default + Send, C: ConnCounters> ConnTable<S, C> {
    /// Runs one step of garbage collection: scans slots lock-free, in index order, from where
    /// the last step stopped, deleting expired connections (and, above 95 % of `max`,
    /// non-assured ones), within `budget`.
    ///
    /// ```
    /// use nlkit_table::{Clock, ConnConfig, ConnTable, GcBudget, ManualClock, NewConn, ConnKey};
    /// let clock = ManualClock::new(0);
    /// let t: ConnTable = ConnTable::new(ConnConfig::new(64).with_clock(Clock::Manual(clock.clone())));
    /// for p in 0..10u16 {
    ///     let a = ConnKey::new("10.0.0.1".parse().unwrap(), p, "10.0.0.2".parse().unwrap(), 80, 6);
    ///     t.insert(NewConn::new(a, a.reverse(), if p < 3 { 100 } else { 100_000 }, ())).unwrap();
    /// }
    /// clock.advance(200);
    /// let r = t.gc_step(GcBudget::default());
    /// assert!(r.pass_complete);
    /// assert_eq!((r.expired, t.count()), (3, 7));
    /// ```
    pub fn gc_step(&self, budget: GcBudget) -> GcReport {
        let mut cur = self.gc.lock();
        let start = Instant::now();
        let now = self.now_ms();
        let max95 = (self.max as u64 * 95 / 100) as usize;
        let mut over = self.count() > max95;
        let mut report = GcReport::default();
        // Slots created so far; slots created during the step wait for the next pass.
        let end = self.raw.arena.created();
        let (mut sum, mut samples) = (0u64, 0u64);
        while report.scanned < budget.max_scanned && report.expired < budget.max_expired {
            if cur.next_slot >= end {
                cur.next_slot = 0;
                report.pass_complete = true;
                break;
            }
            if report.scanned % 256 == 255 && start.elapsed() >= budget.max_time {
                break;
            }
            let idx = cur.next_slot;
            cur.next_slot += 1;
            report.scanned += 1;
            let slot = self.raw.slot(idx);
            // A filter only (free, being prepared, or dying: nothing to collect); `reap`
            // pins and rechecks.
            if !is_live(slot.flags.load(Ordering::Relaxed)) {
                continue;
            }
            let p = &slot.payload;
            let st = p.status.load(Ordering::Relaxed);
            if st & status::OFFLOAD != 0 {
                continue;
            }
            let at = p.expires_at.load(Ordering::Relaxed);
            if expired(at, now) {
                if self.reap(idx, |at, _| expired(at, now)) {
                    report.expired += 1;
                    self.raw.stats.gc_expired.fetch_add(1, Ordering::Relaxed);
                }
            } else if over && st & status::ASSURED == 0 {
                if self.reap(idx, |_, st| st & status::ASSURED == 0) {
                    report.early_dropped += 1;
                    self.raw.stats.early_drop.fetch_add(1, Ordering::Relaxed);
                    over = self.count() > max95;
                }
            } else {
                let left = u64::from(at.wrapping_sub(now)).min(TIMEOUT_CLAMP_MS);
                sum += left;
                samples += 1;
            }
        }
        if samples > 0 {
            let total = cur.samples + samples;
            cur.avg_remaining_ms = (cur.avg_remaining_ms * cur.samples + sum) / total;
            cur.samples = total.min(1 << 20);
        }
        report.next_run = if report.pass_complete {
            Duration::from_millis(cur.avg_remaining_ms).clamp(INTERVAL_MIN, INTERVAL_MAX)
        } else {
            Duration::ZERO
        };
        if report.pass_complete {
            cur.samples = INITIAL_COUNT;
        }
        report
    }

    /// Takes a reference on a candidate found lock-free, rechecks it is live and still
    /// qualifies (`check(expires_at, status)`), and deletes it. True if this call deleted it.
    fn reap(&self, idx: u32, check: impl Fn(u32, u32) -> bool) -> bool {
        let slot = self.raw.slot(idx);
        if !self.raw.try_get(slot) {
            return false;
        }
        let live = is_live(slot.flags.load(Ordering::Acquire));
        let p = &slot.payload;
        let ok =
            live && check(
                p.expires_at.load(Ordering::Relaxed),
                p.status.load(Ordering::Relaxed),
            ) && self.raw.kill(idx);
        self.raw.put(idx);
        ok
    }

    /// Evicts one non-assured (or expired) connection from the buckets near `bucket`, as the
    /// kernel does when the table is full. True if one was deleted.
    pub(crate) fn early_drop(&self, bucket: u32) -> bool {
        let now = self.now_ms();
        let mask = self.raw.buckets() - 1;
        for i in 0..EVICTION_RANGE.min(mask + 1) {
            let mut dropped = false;
            self.raw.walk_lockfree((bucket + i) & mask, |idx, _| {
                let p = &self.raw.slot(idx).payload;
                let qualifies = |at: u32, st: u32| expired(at, now) || st & status::ASSURED == 0;
                if qualifies(
                    p.expires_at.load(Ordering::Relaxed),
                    p.status.load(Ordering::Relaxed),
                ) && self.reap(idx, qualifies)
                {
                    dropped = true;
                    return false;
                }
                true
            });
            if dropped {
                self.raw.stats.early_drop.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }
}
