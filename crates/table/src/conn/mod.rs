//! [`ConnTable`]: the conntrack table. One slot per connection, linked twice (by its original
//! and its reply tuple) into one nulls hash table, as the kernel's `nf_conntrack_hash`.

mod counters;
mod entry;
mod gc;
mod tuple;

pub use counters::{ConnCounters, NoCounters, TrafficCounters};
pub use entry::{ConnIter, ConnRef, ConnView};
pub use gc::{GcBudget, GcReport};
pub use tuple::{ConnKey, Direction};

use crate::clock::{expired, Clock};
use crate::error::ConnInsertError;
use crate::key::TableKey;
use crate::raw::{LinkError, Payload, RawTable, Slot};
use crate::stats::{ChangeStamp, Stats};
use crate::sync::{AtomicU32, Mutex, Ordering};

/// Status bits of a connection ([`ConnRef::status`]).
pub mod status {
    /// Seen traffic in both directions long enough: not evicted by early drop.
    pub const ASSURED: u32 = 1 << 0;
    /// A reply has been seen.
    pub const SEEN_REPLY: u32 = 1 << 1;
    /// Offloaded elsewhere: garbage collection leaves it alone.
    pub const OFFLOAD: u32 = 1 << 2;
}

/// Per-connection payload. Atomics are read lock-free (`peek`, gc); `state` is the entry
/// lock with the protocol state, taken only by reference holders and by the final `put`.
/// `expires_at`, `status`, `mark` and `counters` are written with `Relaxed` stores while the
/// slot is prepared (published by the slot's `seq` and refcount), then by reference holders
/// with `Relaxed` atomics; no ordering between them is promised.
pub(crate) struct ConnPayload<S, C> {
    /// Absolute expiry in wrapping clock milliseconds.
    pub(crate) expires_at: AtomicU32,
    pub(crate) status: AtomicU32,
    pub(crate) mark: AtomicU32,
    /// Traffic counters; zero bytes for [`NoCounters`]. See [`TrafficCounters`].
    pub(crate) counters: C,
    /// Never re-initialised on recycle (type-stable); reset to `S::default()` on free.
    pub(crate) state: Mutex<S>,
}

impl<S: Default + Send, C: ConnCounters> Payload for ConnPayload<S, C> {
    fn new_free() -> Self {
        Self {
            expires_at: AtomicU32::new(0),
            status: AtomicU32::new(0),
            mark: AtomicU32::new(0),
            counters: C::new_zeroed(),
            state: Mutex::new(S::default()),
        }
    }

    fn release(&self) {
        let old = std::mem::take(&mut *self.state.lock());
        drop(old);
    }
}

/// A connection to insert.
///
/// ```
/// use nlkit_table::{NewConn, ConnKey};
/// let orig = ConnKey::new("10.0.0.1".parse().unwrap(), 1234, "10.0.0.2".parse().unwrap(), 80, 6);
/// let c = NewConn::new(orig, orig.reverse(), 30_000, ());
/// assert_eq!(c.timeout_ms, 30_000);
/// ```
#[derive(Debug, Clone)]
pub struct NewConn<S> {
    /// Original-direction tuple.
    pub original: ConnKey,
    /// Reply-direction tuple (differs from `original.reverse()` under NAT).
    pub reply: ConnKey,
    /// Timeout from now, in milliseconds.
    pub timeout_ms: u32,
    /// Initial [`status`] bits.
    pub status: u32,
    /// Initial mark.
    pub mark: u32,
    /// Initial protocol state.
    pub state: S,
}

impl<S> NewConn<S> {
    /// A connection with no status bits and mark 0.
    pub fn new(original: ConnKey, reply: ConnKey, timeout_ms: u32, state: S) -> Self {
        Self {
            original,
            reply,
            timeout_ms,
            status: 0,
            mark: 0,
            state,
        }
    }
}

