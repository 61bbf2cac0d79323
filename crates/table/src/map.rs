//! [`NullsTable`]: a generic key → value table on the nulls core, for the mirror's route, link
//! and conntrack entries.
//!
//! # Values
//! A value of any size lives in its own heap box; the slot holds an `AtomicPtr` to it. The
//! value is **immutable for the life of the slot's incarnation**: it is written before the
//! slot is published (`refcnt = 1`, `Release`), read only by holders of a reference (taken
//! with an `Acquire` CAS), and dropped by the last `put`, when no reference is left. Updating
//! a key's value ([`NullsTable::insert_or_replace`]) therefore links a *new* slot into the
//! old node's chain position and deletes the old one; readers holding the old entry keep a
//! consistent snapshot, like an `Arc`. This needs no epoch or hazard-pointer scheme: the
//! slot's reference count is already the pin. The alternative, swapping the pointer inside a
//! live slot, would need deferred reclamation for readers that loaded the old pointer.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::{InsertError, InsertErrorKind};
use crate::key::TableKey;
use crate::raw::{LinkError, Payload, RawTable};
use crate::stats::{ChangeStamp, Stats};
use crate::sync::{AtomicPtr, AtomicU64, Ordering};

/// Slot payload of a [`NullsTable`].
pub(crate) struct MapPayload<V> {
    /// Boxed value; non-null from `prepare` until the last `put` (see module docs).
    value: AtomicPtr<V>,
    /// A free-form word readable without a reference (see [`NullsTable::peek_word`]).
    word: AtomicU64,
}

