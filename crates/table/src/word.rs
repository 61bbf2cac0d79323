//! [`WordTable`]: the nulls table with one `u64` value stored inline in each slot.
//!
//! # Values
//! The value is an `AtomicU64` in the slot itself (no box), so a lookup reads it with no
//! reference-count traffic at all: it is the seqlock-validated peek of the `raw` module
//! (`seq` even and unchanged around the loads, key rechecked, `HASHED && !DYING`), the same
//! read mode as [`NullsTable::peek_word`](crate::NullsTable::peek_word) (loom models in
//! `tests/loom_nulls.rs`). Because a reader never holds on to the value's memory, a value
//! may also change in place: [`WordTable::insert_or_replace`] stores the new value under the
//! key's stripe lock into the live entry (a reader sees the old or the new value), and needs
//! no free slot to do so.
//!
//! Concurrency contract of the value word: written with `Relaxed` before the slot is
//! published (`refcnt = 1`, `Release`, as every field of a prepared slot), afterwards only
//! under the stripe lock of its bucket while the entry is live; read by anyone, validated by
//! `seq`.

use crate::error::{InsertError, InsertErrorKind};
use crate::key::{KeyWords, TableKey};
use crate::raw::{LinkError, Payload, RawTable};
use crate::stats::{ChangeStamp, Stats};
use crate::sync::{AtomicU64, Ordering};

/// Slot payload of a [`WordTable`]: the value itself.
pub(crate) struct WordPayload {
    value: AtomicU64,
}

impl Payload for WordPayload {
    fn new_free() -> Self {
        Self {
            value: AtomicU64::new(0),
        }
    }

    fn release(&self) {}
}

/// A lock-free hash table of `K → u64` with the value stored inline in the slot.
///
/// Same table as [`NullsTable`](crate::NullsTable) (type-stable slots, nulls chains, striped
/// bucket locks for writers) but for values that fit in a word: lookups take no lock and
/// touch no reference count, and a replace updates the value in place. Pack small `Copy`
/// values (an index, a generation, a timestamp) into the word.
///
/// ```
/// use nlkit_table::WordTable;
///
/// let t: WordTable<u64> = WordTable::new(1024);
/// t.insert(7, 70).unwrap();
/// assert_eq!(t.get(&7), Some(70));
/// assert!(t.insert_or_replace(7, 71).unwrap()); // in place
/// assert_eq!(t.get(&7), Some(71));
/// assert!(t.remove(&7));
/// assert_eq!(t.get(&7), None);
/// ```
pub struct WordTable<K: TableKey> {
    raw: RawTable<K, WordPayload, 1>,
}

impl<K: TableKey> WordTable<K> {
    /// A table of `capacity` slots with `capacity.next_power_of_two()` buckets.
    ///
    /// ```
    /// let t: nlkit_table::WordTable<u32> = nlkit_table::WordTable::new(100);
    /// assert_eq!(t.capacity(), 100);
    /// ```
    pub fn new(capacity: usize) -> Self {
        Self::with_buckets(capacity, capacity)
    }

    /// A table of `capacity` slots (at most 2^26) with `buckets` (rounded up to a power of two,
    /// at most 2^27).
    ///
    /// ```
    /// let t: nlkit_table::WordTable<u32> = nlkit_table::WordTable::with_buckets(100, 16);
    /// assert_eq!(t.buckets(), 16);
    /// ```
    pub fn with_buckets(capacity: usize, buckets: usize) -> Self {
        let cap = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        let buckets = u32::try_from(buckets.max(1)).unwrap_or(u32::MAX);
        Self {
            raw: RawTable::new(buckets, cap.min(crate::arena::MAX_SLOTS)),
        }
    }