/// Configuration of a [`ConnTable`].
///
/// ```
/// use nlkit_table::ConnConfig;
/// let cfg = ConnConfig::new(1 << 16);
/// assert_eq!(cfg.buckets, 1 << 16);
/// ```
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Maximum number of connections (`nf_conntrack_max`); also the number of slots (at
    /// most 2^26).
    pub max: u32,
    /// Number of buckets (rounded up to a power of two). The kernel uses `max`, so chains
    /// average two nodes (each connection is linked twice).
    pub buckets: u32,
    /// Time source for timeouts.
    pub clock: Clock,
}

impl ConnConfig {
    /// `max` connections, `max` buckets, a monotonic clock.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            buckets: max,
            clock: Clock::monotonic(),
        }
    }

    /// The same configuration with another clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// The conntrack table: lock-free lookups by either tuple, a per-entry lock for protocol
/// state, timeouts, incremental garbage collection, early drop and predicate clean-up.
///
/// `S` is the protocol state kept under the entry lock. `C` is the per-connection traffic
/// counter storage: [`TrafficCounters`] (the default; packets and bytes per direction, see
/// [`ConnRef::account`]) or [`NoCounters`] (zero bytes, for tables that never count traffic;
/// build one with [`ConnTable::with_counters`]).
///
/// ```
/// use nlkit_table::{ConnConfig, ConnTable, Direction, NewConn, ConnKey};
///
/// let table: ConnTable<u8> = ConnTable::new(ConnConfig::new(1024));
/// let orig = ConnKey::new("10.0.0.1".parse().unwrap(), 40000, "10.0.0.2".parse().unwrap(), 80, 6);
/// table.insert(NewConn::new(orig, orig.reverse(), 120_000, 1)).unwrap();
///
/// let ct = table.get(&orig.reverse()).unwrap();       // found by the reply tuple
/// assert_eq!(ct.direction(), Direction::Reply);
/// *ct.state() = 2;                                    // under the entry lock
/// ct.account(Direction::Reply, 1, 60);
/// assert_eq!(table.peek(&orig).unwrap().packets, [0, 1]); // no lock, no refcount
/// assert!(table.remove(&orig));
/// assert_eq!(table.count(), 0);
/// ```
///
/// Without counters, each connection's slot is 32 bytes smaller:
///
/// ```
/// use nlkit_table::{ConnConfig, ConnTable, NewConn, NoCounters, ConnKey};
///
/// let table: ConnTable<u8, NoCounters> = ConnTable::with_counters(ConnConfig::new(1024));
/// let orig = ConnKey::new("10.0.0.1".parse().unwrap(), 40000, "10.0.0.2".parse().unwrap(), 80, 6);
/// table.insert(NewConn::new(orig, orig.reverse(), 120_000, 1)).unwrap();
/// assert_eq!(*table.get(&orig.reverse()).unwrap().state(), 1);
/// assert_eq!(table.peek(&orig).unwrap().bytes, [0, 0]); // always zero without counters
/// assert_eq!(ConnTable::<u8>::slot_bytes() - ConnTable::<u8, NoCounters>::slot_bytes(), 32);
/// ```
pub struct ConnTable<S: Default + Send = (), C: ConnCounters = TrafficCounters> {
    /// The nulls table of slots; its concurrency contract is in the `raw` module.
    pub(crate) raw: RawTable<ConnKey, ConnPayload<S, C>, 2>,
    /// Immutable after construction.
    pub(crate) clock: Clock,
    /// Immutable after construction.
    pub(crate) max: u32,
    /// The incremental collector's position; taken for the whole of a `gc_step`.
    pub(crate) gc: Mutex<gc::GcCursor>,
}

impl<S: Default + Send> ConnTable<S> {
    /// A table with the given configuration and the default [`TrafficCounters`]. For another
    /// counter storage ([`NoCounters`]) use [`ConnTable::with_counters`].
    ///
    /// ```
    /// use nlkit_table::{ConnConfig, ConnTable};
    /// let t: ConnTable<u32> = ConnTable::new(ConnConfig::new(1024));
    /// assert_eq!((t.count(), t.max()), (0, 1024));
    /// ```
    pub fn new(config: ConnConfig) -> Self {
        Self::with_counters(config)
    }
}