impl<V> Payload for MapPayload<V>
where
    V: Send + Sync,
{
    fn new_free() -> Self {
        Self {
            value: AtomicPtr::new(std::ptr::null_mut()),
            word: AtomicU64::new(0),
        }
    }

    fn release(&self) {
        let p = self.value.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: `p` came from `Box::into_raw` in `NullsTable::prepare`; the swap hands it
            // to exactly one caller, and `release` runs only when the reference count is zero
            // (after the `Acquire` fence in `put`), so no reader can still dereference it.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Variance and auto traits: no `K` is stored; values are shared like an `Arc<V>`.
type Marker<K, V> = PhantomData<(fn() -> K, Arc<V>)>;

/// A lock-free hash table of `K → V` on type-stable, immediately reusable slots.
///
/// Lookups take no lock; inserts and deletes take one of 1024 striped bucket locks. The
/// capacity (number of slots) and bucket count are fixed at creation; slots are allocated in
/// chunks as needed, never freed before the table, and reused at once after a delete.
///
/// ```
/// use nlkit_table::NullsTable;
///
/// let routes: NullsTable<u64, Vec<u8>> = NullsTable::new(1024);
/// routes.insert(7, b"netlink message bytes".to_vec()).unwrap();
/// let entry = routes.get(&7).unwrap();       // a pinned, refcounted handle
/// assert_eq!(&entry[..7], b"netlink");
/// assert!(routes.insert_or_replace(7, b"newer".to_vec()).unwrap()); // replaced
/// assert_eq!(&entry[..7], b"netlink");       // the old handle keeps its snapshot
/// assert_eq!(routes.get_with(&7, |v| v.len()), Some(5));
/// assert!(routes.remove(&7));
/// assert!(routes.get(&7).is_none());
/// ```
pub struct NullsTable<K: TableKey, V: Send + Sync> {
    raw: RawTable<K, MapPayload<V>, 1>,
    _marker: Marker<K, V>,
}

impl<K: TableKey, V: Send + Sync> NullsTable<K, V> {
    /// A table of `capacity` slots with `capacity.next_power_of_two()` buckets.
    ///
    /// ```
    /// let t: nlkit_table::NullsTable<u32, ()> = nlkit_table::NullsTable::new(100);
    /// assert_eq!(t.capacity(), 100);
    /// ```
    pub fn new(capacity: usize) -> Self {
        Self::with_buckets(capacity, capacity)
    }

    /// A table of `capacity` slots (at most 2^26) with `buckets` (rounded up to a power of two,
    /// at most 2^27).
    ///
    /// ```
    /// let t: nlkit_table::NullsTable<u32, ()> = nlkit_table::NullsTable::with_buckets(100, 16);
    /// assert_eq!(t.buckets(), 16);
    /// ```
    pub fn with_buckets(capacity: usize, buckets: usize) -> Self {
        let cap = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        let buckets = u32::try_from(buckets.max(1)).unwrap_or(u32::MAX);
        Self {
            raw: RawTable::new(buckets, cap.min(crate::arena::MAX_SLOTS)),
            _marker: PhantomData,
        }
    }

    /// Allocates and prepares a slot for `key → value`. When no slot is free the error is
    /// `Full`, except that a plain insert (`exists_wins`) of a key that is present reports
    /// `Exists`, as it would with a free slot. An upsert must never report `Exists`: the key
    /// being present is what it replaces, and it still needs a fresh slot to do so.
    fn prepare(
        &self,
        key: &K,
        value: V,
        exists_wins: bool,
    ) -> Result<(u32, K::Words), InsertError<V>> {
        let words = key.to_words();
        let Some(idx) = self.raw.alloc() else {
            let kind = if exists_wins && self.raw.peek(&words, |_, _| ()).is_some() {
                InsertErrorKind::Exists
            } else {
                self.raw.stats.full.fetch_add(1, Ordering::Relaxed);
                InsertErrorKind::Full
            };
            return Err(InsertError { kind, value });
        };
        let ptr = Box::into_raw(Box::new(value));
        self.raw.prepare(idx, &[words], |p| {
            p.value.store(ptr, Ordering::Relaxed);
            p.word.store(0, Ordering::Relaxed);
        });
        Ok((idx, words))
    }

    /// Takes the value back out of a prepared slot that was never linked, and drops the slot.
    fn abandon(&self, idx: u32, err: LinkError) -> InsertError<V> {
        let p = self
            .raw
            .slot(idx)
            .payload
            .value
            .swap(std::ptr::null_mut(), Ordering::Relaxed);
        self.raw.put(idx);
        // SAFETY: `p` is the box stored by `prepare` for this never-linked slot; `HASHED` was
        // never set, so no reader passed validation or could dereference it, and the swap
        // took it out so the final `release` will not drop it again.
        let value = *unsafe { Box::from_raw(p) };
        let kind = match err {
            LinkError::Exists(_) => InsertErrorKind::Exists,
            LinkError::ChainTooLong => InsertErrorKind::ChainTooLong,
        };
        InsertError { kind, value }
    }

    /// Inserts `key → value`; fails (handing `value` back) if the key is present or the table
    /// is full.
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, &str>::new(8);
    /// t.insert(1, "one").unwrap();
    /// assert_eq!(t.insert(1, "uno").unwrap_err().value, "uno");
    /// ```
    pub fn insert(&self, key: K, value: V) -> Result<(), InsertError<V>> {
        // A present key fails before a slot is taken and its value boxed.
        if self.raw.peek(&key.to_words(), |_, _| ()).is_some() {
            self.raw.note_insert_failed(&key.to_words());
            return Err(InsertError {
                kind: InsertErrorKind::Exists,
                value,
            });
        }
        let (idx, words) = self.prepare(&key, value, true)?;
        match self.raw.link(idx, &[words]) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.abandon(idx, e)),
        }
    }

    /// Inserts `key → value`, replacing a present value; returns whether one was replaced.
    /// Readers see the old or the new entry, never neither. The new value takes a fresh slot
    /// before the old one is released, so this fails with `Full` when no slot is free, even
    /// if the key is present (it never fails with `Exists`).
    ///
    /// ```
    /// use nlkit_table::{InsertErrorKind, NullsTable};
    /// let t = NullsTable::<u64, u32>::new(2);
    /// assert!(!t.insert_or_replace(1, 10).unwrap());
    /// assert!(t.insert_or_replace(1, 11).unwrap());
    /// assert_eq!(t.get(&1).map(|e| *e), Some(11));
    /// assert_eq!(t.len(), 1);
    /// t.insert(2, 20).unwrap(); // every slot in use now
    /// assert_eq!(t.insert_or_replace(1, 12).unwrap_err().kind, InsertErrorKind::Full);
    /// assert_eq!(t.get(&1).map(|e| *e), Some(11));
    /// ```
    pub fn insert_or_replace(&self, key: K, value: V) -> Result<bool, InsertError<V>> {
        let (idx, words) = self.prepare(&key, value, false)?;
        match self.raw.link_or_replace(idx, &words) {
            Ok(Some(old)) => {
                self.raw.put(old);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(self.abandon(idx, e)),
        }
    }

    /// Looks `key` up without locks and returns a pinned handle to its entry.
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, String>::new(8);
    /// t.insert(3, "three".into()).unwrap();
    /// let e = t.get(&3).unwrap();
    /// assert_eq!((e.key(), e.as_str()), (3, "three"));
    /// ```
    pub fn get(&self, key: &K) -> Option<EntryRef<'_, K, V>> {
        let (idx, _) = self.raw.lookup(&key.to_words())?;
        Some(EntryRef { table: self, idx })
    }

    /// Looks `key` up and calls `f` on its value while pinned, without returning a handle.
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, Vec<u8>>::new(8);
    /// t.insert(1, vec![1, 2, 3]).unwrap();
    /// assert_eq!(t.get_with(&1, |v| v.len()), Some(3));
    /// ```
    pub fn get_with<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        self.get(key).map(|e| f(&e))
    }

    /// Whether `key` is present, without locks and without touching reference counts.
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, ()>::new(8);
    /// t.insert(1, ()).unwrap();
    /// assert!(t.contains_key(&1) && !t.contains_key(&2));
    /// ```
    pub fn contains_key(&self, key: &K) -> bool {
        self.raw.peek(&key.to_words(), |_, _| ()).is_some()
    }

    /// The entry's free-form word (see [`EntryRef::set_word`]), read without locks and without
    /// touching reference counts (seqlock-validated).
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, ()>::new(8);
    /// t.insert(1, ()).unwrap();
    /// t.get(&1).unwrap().set_word(42);
    /// assert_eq!(t.peek_word(&1), Some(42));
    /// ```
    pub fn peek_word(&self, key: &K) -> Option<u64> {
        self.raw.peek(&key.to_words(), |s, _| {
            s.payload.word.load(Ordering::Relaxed)
        })
    }

    /// Deletes `key`; returns whether this call deleted it.
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, ()>::new(8);
    /// t.insert(1, ()).unwrap();
    /// assert!(t.remove(&1));
    /// assert!(!t.remove(&1));
    /// ```
    pub fn remove(&self, key: &K) -> bool {
        self.raw.remove_key(&key.to_words())
    }

    /// Deletes every entry for which `keep` returns false, while lookups keep running;
    /// returns how many this call deleted.
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, u64>::new(8);
    /// for k in 0..6 { t.insert(k, k * 10).unwrap(); }
    /// assert_eq!(t.retain(|k, _| k % 2 == 0), 3);
    /// assert_eq!(t.len(), 3);
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut n = 0;
        for e in self.iter() {
            if !keep(&e.key(), &e) && e.remove() {
                n += 1;
            }
        }
        n
    }

    /// Iterates over all live entries, one bucket at a time under its stripe lock (so each
    /// bucket is a consistent snapshot); compare [`change_stamp`](Self::change_stamp)s taken
    /// before and after to know whether the whole pass was consistent.
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, u64>::new(8);
    /// for k in 0..4 { t.insert(k, k).unwrap(); }
    /// let mut keys: Vec<u64> = t.iter().map(|e| e.key()).collect();
    /// keys.sort();
    /// assert_eq!(keys, [0, 1, 2, 3]);
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            table: self,
            bucket: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Number of live entries (sums per-stripe counters; approximate under concurrency).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there are no live entries.
    ///
    /// ```
    /// assert!(nlkit_table::NullsTable::<u64, ()>::new(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.raw.arena.capacity() as usize
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.raw.buckets() as usize
    }

    /// See [`ChangeStamp`].
    pub fn change_stamp(&self) -> ChangeStamp {
        self.raw.change_stamp()
    }

    /// Event counters.
    pub fn stats(&self) -> Stats {
        self.raw.stats()
    }

    /// Bytes used by buckets, locks and created slots (not counting the boxed values).
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, u64>::new(1000);
    /// assert!(t.memory_bytes() > 0);
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.raw.memory_bytes()
    }
}