    /// Allocates and prepares a slot holding `key → value`, or says why not (`Exists` wins
    /// over `Full` for a present key, as with a free slot).
    fn prepare(&self, words: &K::Words, value: u64) -> Result<u32, InsertError<u64>> {
        let Some(idx) = self.raw.alloc() else {
            let kind = if self.raw.peek(words, |_, _| ()).is_some() {
                InsertErrorKind::Exists
            } else {
                self.raw.stats.full.fetch_add(1, Ordering::Relaxed);
                InsertErrorKind::Full
            };
            return Err(InsertError { kind, value });
        };
        self.raw.prepare(idx, &[*words], |p| {
            p.value.store(value, Ordering::Relaxed);
        });
        Ok(idx)
    }

    /// Inserts `key → value`; fails (handing `value` back) if the key is present or the table
    /// is full.
    ///
    /// ```
    /// use nlkit_table::{InsertErrorKind, WordTable};
    /// let t = WordTable::<u64>::new(1);
    /// t.insert(1, 10).unwrap();
    /// assert_eq!(t.insert(1, 11).unwrap_err().kind, InsertErrorKind::Exists);
    /// assert_eq!(t.insert(2, 20).unwrap_err().kind, InsertErrorKind::Full);
    /// ```
    pub fn insert(&self, key: K, value: u64) -> Result<(), InsertError<u64>> {
        let words = key.to_words();
        // A present key fails without taking a slot off the free list and putting it back
        // (the chain walked here is the one `link` walks next, now in cache).
        if self.raw.peek(&words, |_, _| ()).is_some() {
            self.raw.note_insert_failed(&key.to_words());
            return Err(InsertError {
                kind: InsertErrorKind::Exists,
                value,
            });
        }
        let idx = self.prepare(&words, value)?;
        match self.raw.link(idx, &[words]) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Never linked (`HASHED` never set): no reader validated it; just free it.
                self.raw.put(idx);
                let kind = match e {
                    LinkError::Exists(_) => InsertErrorKind::Exists,
                    LinkError::ChainTooLong => InsertErrorKind::ChainTooLong,
                };
                Err(InsertError { kind, value })
            }
        }
    }

    /// Sets `key → value`, in place if the key is present; returns whether a value was
    /// replaced. Readers see the old or the new value. Fails with `Full` only when the key
    /// is absent and no slot is free.
    ///
    /// ```
    /// let t = nlkit_table::WordTable::<u64>::new(1);
    /// assert!(!t.insert_or_replace(1, 10).unwrap());
    /// assert!(t.insert_or_replace(1, 11).unwrap()); // the table is full, but 1 is present
    /// assert_eq!((t.get(&1), t.len()), (Some(11), 1));
    /// ```
    pub fn insert_or_replace(&self, key: K, value: u64) -> Result<bool, InsertError<u64>> {
        let words = key.to_words();
        let store = |p: &WordPayload| p.value.store(value, Ordering::Relaxed);
        loop {
            if self.raw.update_locked(&words, store) {
                return Ok(true);
            }
            let idx = match self.prepare(&words, value) {
                Ok(idx) => idx,
                // Inserted meanwhile: update it in place.
                Err(e) if e.kind == InsertErrorKind::Exists => continue,
                Err(e) => return Err(e),
            };
            match self.raw.link(idx, &[words]) {
                Ok(()) => return Ok(false),
                Err(e) => {
                    self.raw.put(idx);
                    match e {
                        // Inserted by another thread between the two steps: update it.
                        LinkError::Exists(_) => continue,
                        LinkError::ChainTooLong => {
                            return Err(InsertError {
                                kind: InsertErrorKind::ChainTooLong,
                                value,
                            })
                        }
                    }
                }
            }
        }
    }

    /// The value of `key`, read without locks and without touching reference counts
    /// (seqlock-validated).
    ///
    /// ```
    /// let t = nlkit_table::WordTable::<u64>::new(8);
    /// t.insert(3, 30).unwrap();
    /// assert_eq!((t.get(&3), t.get(&4)), (Some(30), None));
    /// ```
    #[inline]
    pub fn get(&self, key: &K) -> Option<u64> {
        self.raw.peek(&key.to_words(), |s, _| {
            s.payload.value.load(Ordering::Relaxed)
        })
    }

    /// The values of many keys at once: `out[i]` becomes [`get`](Self::get)`(&keys[i])`.
    ///
    /// The lookups run in groups of 16 whose memory accesses overlap (all bucket heads
    /// first, then all first slots), so for a table larger than the CPU cache a batch costs
    /// far less than as many single lookups. Each result is exactly what `get` could have
    /// returned at some moment during the call (see the `batch` module).
    ///
    /// # Panics
    /// If `keys` and `out` differ in length.
    ///
    /// ```
    /// let t = nlkit_table::WordTable::<u64>::new(64);
    /// t.insert(3, 30).unwrap();
    /// t.insert(5, 50).unwrap();
    /// let mut out = [None; 3];
    /// t.get_batch(&[5, 4, 3], &mut out);
    /// assert_eq!(out, [Some(50), None, Some(30)]);
    /// ```
    pub fn get_batch(&self, keys: &[K], out: &mut [Option<u64>]) {
        assert_eq!(
            keys.len(),
            out.len(),
            "get_batch: keys and out differ in length"
        );
        self.raw.peek_batch(
            keys,
            |s, _| s.payload.value.load(Ordering::Relaxed),
            |i, v| out[i] = v,
        );
    }

    /// Whether `key` is present (lock-free, reference-free).
    ///
    /// ```
    /// let t = nlkit_table::WordTable::<u64>::new(8);
    /// t.insert(1, 0).unwrap();
    /// assert!(t.contains_key(&1) && !t.contains_key(&2));
    /// ```
    pub fn contains_key(&self, key: &K) -> bool {
        self.raw.peek(&key.to_words(), |_, _| ()).is_some()
    }

    /// Deletes `key`; returns whether this call deleted it.
    ///
    /// ```
    /// let t = nlkit_table::WordTable::<u64>::new(8);
    /// t.insert(1, 0).unwrap();
    /// assert!(t.remove(&1));
    /// assert!(!t.remove(&1));
    /// ```
    pub fn remove(&self, key: &K) -> bool {
        self.raw.remove_key(&key.to_words())
    }

    /// Visits every live entry, one bucket at a time under its stripe lock (each bucket a
    /// consistent snapshot; compare [`change_stamp`](Self::change_stamp)s for the whole pass),
    /// and deletes those for which `keep` returns false; returns how many this call deleted.
    ///
    /// ```
    /// let t = nlkit_table::WordTable::<u64>::new(8);
    /// for k in 0..6 { t.insert(k, k * 10).unwrap(); }
    /// assert_eq!(t.retain(|_, v| v >= 30), 3);
    /// let mut left = Vec::new();
    /// t.retain(|k, v| { left.push((k, v)); true });
    /// left.sort();
    /// assert_eq!(left, [(3, 30), (4, 40), (5, 50)]);
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(K, u64) -> bool) -> usize {
        let mut buf = Vec::new();
        let mut n = 0;
        for b in 0..self.raw.buckets() {
            buf.clear();
            self.raw.collect_bucket(b, 0, &mut buf);
            for &idx in &buf {
                // We hold a reference: this incarnation's key is stable.
                let slot = self.raw.slot(idx);
                let key = K::from_words(&KeyWords::load(&slot.key[0]));
                if !keep(key, slot.payload.value.load(Ordering::Relaxed)) && self.raw.kill(idx) {
                    n += 1;
                }
                self.raw.put(idx);
            }
        }
        n
    }

    /// Number of live entries (sums per-stripe counters; approximate under concurrency).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there are no live entries.
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

    /// Bytes used by buckets, locks and created slots (the whole table: values are inline).
    pub fn memory_bytes(&self) -> usize {
        self.raw.memory_bytes()
    }
}

impl<K: TableKey> std::fmt::Debug for WordTable<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}