impl<S: Default + Send, C: ConnCounters> ConnTable<S, C> {
    /// A table with the given configuration whose connections store counters of type `C`
    /// ([`TrafficCounters`] or [`NoCounters`], usually named by the table's type).
    ///
    /// ```
    /// use nlkit_table::{ConnConfig, ConnTable, NoCounters};
    /// let t: ConnTable<u32, NoCounters> = ConnTable::with_counters(ConnConfig::new(1024));
    /// assert_eq!(t.count(), 0);
    /// ```
    pub fn with_counters(config: ConnConfig) -> Self {
        let max = config.max.clamp(1, crate::arena::MAX_SLOTS);
        Self {
            raw: RawTable::new(config.buckets.max(1), max),
            clock: config.clock,
            max,
            gc: Mutex::new(gc::GcCursor::default()),
        }
    }

    /// The table's current time (wrapping milliseconds).
    pub fn now_ms(&self) -> u32 {
        self.clock.now_ms()
    }

    /// Inserts a connection, linked by both tuples; returns a handle to it (direction
    /// original). Expired connections holding either tuple are reaped first. When the table
    /// is full, one non-assured connection near the new one's bucket is dropped early.
    ///
    /// ```
    /// use nlkit_table::{ConnConfig, ConnInsertError, ConnTable, Direction, NewConn, ConnKey};
    /// let t: ConnTable = ConnTable::new(ConnConfig::new(8));
    /// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 17);
    /// t.insert(NewConn::new(a, a.reverse(), 1000, ())).unwrap();
    /// // Another connection whose reply tuple clashes with the first one's:
    /// let b = ConnKey::new("10.0.0.9".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 17);
    /// let err = t.insert(NewConn::new(b, a.reverse(), 1000, ())).map(|_| ()).unwrap_err();
    /// assert_eq!(err, ConnInsertError::Clash(Direction::Reply));
    /// ```
    pub fn insert(&self, conn: NewConn<S>) -> Result<ConnRef<'_, S, C>, ConnInsertError> {
        if conn.original == conn.reply {
            return Err(ConnInsertError::SameTuple);
        }
        let tuples = [conn.original, conn.reply];
        let keys = tuples.map(|t| t.to_words());
        let idx = match self.raw.alloc() {
            Some(i) => i,
            None => {
                if !self.early_drop(self.raw.bucket(&keys[0])) {
                    self.raw.stats.full.fetch_add(1, Ordering::Relaxed);
                    return Err(ConnInsertError::Full);
                }
                self.raw.alloc().ok_or_else(|| {
                    self.raw.stats.full.fetch_add(1, Ordering::Relaxed);
                    ConnInsertError::Full
                })?
            }
        };
        let now = self.now_ms();
        let NewConn {
            timeout_ms,
            status,
            mark,
            state,
            ..
        } = conn;
        self.raw.prepare(idx, &keys, |p| {
            p.expires_at
                .store(now.wrapping_add(timeout_ms), Ordering::Relaxed);
            p.status.store(status, Ordering::Relaxed);
            p.mark.store(mark, Ordering::Relaxed);
            p.counters.reset();
            *p.state.lock() = state;
        });
        // Our handle's reference, taken before linking so a concurrent delete cannot free it.
        self.raw.get_more(idx);
        let mut reaped = false;
        let e = loop {
            match self.raw.link(idx, &keys) {
                Ok(()) => return Ok(ConnRef::new(self, idx, Direction::Original)),
                // An expired holder never causes a clash: on a clash, `get` each tuple (which
                // deletes an expired holder on the way, as before any insert in the kernel's
                // clash walk) and link again. Done only on a clash, so the common insert does
                // no lookup before linking.
                Err(LinkError::Exists(_)) if !reaped => {
                    reaped = true;
                    drop(self.get(&tuples[0]));
                    drop(self.get(&tuples[1]));
                }
                Err(e) => break e,
            }
        };
        self.raw.put(idx);
        self.raw.put(idx);
        Err(match e {
            LinkError::Exists(d) => ConnInsertError::Clash(Direction::from_index(d)),
            LinkError::ChainTooLong => ConnInsertError::ChainTooLong,
        })
    }

    /// Looks a tuple up (either direction) without locks; an expired connection is never
    /// returned (it is deleted on the way, as the kernel does).
    ///
    /// ```
    /// use nlkit_table::{Clock, ConnConfig, ConnTable, ManualClock, NewConn, ConnKey};
    /// let clock = ManualClock::new(0);
    /// let t: ConnTable = ConnTable::new(ConnConfig::new(8).with_clock(Clock::Manual(clock.clone())));
    /// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 17);
    /// t.insert(NewConn::new(a, a.reverse(), 1000, ())).unwrap();
    /// assert!(t.get(&a).is_some());
    /// clock.advance(1000);
    /// assert!(t.get(&a).is_none());
    /// assert_eq!(t.count(), 0);
    /// ```
    pub fn get(&self, tuple: &ConnKey) -> Option<ConnRef<'_, S, C>> {
        let (idx, dir) = self.raw.lookup(&tuple.to_words())?;
        let expires = self
            .raw
            .slot(idx)
            .payload
            .expires_at
            .load(Ordering::Relaxed);
        if expired(expires, self.now_ms()) {
            if self.raw.kill(idx) {
                self.raw.stats.gc_expired.fetch_add(1, Ordering::Relaxed);
            }
            self.raw.put(idx);
            return None;
        }
        Some(ConnRef::new(self, idx, Direction::from_index(dir)))
    }

    /// Reads a connection's atomic fields without locks and without touching its reference
    /// count (seqlock-validated); `None` if absent or expired. On a table with
    /// [`NoCounters`], the view's `packets` and `bytes` are zeros.
    pub fn peek(&self, tuple: &ConnKey) -> Option<ConnView> {
        let view = self.raw.peek(&tuple.to_words(), Self::view_of)?;
        (!expired(view.expires_at, self.now_ms())).then_some(view)
    }

    /// [`peek`](Self::peek) of many tuples at once: `out[i]` becomes `peek(&tuples[i])`. The
    /// lookups run in groups of 16 whose cache misses overlap (bucket heads first, then the
    /// first chain nodes), the batched fast path of a datapath that looks up a burst of
    /// packets' flows; on a table larger than the CPU cache it costs far less than as many
    /// single peeks.
    ///
    /// # Panics
    /// If `tuples` and `out` differ in length.
    ///
    /// ```
    /// use nlkit_table::{ConnConfig, ConnTable, Direction, NewConn, ConnKey};
    /// let t: ConnTable = ConnTable::new(ConnConfig::new(64));
    /// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
    /// let b = ConnKey::new("10.0.0.3".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
    /// t.insert(NewConn::new(a, a.reverse(), 1000, ())).unwrap();
    /// let mut out = [None; 3];
    /// t.peek_batch(&[a.reverse(), b, a], &mut out);
    /// assert_eq!(out.map(|v| v.map(|v| v.direction)), [Some(Direction::Reply), None, Some(Direction::Original)]);
    /// ```
    pub fn peek_batch(&self, tuples: &[ConnKey], out: &mut [Option<ConnView>]) {
        assert_eq!(
            tuples.len(),
            out.len(),
            "peek_batch: tuples and out differ in length"
        );
        let now = self.now_ms();
        self.raw.peek_batch(tuples, Self::view_of, |i, v| {
            out[i] = v.filter(|v| !expired(v.expires_at, now));
        });
    }

    /// The view of a slot's atomic fields (for the seqlock-validated reads).
    fn view_of(s: &Slot<ConnKey, ConnPayload<S, C>, 2>, dir: usize) -> ConnView {
        let p = &s.payload;
        let (packets, bytes) = p.counters.load();
        ConnView {
            direction: Direction::from_index(dir),
            expires_at: p.expires_at.load(Ordering::Relaxed),
            status: p.status.load(Ordering::Relaxed),
            mark: p.mark.load(Ordering::Relaxed),
            packets,
            bytes,
        }
    }

    /// Deletes the connection with this tuple (either direction); returns whether this call
    /// deleted it.
    pub fn remove(&self, tuple: &ConnKey) -> bool {
        let words = tuple.to_words();
        while let Some((idx, _)) = self.raw.lookup(&words) {
            let won = self.raw.kill(idx);
            self.raw.put(idx);
            if won {
                return true;
            }
        }
        false
    }

    /// Iterates over every connection once (by its original node), each bucket under its
    /// stripe lock, while lookups keep running. Expired connections are included until gc.
    ///
    /// ```
    /// use nlkit_table::{ConnConfig, ConnTable, NewConn, ConnKey};
    /// let t: ConnTable = ConnTable::new(ConnConfig::new(64));
    /// for p in 1..=5u16 {
    ///     let a = ConnKey::new("10.0.0.1".parse().unwrap(), p, "10.0.0.2".parse().unwrap(), 80, 6);
    ///     t.insert(NewConn::new(a, a.reverse(), 1000, ())).unwrap();
    /// }
    /// assert_eq!(t.iter().count(), 5);
    /// ```
    pub fn iter(&self) -> ConnIter<'_, S, C> {
        entry::ConnIter::new(self)
    }

    /// Deletes every connection matching `pred` (a zone, a mark, an address…) while lookups
    /// keep running; returns how many this call deleted (the kernel's `nf_ct_iterate_cleanup`).
    ///
    /// ```
    /// use nlkit_table::{ConnConfig, ConnTable, NewConn, ConnKey};
    /// let t: ConnTable = ConnTable::new(ConnConfig::new(64));
    /// for zone in 0..4u16 {
    ///     let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 80, 6)
    ///         .with_zone(zone);
    ///     t.insert(NewConn::new(a, a.reverse(), 1000, ())).unwrap();
    /// }
    /// assert_eq!(t.remove_matching(|c| c.original().zone == 2), 1);
    /// assert_eq!(t.count(), 3);
    /// ```
    pub fn remove_matching(&self, mut pred: impl FnMut(&ConnRef<'_, S, C>) -> bool) -> usize {
        let mut n = 0;
        for c in self.iter() {
            if pred(&c) && c.delete() {
                n += 1;
            }
        }
        n
    }

    /// Number of linked connections.
    pub fn count(&self) -> usize {
        self.raw.len()
    }

    /// The maximum number of connections.
    pub fn max(&self) -> usize {
        self.max as usize
    }

    /// See [`ChangeStamp`].
    pub fn change_stamp(&self) -> ChangeStamp {
        self.raw.change_stamp()
    }

    /// Event counters.
    pub fn stats(&self) -> Stats {
        self.raw.stats()
    }

    /// Bytes used by buckets, locks and created slots.
    pub fn memory_bytes(&self) -> usize {
        self.raw.memory_bytes()
    }

    /// Bytes of one connection's slot (both tuples, both chain links, flags, timeout, status,
    /// mark, counters `C` and the entry lock with `S`): the memory each connection costs
    /// once its slot is created.
    ///
    /// ```
    /// use nlkit_table::{ConnTable, NoCounters};
    /// // The default traffic counters take 32 bytes per connection.
    /// assert_eq!(ConnTable::<u32>::slot_bytes(), ConnTable::<u32, NoCounters>::slot_bytes() + 32);
    /// ```
    pub fn slot_bytes() -> usize {
        std::mem::size_of::<crate::raw::Slot<ConnKey, ConnPayload<S, C>, 2>>()
    }
}

impl<S: Default + Send, C: ConnCounters> Drop for ConnTable<S, C> {
    fn drop(&mut self) {
        self.raw.drain_mut(|s| s.payload.release());
    }
}

impl<S: Default + Send, C: ConnCounters> std::fmt::Debug for ConnTable<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("count", &self.count())
            .field("max", &self.max)
            .finish()
    }
}