impl<K: TableKey, V: Send + Sync> Drop for NullsTable<K, V> {
    fn drop(&mut self) {
        self.raw.drain_mut(|s| s.payload.release());
    }
}

impl<K: TableKey, V: Send + Sync> std::fmt::Debug for NullsTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NullsTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("buckets", &self.buckets())
            .finish()
    }
}

/// A pinned, reference-counted handle to a [`NullsTable`] entry; derefs to the value.
///
/// While it lives, the slot cannot be recycled. The entry may still be deleted or replaced
/// meanwhile; the handle then keeps the old value.
///
/// ```
/// let t = nlkit_table::NullsTable::<u64, u64>::new(8);
/// t.insert(1, 100).unwrap();
/// let e = t.get(&1).unwrap();
/// let e2 = e.clone();
/// assert!(e.remove());
/// assert_eq!(*e2, 100);
/// ```
pub struct EntryRef<'t, K: TableKey, V: Send + Sync> {
    table: &'t NullsTable<K, V>,
    idx: u32,
}

impl<K: TableKey, V: Send + Sync> EntryRef<'_, K, V> {
    /// The entry's key.
    pub fn key(&self) -> K {
        K::from_words(&<K::Words as crate::key::KeyWords>::load(
            &self.table.raw.slot(self.idx).key[0],
        ))
    }

    /// The entry's free-form word (0 after insert).
    ///
    /// ```
    /// let t = nlkit_table::NullsTable::<u64, ()>::new(8);
    /// t.insert(1, ()).unwrap();
    /// assert_eq!(t.get(&1).unwrap().word(), 0);
    /// ```
    pub fn word(&self) -> u64 {
        self.table
            .raw
            .slot(self.idx)
            .payload
            .word
            .load(Ordering::Relaxed)
    }

    /// Sets the entry's free-form word (e.g. the dump generation that last saw it).
    pub fn set_word(&self, word: u64) {
        self.table
            .raw
            .slot(self.idx)
            .payload
            .word
            .store(word, Ordering::Relaxed);
    }

    /// Deletes this entry; returns whether this call deleted it.
    pub fn remove(&self) -> bool {
        self.table.raw.kill(self.idx)
    }
}

