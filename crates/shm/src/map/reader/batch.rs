//! [`MapReader::get_batch`]: the lookups of many keys in groups, so that their cache misses
//! overlap instead of following one another (DESIGN.md §3.3).
//!
//! A lookup in a map much larger than the CPU cache waits for three dependent misses (bucket
//! head, slot, record), each a TLB miss too with 4 KiB pages. A group of [`BATCH`] keys is
//! looked up in three stages, each of which has the misses of every key in flight at once:
//!
//! 1. hash every key and load its bucket head in the first direction tried (`Acquire`);
//!    prefetch the first slot of every chain;
//! 2. read each first slot's key and location (`Relaxed`): prefetch the record when the key
//!    matches; when it does not, prefetch the chain's next slot and the key's bucket head in
//!    the next direction tried;
//!
//! 1 and 2 again for each further direction, for the keys not seen in a first slot yet (a
//! conntrack reply tuple: its original-direction chain does not start with it); then
//!
//! 3. the ordinary validated lookup of each key ([`MapReader::find`]), from the heads
//!    loaded before (a direction whose head was not loaded loads it then).
//!
//! Stages 1 and 2 decide nothing: they only warm the cache. Stage 3 starting from an earlier
//! head load is what a reader delayed after its first load does, which the protocol already
//! allows; its restarts reload the head, exactly as a single lookup's do. So a batch returns,
//! key by key, what [`get_first`](MapReader::get_first) would.

use super::{prefetch, MapReader};
use crate::map::layout::{decode_loc, half, Link, Loc};
use crate::map::{Entry, MAX_DIRS};
use crate::memory::Memory;
use crate::sync::Ordering;
use crate::ShmError;

/// Keys looked up together (stages 1 and 2 keep this many keys' misses in flight). 32: at 1M
/// conntrack entries `CtReader::get_many` took 294-298 ns per lookup in groups of 16, 230-262
/// with 32 and 248-256 with 64 (alternated runs of `cargo bench -p nlkit-view --bench ct_get`).
pub const BATCH: usize = 32;

/// Record bytes prefetched at most (the first cache lines of a longer record).
const PREFETCH_RECORD: usize = 256;

