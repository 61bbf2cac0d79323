//! Handles to connections: [`ConnRef`] (pinned by a reference) and [`ConnView`] (a copy).

use super::{ConnCounters, ConnKey, ConnTable, Direction, TrafficCounters};
use crate::clock::expired;
use crate::key::{KeyWords, TableKey};
use crate::sync::{MutexGuard, Ordering};

/// A pinned, reference-counted handle to a connection, with the direction that matched.
///
/// The slot cannot be recycled while the handle lives; the connection may still be deleted.
///
/// ```
/// use nlkit_table::{status, ConnConfig, ConnTable, Direction, NewConn, ConnKey};
/// let t: ConnTable<u32> = ConnTable::new(ConnConfig::new(16));
/// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// let ct = t.insert(NewConn::new(a, a.reverse(), 5000, 0)).unwrap();
/// ct.set_status(status::ASSURED);
/// ct.set_mark(7);
/// ct.refresh(10_000);
/// assert_eq!((ct.mark(), ct.status() & status::ASSURED), (7, status::ASSURED));
/// assert_eq!(ct.tuple(Direction::Reply), a.reverse());
/// assert!(ct.delete());
/// assert!(!ct.delete());
/// ```
pub struct ConnRef<'t, S: Default + Send, C: ConnCounters = TrafficCounters> {
    table: &'t ConnTable<S, C>,
    idx: u32,
    dir: Direction,
}

impl<'t, S: Default + Send, C: ConnCounters> ConnRef<'t, S, C> {
    pub(crate) fn new(table: &'t ConnTable<S, C>, idx: u32, dir: Direction) -> Self {
        Self { table, idx, dir }
    }

    fn payload(&self) -> &super::ConnPayload<S, C> {
        &self.table.raw.slot(self.idx).payload
    }

    /// The direction whose tuple the lookup matched.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// The tuple of direction `dir`.
    pub fn tuple(&self, dir: Direction) -> ConnKey {
        ConnKey::from_words(&KeyWords::load(
            &self.table.raw.slot(self.idx).key[dir.index()],
        ))
    }

    /// The original-direction tuple.
    pub fn original(&self) -> ConnKey {
        self.tuple(Direction::Original)
    }

    /// The reply-direction tuple.
    pub fn reply(&self) -> ConnKey {
        self.tuple(Direction::Reply)
    }

    /// Absolute expiry time in the table clock's wrapping milliseconds.
    pub fn expires_at(&self) -> u32 {
        self.payload().expires_at.load(Ordering::Relaxed)
    }

    /// Milliseconds left before expiry (0 if expired).
    pub fn remaining_ms(&self) -> u32 {
        let left = self.expires_at().wrapping_sub(self.table.now_ms()) as i32;
        left.max(0) as u32
    }

    /// Whether the connection has timed out.
    pub fn is_expired(&self) -> bool {
        expired(self.expires_at(), self.table.now_ms())
    }

    /// Sets the timeout to `timeout_ms` from now; the store is skipped when the value is
    /// unchanged, so a refresh per packet does not dirty the cache line needlessly.
    pub fn refresh(&self, timeout_ms: u32) {
        let at = self.table.now_ms().wrapping_add(timeout_ms);
        let e = &self.payload().expires_at;
        if e.load(Ordering::Relaxed) != at {
            e.store(at, Ordering::Relaxed);
        }
    }

    /// The [`status`](super::status) bits.
    pub fn status(&self) -> u32 {
        self.payload().status.load(Ordering::Relaxed)
    }

    /// Sets status bits (atomic OR).
    pub fn set_status(&self, bits: u32) {
        self.payload().status.fetch_or(bits, Ordering::Relaxed);
    }

    /// Clears status bits (atomic AND-NOT).
    pub fn clear_status(&self, bits: u32) {
        self.payload().status.fetch_and(!bits, Ordering::Relaxed);
    }

    /// The mark.
    pub fn mark(&self) -> u32 {
        self.payload().mark.load(Ordering::Relaxed)
    }

    /// Sets the mark.
    pub fn set_mark(&self, mark: u32) {
        self.payload().mark.store(mark, Ordering::Relaxed);
    }

    /// Locks the entry and gives access to its protocol state.
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.payload().state.lock()
    }

    /// Deletes the connection; exactly one concurrent caller (delete, gc, clean-up, early
    /// drop) gets `true`.
    pub fn delete(&self) -> bool {
        self.table.raw.kill(self.idx)
    }
}