impl<K: TableKey, V: Send + Sync> Deref for EntryRef<'_, K, V> {
    type Target = V;
    fn deref(&self) -> &V {
        let p = self
            .table
            .raw
            .slot(self.idx)
            .payload
            .value
            .load(Ordering::Relaxed);
        // This handle holds a reference taken with an `Acquire` CAS on a published, validated
        // slot (or cloned from one); the box pointer was stored before the `Release` publish
        // and is dropped only by the last `put`, which cannot happen while this handle lives.
        // SAFETY: `p` points to the live boxed value, as argued above.
        unsafe { &*p }
    }
}

impl<K: TableKey, V: Send + Sync> Clone for EntryRef<'_, K, V> {
    fn clone(&self) -> Self {
        self.table.raw.get_more(self.idx);
        Self {
            table: self.table,
            idx: self.idx,
        }
    }
}

impl<K: TableKey, V: Send + Sync> Drop for EntryRef<'_, K, V> {
    fn drop(&mut self) {
        self.table.raw.put(self.idx);
    }
}

impl<K: TableKey + std::fmt::Debug, V: Send + Sync + std::fmt::Debug> std::fmt::Debug
    for EntryRef<'_, K, V>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EntryRef")
            .field(&self.key())
            .field(&**self)
            .finish()
    }
}

/// Iterator over the live entries of a [`NullsTable`]; see [`NullsTable::iter`].
pub struct Iter<'t, K: TableKey, V: Send + Sync> {
    table: &'t NullsTable<K, V>,
    bucket: usize,
    buf: Vec<u32>,
    pos: usize,
}

impl<'t, K: TableKey, V: Send + Sync> Iterator for Iter<'t, K, V> {
    type Item = EntryRef<'t, K, V>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(&idx) = self.buf.get(self.pos) {
                self.pos += 1;
                return Some(EntryRef {
                    table: self.table,
                    idx,
                });
            }
            if self.bucket >= self.table.buckets() {
                return None;
            }
            self.buf.clear();
            self.pos = 0;
            self.table
                .raw
                .collect_bucket(self.bucket as u32, 0, &mut self.buf);
            self.bucket += 1;
        }
    }
}

impl<K: TableKey, V: Send + Sync> Drop for Iter<'_, K, V> {
    fn drop(&mut self) {
        for &idx in &self.buf[self.pos..] {
            self.table.raw.put(idx);
        }
    }
}