impl<M: Memory + ?Sized> MapReader<'_, M> {
    /// Stage 2 for one chain of direction `dir`: if its first slot `s` holds `key`, prefetches
    /// the record and returns true; else prefetches the chain's next slot. Plain `Relaxed`
    /// loads that decide nothing (stage 3 validates).
    #[inline]
    fn prefetch_match(&self, dir: usize, key: &[u64], s: u32) -> bool {
        if s >= self.g.layout.capacity {
            return false;
        }
        let w = self.slot(s);
        let at = self.g.key_at[dir];
        let matches = w[at..at + key.len()]
            .iter()
            .zip(key)
            .all(|(a, k)| a.load(Ordering::Relaxed) == *k);
        if !matches {
            if let Link::Slot(n) = Link::decode(half(
                w[self.g.link_at[dir / 2]].load(Ordering::Relaxed),
                dir,
            )) {
                self.prefetch_slot(n);
            }
            return false;
        }
        // An inline record came with the slot's lines; a heap record is another miss.
        let Ok(Loc::Heap { off, len }) = decode_loc(w[self.g.loc_at].load(Ordering::Relaxed), 0)
        else {
            return true;
        };
        if len == 0 {
            return true;
        }
        let bytes = len.min(PREFETCH_RECORD);
        if let Ok(rec) = self.mem.words(off, bytes.div_ceil(8)) {
            for line in rec.iter().step_by(8) {
                prefetch(line);
            }
            prefetch(&rec[rec.len() - 1]);
        }
        true
    }

    /// Looks every key of `keys` up, as [`get_first`](Self::get_first) with `dirs` would (a
    /// single direction `&[d]`: as [`get`](Self::get)), but a group of [`BATCH`] keys at a
    /// time, so that the cache misses of a group's lookups overlap: over a map much larger
    /// than the cache, several times as many lookups per second from one thread. Use it when
    /// there are many keys to look up at once.
    ///
    /// For each key in order, `f(i, result, buf)` is called with the key's index, its result
    /// (per key: `Ok(None)` when absent, [`ShmError::Contended`] or [`ShmError::Corrupt`] as
    /// a single lookup would return) and `buf`, to which the key's record was appended (at
    /// the length `buf` had before: the caller's callback keeps it, moves it, or clears
    /// `buf` for the next key). Nothing is allocated per key beyond growing `buf`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nlkit_shm::{MapLayout, Region, SharedMap};
    /// let region = Arc::new(Region::create("doc-batch").unwrap());
    /// let map = SharedMap::create(region, MapLayout::new(64).key(1, true).key(1, true)).unwrap();
    /// map.lock().insert(&[&[1], &[2]], 0, b"one-two").unwrap();
    /// map.lock().insert(&[&[3], &[4]], 0, b"three-four").unwrap();
    /// let mut found = Vec::new();
    /// let mut buf = Vec::new();
    /// map.reader().get_batch(&[0, 1], &[[4], [9], [1]], &mut buf, |i, r, buf| {
    ///     if let Some(e) = r.unwrap() {
    ///         found.push((i, e.dir, String::from_utf8(buf.clone()).unwrap()));
    ///     }
    ///     buf.clear();
    /// });
    /// assert_eq!(found, [(0, 1, "three-four".into()), (2, 0, "one-two".into())]);
    /// ```
    pub fn get_batch<K: AsRef<[u64]>>(
        &self,
        dirs: &[usize],
        keys: &[K],
        buf: &mut Vec<u8>,
        mut f: impl FnMut(usize, Result<Option<Entry>, ShmError>, &mut Vec<u8>),
    ) {
        let dirs = &dirs[..dirs.len().min(MAX_DIRS)];
        for (g, group) in keys.chunks(BATCH).enumerate() {
            // Per key, per direction tried: (bucket, head word) once loaded.
            let mut heads = [[None::<(u32, u64)>; MAX_DIRS]; BATCH];
            // Whether stage 2 saw the key in the first slot of a chain: no further direction
            // is warmed for it.
            let mut seen = [false; BATCH];
            for (j, &d) in dirs.iter().enumerate() {
                // Stage 1 for direction `d`: the heads (Acquire), then a prefetch of every
                // chain's first slot.
                for ((h, k), _) in heads.iter_mut().zip(group).zip(seen).filter(|(_, s)| !s) {
                    let key = k.as_ref();
                    if self.check_key(d, key).is_ok() {
                        let b = self.g.bucket(d, key);
                        h[j] = Some((b, self.head(d, b).load(Ordering::Acquire)));
                    }
                }
                for (h, _) in heads.iter().zip(seen).filter(|(_, s)| !s) {
                    if let Some((b, word)) = h[j] {
                        if let Link::Slot(s) = Link::decode(half(word, b as usize)) {
                            self.prefetch_slot(s);
                        }
                    }
                }
                // Stage 2: the record where the first slot holds the key; else the chain's
                // next slot and the next direction's bucket head.
                let next = dirs.get(j + 1).copied();
                for ((h, k), seen) in heads.iter().zip(group).zip(&mut seen) {
                    if *seen {
                        continue;
                    }
                    let key = k.as_ref();
                    if let Some((b, word)) = h[j] {
                        if let Link::Slot(s) = Link::decode(half(word, b as usize)) {
                            *seen = self.prefetch_match(d, key, s);
                        }
                    }
                    if let Some(n) = next.filter(|&n| !*seen && self.check_key(n, key).is_ok()) {
                        prefetch(self.head(n, self.g.bucket(n, key)));
                    }
                }
            }
            // Stage 3: the validated lookups, from the heads loaded above.
            for (i, (h, k)) in heads.iter().zip(group).enumerate() {
                let r = self.first_from(dirs, k.as_ref(), h, buf);
                f(g * BATCH + i, r, buf);
            }
        }
    }

    /// [`get_first`](Self::get_first) from bucket heads loaded before (`None`: load it).
    pub(super) fn first_from(
        &self,
        dirs: &[usize],
        key: &[u64],
        heads: &[Option<(u32, u64)>; MAX_DIRS],
        buf: &mut Vec<u8>,
    ) -> Result<Option<Entry>, ShmError> {
        let mut e = Entry::BLANK;
        for (&d, h) in dirs.iter().zip(heads) {
            if self.find(d, key, *h, buf, &mut e)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }
}