/// Traffic counters: only on tables with [`TrafficCounters`] (the default).
impl<S: Default + Send> ConnRef<'_, S, TrafficCounters> {
    /// Adds to the packet and byte counters of a direction (atomic, no lock).
    ///
    /// ```
    /// use nlkit_table::{ConnConfig, ConnTable, Direction, NewConn, ConnKey};
    /// let t: ConnTable = ConnTable::new(ConnConfig::new(16));
    /// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
    /// let ct = t.insert(NewConn::new(a, a.reverse(), 5000, ())).unwrap();
    /// ct.account(Direction::Reply, 1, 60);
    /// ct.account(Direction::Reply, 2, 100);
    /// assert_eq!(ct.counters(Direction::Reply), (3, 160));
    /// assert_eq!(ct.counters(Direction::Original), (0, 0));
    /// ```
    pub fn account(&self, dir: Direction, packets: u64, bytes: u64) {
        self.payload().counters.add(dir.index(), packets, bytes);
    }

    /// `(packets, bytes)` of a direction; see [`ConnRef::account`].
    pub fn counters(&self, dir: Direction) -> (u64, u64) {
        self.payload().counters.get(dir.index())
    }
}

impl<S: Default + Send, C: ConnCounters> Clone for ConnRef<'_, S, C> {
    fn clone(&self) -> Self {
        self.table.raw.get_more(self.idx);
        Self { ..*self }
    }
}

impl<S: Default + Send, C: ConnCounters> Drop for ConnRef<'_, S, C> {
    fn drop(&mut self) {
        self.table.raw.put(self.idx);
    }
}

impl<S: Default + Send, C: ConnCounters> std::fmt::Debug for ConnRef<'_, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnRef")
            .field("direction", &self.dir)
            .field("original", &self.original())
            .field("reply", &self.reply())
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

/// A lock-free snapshot of a connection's atomic fields, from [`ConnTable::peek`].
///
/// Each field is read atomically; fields updated concurrently (counters, mark) may come from
/// slightly different instants, but all belong to the one live connection with the tuple.
///
/// ```
/// use nlkit_table::{ConnConfig, ConnTable, Direction, NewConn, ConnKey};
/// let t: ConnTable = ConnTable::new(ConnConfig::new(16));
/// let a = ConnKey::new("10.0.0.1".parse().unwrap(), 1, "10.0.0.2".parse().unwrap(), 2, 6);
/// let mut c = NewConn::new(a, a.reverse(), 5000, ());
/// c.mark = 9;
/// t.insert(c).unwrap();
/// let v = t.peek(&a.reverse()).unwrap();
/// assert_eq!((v.direction, v.mark), (Direction::Reply, 9));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnView {
    /// Which tuple matched.
    pub direction: Direction,
    /// Absolute expiry (wrapping clock milliseconds).
    pub expires_at: u32,
    /// Status bits.
    pub status: u32,
    /// Mark.
    pub mark: u32,
    /// Packets per direction (original, reply); zeros on a table with
    /// [`NoCounters`](super::NoCounters).
    pub packets: [u64; 2],
    /// Bytes per direction (original, reply); zeros on a table with
    /// [`NoCounters`](super::NoCounters).
    pub bytes: [u64; 2],
}

/// Iterator over a [`ConnTable`]'s connections; see [`ConnTable::iter`].
pub struct ConnIter<'t, S: Default + Send, C: ConnCounters = TrafficCounters> {
    table: &'t ConnTable<S, C>,
    bucket: u32,
    buf: Vec<u32>,
    pos: usize,
}

impl<'t, S: Default + Send, C: ConnCounters> ConnIter<'t, S, C> {
    pub(crate) fn new(table: &'t ConnTable<S, C>) -> Self {
        Self {
            table,
            bucket: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl<'t, S: Default + Send, C: ConnCounters> Iterator for ConnIter<'t, S, C> {
    type Item = ConnRef<'t, S, C>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(&idx) = self.buf.get(self.pos) {
                self.pos += 1;
                return Some(ConnRef::new(self.table, idx, Direction::Original));
            }
            if self.bucket >= self.table.raw.buckets() {
                return None;
            }
            self.buf.clear();
            self.pos = 0;
            self.table.raw.collect_bucket(self.bucket, 0, &mut self.buf);
            self.bucket += 1;
        }
    }
}

impl<S: Default + Send, C: ConnCounters> Drop for ConnIter<'_, S, C> {
    fn drop(&mut self) {
        for &idx in &self.buf[self.pos..] {
            self.table.raw.put(idx);
        }
    }
}
