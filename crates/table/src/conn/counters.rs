//! Per-connection traffic counter storage, chosen at the type level: [`TrafficCounters`]
//! (packets and bytes per direction, the default) or [`NoCounters`] (nothing, zero bytes).

use crate::sync::{AtomicU64, Ordering};

/// The counter storage of each connection in a [`ConnTable`](crate::ConnTable): its second
/// type parameter.
///
/// Two implementations exist, and the trait is sealed (the counters live in type-stable slots
/// read by lock-free `peek`, so the table must know every implementation):
/// - [`TrafficCounters`] (the default): atomic packet and byte counters per direction,
///   32 bytes per connection, updated by [`ConnRef::account`](crate::ConnRef::account).
/// - [`NoCounters`]: a zero-sized type; the slot is 32 bytes smaller, `account` and
///   `counters` do not exist, and [`ConnView`](crate::ConnView) reports zero counters.
///
/// ```
/// use nlkit_table::{ConnConfig, ConnCounters, ConnTable, NoCounters, TrafficCounters};
/// fn slot_bytes<C: ConnCounters>() -> usize {
///     ConnTable::<u32, C>::slot_bytes()
/// }
/// assert_eq!(slot_bytes::<TrafficCounters>() - slot_bytes::<NoCounters>(), 32);
/// ```
pub trait ConnCounters: sealed::Sealed {}

pub(crate) mod sealed {
    /// What the table needs from counter storage. Not nameable outside the crate.
    pub trait Sealed: Send + Sync + Sized {
        /// Zeroed storage for a fresh slot.
        fn new_zeroed() -> Self;
        /// Zeroes the counters of a slot being prepared for a new connection (no reader
        /// can hold a reference to it; `Relaxed` stores, published by the slot's `seq`).
        fn reset(&self);
        /// `(packets, bytes)` per direction, each loaded atomically (`Relaxed`); used inside
        /// the seqlock-validated `peek`.
        fn load(&self) -> ([u64; 2], [u64; 2]);
    }
}

/// Atomic packet and byte counters per direction (original, reply): the default counter
/// storage of a [`ConnTable`](crate::ConnTable), 32 bytes per connection.
///
/// Concurrency contract: each counter is an independent atomic, added to with `Relaxed`
/// `fetch_add` by any reference holder ([`ConnRef::account`](crate::ConnRef::account)) and
/// read with `Relaxed` loads without locks; the counters are zeroed while the slot is being
/// prepared for a new connection, before the slot's `seq` publishes it. No ordering between
/// the four counters is promised.
///
/// ```
/// use nlkit_table::{ConnConfig, ConnTable, Direction, NewConn, TrafficCounters, ConnKey};
/// // `ConnTable<u32>` is `ConnTable<u32, TrafficCounters>`.
/// let t: ConnTable<u32, TrafficCounters> = ConnTable::new(ConnConfig::new(16));
/// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// let ct = t.insert(NewConn::new(a, a.reverse(), 5000, 0)).unwrap();
/// ct.account(Direction::Original, 2, 120);
/// assert_eq!(ct.counters(Direction::Original), (2, 120));
/// ```
#[derive(Debug)]
pub struct TrafficCounters {
    packets: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
}

impl TrafficCounters {
    /// Adds to the counters of direction `dir` (0 original, 1 reply).
    pub(crate) fn add(&self, dir: usize, packets: u64, bytes: u64) {
        self.packets[dir].fetch_add(packets, Ordering::Relaxed);
        self.bytes[dir].fetch_add(bytes, Ordering::Relaxed);
    }

    /// `(packets, bytes)` of direction `dir`.
    pub(crate) fn get(&self, dir: usize) -> (u64, u64) {
        (
            self.packets[dir].load(Ordering::Relaxed),
            self.bytes[dir].load(Ordering::Relaxed),
        )
    }
}

impl ConnCounters for TrafficCounters {}

impl sealed::Sealed for TrafficCounters {
    fn new_zeroed() -> Self {
        Self {
            packets: std::array::from_fn(|_| AtomicU64::new(0)),
            bytes: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn reset(&self) {
        for d in 0..2 {
            self.packets[d].store(0, Ordering::Relaxed);
            self.bytes[d].store(0, Ordering::Relaxed);
        }
    }

    fn load(&self) -> ([u64; 2], [u64; 2]) {
        (
            [0, 1].map(|d| self.packets[d].load(Ordering::Relaxed)),
            [0, 1].map(|d| self.bytes[d].load(Ordering::Relaxed)),
        )
    }
}

/// No traffic counters: zero bytes per connection. For tables that never count traffic (a
/// mirror of the kernel's table, which has its own counters), where every byte of the slot
/// matters.
///
/// [`ConnRef::account`](crate::ConnRef::account) and
/// [`ConnRef::counters`](crate::ConnRef::counters) do not exist on such a table, and
/// [`ConnTable::peek`](crate::ConnTable::peek) reports `packets` and `bytes` as zeros.
///
/// ```
/// use nlkit_table::{ConnConfig, ConnTable, NewConn, NoCounters, ConnKey};
/// let t: ConnTable<u32, NoCounters> = ConnTable::with_counters(ConnConfig::new(16));
/// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// t.insert(NewConn::new(a, a.reverse(), 5000, 7)).unwrap();
/// assert_eq!(*t.get(&a.reverse()).unwrap().state(), 7);
/// assert_eq!(t.peek(&a).unwrap().packets, [0, 0]);
/// assert_eq!(std::mem::size_of::<NoCounters>(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoCounters;

impl ConnCounters for NoCounters {}

impl sealed::Sealed for NoCounters {
    fn new_zeroed() -> Self {
        NoCounters
    }

    fn reset(&self) {}

    fn load(&self) -> ([u64; 2], [u64; 2]) {
        ([0; 2], [0; 2])
    }
}
