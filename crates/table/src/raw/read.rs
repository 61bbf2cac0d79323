//! The read paths: refcounted lookup, seqlock-validated peek, the best-effort walk used by
//! garbage collection (all lock-free), and the per-bucket snapshot taken under the stripe
//! lock (protocol notes in the parent module).

use super::{
    decode, is_live, is_nulls, link_of, nulls, Payload, RawTable, Slot, DYING, MIN_CHAINLEN,
};
use crate::key::{KeyWords, TableKey};
use crate::sync::{fence, spin_hint, Ordering};

impl<K: TableKey, P: Payload, const D: usize> RawTable<K, P, D> {
    /// The lock-free chain walk of every lookup: walks `key`'s chain (bucket and key bit
    /// `(b, bit)`) from `head`, a value of the bucket's head loaded at any earlier time,
    /// reading each node's link before its key (Minyard's rule), and calls `validate` on the
    /// first node whose key matches. `validate` returns the result, or `None` when the node
    /// turned out recycled or dying: then, as when the walk ends on another bucket's nulls
    /// marker (the node it stood on moved chains), the walk restarts from a fresh head load.
    /// Restarts are counted. A head whose summary lacks the key's bit ends the walk at once.
    #[inline(always)]
    fn walk_chain<R>(
        &self,
        key: &K::Words,
        (b, bit): (u32, u32),
        mut head: u32,
        mut validate: impl FnMut(u32, usize, &Slot<K, P, D>) -> Option<R>,
    ) -> Option<R> {
        'restart: loop {
            if head & bit == 0 {
                return None; // no node of this chain has the key's bit
            }
            let mut link = link_of(head);
            while !is_nulls(link) {
                let (idx, dir) = decode(link);
                let slot = self.slot(idx);
                let next = link_of(slot.next[dir].load(Ordering::Acquire));
                if key.matches(&slot.key[dir]) {
                    if let Some(r) = validate(idx, dir, slot) {
                        return Some(r);
                    }
                    break;
                }
                link = next;
            }
            if is_nulls(link) && link == nulls(b) {
                return None;
            }
            self.stats.restarts.fetch_add(1, Ordering::Relaxed);
            spin_hint();
            head = self.head(b);
            continue 'restart;
        }
    }

    /// Lock-free lookup; on success returns `(idx, dir)` with a reference held.
    pub(crate) fn lookup(&self, key: &K::Words) -> Option<(u32, usize)> {
        let loc = self.locate(key);
        self.walk_chain(key, loc, self.head(loc.0), |idx, dir, slot| {
            if self.try_get(slot) {
                if key.matches(&slot.key[dir]) && is_live(slot.flags.load(Ordering::Acquire)) {
                    return Some((idx, dir));
                }
                self.stats.recycled.fetch_add(1, Ordering::Relaxed);
                self.put(idx);
            }
            None
        })
    }

    /// Lock-free, reference-free read of a live entry: `read` may load only atomics of the
    /// slot; its result is returned only if `seq` proves the slot was one live incarnation with
    /// `key` throughout (seqlock validation).
    #[inline]
    pub(crate) fn peek<R>(
        &self,
        key: &K::Words,
        read: impl FnMut(&Slot<K, P, D>, usize) -> R,
    ) -> Option<R> {
        let (b, bit) = self.locate(key);
        self.peek_from(key, (b, bit), self.head(b), read)
    }

    /// The chain head of `bucket` (`Acquire`: pairs with the `Release` store that linked it).
    #[inline]
    pub(crate) fn head(&self, bucket: u32) -> u32 {
        self.heads[bucket as usize].load(Ordering::Acquire)
    }

    /// [`peek`](Self::peek) of `key`, whose bucket and key bit are `(b, bit)`
    /// ([`locate`](Self::locate)), starting from `head`, a value of the bucket's head loaded
    /// (with [`head`](Self::head)) at any earlier time: a walk that starts from an old head is
    /// the walk of a reader delayed after its first load, which the protocol already allows.
    /// Restarts reload the head.
    #[inline]
    pub(crate) fn peek_from<R>(
        &self,
        key: &K::Words,
        loc: (u32, u32),
        head: u32,
        mut read: impl FnMut(&Slot<K, P, D>, usize) -> R,
    ) -> Option<R> {
        self.walk_chain(key, loc, head, |_, dir, slot| {
            let s1 = slot.seq.load(Ordering::Acquire);
            let live = is_live(slot.flags.load(Ordering::Relaxed));
            let same = key.matches(&slot.key[dir]);
            let r = read(slot, dir);
            fence(Ordering::Acquire);
            let s2 = slot.seq.load(Ordering::Relaxed);
            (s1 & 1 == 0 && s1 == s2 && live && same).then_some(r)
        })
    }

    /// Best-effort lock-free walk of `bucket` (no nulls restart, bounded steps), calling `f`
    /// for each node until it returns false. Used by garbage collection, as the kernel's gc worker does.
    pub(crate) fn walk_lockfree(&self, bucket: u32, mut f: impl FnMut(u32, usize) -> bool) {
        let mut link = link_of(self.head(bucket));
        let mut steps = 0;
        while !is_nulls(link) && steps < 4 * (MIN_CHAINLEN + 32) {
            let (i, d) = decode(link);
            let next = link_of(self.slot(i).next[d].load(Ordering::Acquire));
            if !f(i, d) {
                return;
            }
            link = next;
            steps += 1;
        }
    }

    /// Under the bucket's stripe lock, takes a reference on every live node of `bucket` in
    /// direction `dir` and appends it to `out`. Consistent per bucket.
    pub(crate) fn collect_bucket(&self, bucket: u32, dir: usize, out: &mut Vec<u32>) {
        if is_nulls(self.heads[bucket as usize].load(Ordering::Acquire)) {
            // Empty when we looked: skip the lock. A racing insert bumps the change stamp.
            return;
        }
        let _g = self.lock_stripes(bucket, bucket);
        let mut link = link_of(self.heads[bucket as usize].load(Ordering::Relaxed));
        while !is_nulls(link) {
            let (i, d) = decode(link);
            let s = self.slot(i);
            if d == dir && s.flags.load(Ordering::Relaxed) & DYING == 0 {
                // Linked and not dying: the table's reference keeps the count above zero
                // while we hold the lock, so a plain increment is enough.
                self.get_more(i);
                out.push(i);
            }
            link = link_of(s.next[d].load(Ordering::Relaxed));
        }
    }
}
