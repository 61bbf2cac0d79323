//! The nulls hash table core, shared by [`NullsTable`](crate::NullsTable) (one link per slot)
//! and [`ConnTable`](crate::ConnTable) (two links per slot, original and reply).
//!
//! # Protocol (in full, with the reason for each ordering: `crates/table/DESIGN.md` §2–§6)
//! - **Links** are `u32`: a node is `idx << 2 | dir << 1`; a *nulls* end marker is
//!   `bucket << 1 | 1`. Every link value is decodable, so a stale reader never leaves the arena.
//!   The top four bits of a link word are tags, not link: a bucket head carries the chain's
//!   *summary* (the OR of its nodes' key bits, one of four bits picked by the key's hash), a
//!   node's `next` carries the OR of the key bits of the nodes after it. Writers keep both
//!   under the stripe lock; the summary loses a bit only when recomputed from the nodes still
//!   linked, so a key that is linked always has its bit in the head.
//! - **Slot lifecycle**: free (`refcnt == 0`, `seq` odd) → prepared (key and payload written
//!   with `Relaxed`, `seq` made even with `Release`, then `refcnt = 1` with `Release`: "key
//!   before refcnt") → linked at the chain heads under the stripe locks (`HASHED` set, heads
//!   stored with `Release`) → killed (`DYING` set by one `fetch_or` winner, unlinked under the
//!   locks, its own `next` left intact) → the table's reference put; the last put (`Release`
//!   decrement, then an `Acquire` fence) makes `seq` odd, releases the payload and pushes the
//!   slot on the free list. It may be reused at once.
//! - **Lookup** takes no lock: a head whose summary lacks the key's bit ends it at once (the
//!   key is absent, without a slot read); otherwise load `next` (`Acquire`) before comparing
//!   the key; on a match
//!   take a reference with an `Acquire` CAS that never increments zero, then recheck the key
//!   and `HASHED && !DYING`; on failure put and restart. A walk that ends on another bucket's
//!   nulls marker restarts. Restarts are counted.
//! - **Peek** takes no reference: seqlock validation of `seq` around atomic field loads.

use crate::arena::{Arena, ArenaSlot, NIL};
use crate::key::{KeyWords, TableKey, WordHasher};
use crate::stats::{ChangeStamp, RawStats, Stats};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering, StripeGuard, StripeLock};

/// The entry is linked in its chains.
pub(crate) const HASHED: u32 = 1;
/// The entry is being (or has been) deleted; set once, by the winner.
pub(crate) const DYING: u32 = 2;

/// Whether `flags` say linked and not being deleted.
#[inline]
pub(crate) fn is_live(flags: u32) -> bool {
    flags & (HASHED | DYING) == HASHED
}

const LOCK_STRIPES: u32 = 1024;
/// Base chain-length cap for duplicate scans (the kernel's `MIN_CHAINLEN`), plus 0..31 random.
const MIN_CHAINLEN: u32 = 50;

mod link;
mod read;

pub(crate) use link::{decode, is_nulls, link_of, node};
use link::{nulls, MAX_BUCKETS, TAGS, TAG_SHIFT};

/// Per-slot payload stored next to the key. Every field a lock-free reader touches is atomic.
pub(crate) trait Payload: Send + Sync {
    fn new_free() -> Self;
    /// Called by the last `put` with exclusive ownership (refcount zero).
    fn release(&self);
}

/// One type-stable slot. All fields are atomics (or a payload whose reader-visible fields are):
/// lock-free readers may read a slot while it is recycled, and validate afterwards.
pub(crate) struct Slot<K: TableKey, P, const D: usize> {
    /// 0 = free; the table holds one reference while `HASHED && !DYING`.
    pub(crate) refcnt: AtomicU32,
    /// `HASHED`, `DYING`; written while prepared (store) or by `fetch_or`.
    pub(crate) flags: AtomicU32,
    /// Generation: odd while free or being prepared, even while published.
    pub(crate) seq: AtomicU32,
    /// Free-list link (only meaningful while free).
    free_next: AtomicU32,
    /// Chain links, one per direction, each with the key bits of the nodes after this one in
    /// its tag bits ([`TAGS`]); written only under the stripe lock of that chain.
    pub(crate) next: [AtomicU32; D],
    /// Keys, one per direction; written only while the slot is free/prepared.
    pub(crate) key: [<K::Words as KeyWords>::Atomic; D],
    pub(crate) payload: P,
}

impl<K: TableKey, P: Payload, const D: usize> ArenaSlot for Slot<K, P, D> {
    fn new_free() -> Self {
        Self {
            refcnt: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            seq: AtomicU32::new(1),
            free_next: AtomicU32::new(NIL),
            next: std::array::from_fn(|_| AtomicU32::new(nulls(0))),
            key: std::array::from_fn(|_| K::Words::new_atomic()),
            payload: P::new_free(),
        }
    }
    fn free_next(&self) -> &AtomicU32 {
        &self.free_next
    }
}

/// A lock stripe. `changes` and `live` are written only under `lock` and read without it;
/// `insert_failed` is a `Relaxed` counter bumped without the lock (per stripe, so inserts of
/// present keys on different cores do not all hit one cache line).
#[repr(align(64))]
struct Stripe {
    lock: StripeLock,
    /// Number of chain mutations under this stripe (monotonic; see [`ChangeStamp`]).
    changes: AtomicU64,
    /// Entries whose first-direction node is in a bucket of this stripe.
    live: AtomicU64,
    /// Inserts refused because the key was present (keys of this stripe's buckets).
    insert_failed: AtomicU64,
}

/// Why linking failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// A live entry already has this key in direction `dir` of the new entry.
    Exists(usize),
    /// A chain is longer than the randomised cap.
    ChainTooLong,
}

pub(crate) struct RawTable<K: TableKey, P: Payload, const D: usize> {
    /// Bucket heads: the first link and the chain's summary ([`TAGS`]) in one word, so a
    /// reader sees a summary that covers every node of the chain it starts to walk. Written
    /// only under the bucket's stripe lock (a summary only loses a bit when recomputed from
    /// the remaining nodes there), read lock-free (`Acquire`).
    heads: Box<[AtomicU32]>,
    bucket_mask: u32,
    stripes: Box<[Stripe]>,
    stripe_mask: u32,
    pub(crate) arena: Arena<Slot<K, P, D>>,
    hasher: WordHasher,
    pub(crate) stats: RawStats,
}

/// Guards of one or two stripes, taken in index order.
pub(crate) struct StripeGuards<'a> {
    _first: StripeGuard<'a>,
    _second: Option<StripeGuard<'a>>,
}

impl<K: TableKey, P: Payload, const D: usize> RawTable<K, P, D> {
    pub(crate) fn new(buckets: u32, capacity: u32) -> Self {
        let buckets = buckets.clamp(1, MAX_BUCKETS).next_power_of_two();
        let stripes = buckets.min(LOCK_STRIPES);
        Self {
            heads: (0..buckets).map(|b| AtomicU32::new(nulls(b))).collect(),
            bucket_mask: buckets - 1,
            stripes: (0..stripes)
                .map(|_| Stripe {
                    lock: StripeLock::default(),
                    changes: AtomicU64::new(0),
                    live: AtomicU64::new(0),
                    insert_failed: AtomicU64::new(0),
                })
                .collect(),
            stripe_mask: stripes - 1,
            arena: Arena::new(capacity),
            hasher: WordHasher::random(),
            stats: RawStats::default(),
        }
    }

    pub(crate) fn buckets(&self) -> u32 {
        self.bucket_mask + 1
    }

    #[inline]
    pub(crate) fn bucket(&self, key: &K::Words) -> u32 {
        self.locate(key).0
    }

    /// The bucket of `key` (low hash bits) and its key bit: one of the four [`TAGS`] bits,
    /// chosen by the two top hash bits (independent of the bucket).
    #[inline]
    pub(crate) fn locate(&self, key: &K::Words) -> (u32, u32) {
        let h = self.hasher.hash(key.words());
        (
            h as u32 & self.bucket_mask,
            1 << (TAG_SHIFT + (h >> 62) as u32),
        )
    }

    #[inline]
    pub(crate) fn slot(&self, idx: u32) -> &Slot<K, P, D> {
        self.arena.get(idx)
    }

    #[inline]
    fn stripe(&self, bucket: u32) -> &Stripe {
        &self.stripes[(bucket & self.stripe_mask) as usize]
    }

    fn lock_stripes(&self, a: u32, b: u32) -> StripeGuards<'_> {
        let (sa, sb) = (a & self.stripe_mask, b & self.stripe_mask);
        let (lo, hi) = (sa.min(sb), sa.max(sb));
        let g0 = self.stripes[lo as usize].lock.lock();
        let g1 = (hi != lo).then(|| self.stripes[hi as usize].lock.lock());
        StripeGuards {
            _first: g0,
            _second: g1,
        }
    }

    /// Records a mutation of `bucket`'s chain (caller holds its stripe lock).
    fn note_change(&self, bucket: u32) {
        let c = &self.stripe(bucket).changes;
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    fn add_live(&self, bucket: u32, delta: i64) {
        let l = &self.stripe(bucket).live;
        l.store(
            l.load(Ordering::Relaxed).wrapping_add(delta as u64),
            Ordering::Relaxed,
        );
    }

    /// Number of linked entries.
    pub(crate) fn len(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| s.live.load(Ordering::Relaxed))
            .sum::<u64>() as usize
    }

    /// See [`ChangeStamp`].
    pub(crate) fn change_stamp(&self) -> ChangeStamp {
        fence(Ordering::Acquire);
        ChangeStamp(
            self.stripes
                .iter()
                .map(|s| s.changes.load(Ordering::Acquire))
                .fold(0u64, u64::wrapping_add),
        )
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.stats.snapshot();
        s.insert_failed = self
            .stripes
            .iter()
            .map(|st| st.insert_failed.load(Ordering::Relaxed))
            .sum();
        s
    }

    /// Counts an insert refused because `key` was present.
    pub(crate) fn note_insert_failed(&self, key: &K::Words) {
        self.stripe(self.bucket(key))
            .insert_failed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a reference unless the count is zero. `Acquire` on success pairs with the
    /// `Release` publish in [`prepare`](Self::prepare), so the fields of the incarnation we
    /// pinned are visible to the recheck (the kernel 0ed8f619 bug class).
    #[inline]
    pub(crate) fn try_get(&self, slot: &Slot<K, P, D>) -> bool {
        let mut c = slot.refcnt.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return false;
            }
            assert!(c < u32::MAX / 2, "slot reference count overflow");
            match slot
                .refcnt
                .compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => c = x,
            }
        }
    }

    /// Adds a reference to a slot the caller already holds a reference on.
    #[inline]
    pub(crate) fn get_more(&self, idx: u32) {
        let old = self.slot(idx).refcnt.fetch_add(1, Ordering::Relaxed);
        assert!(old > 0 && old < u32::MAX / 2, "bad reference count");
    }

    /// Drops a reference; the last one frees the slot.
    #[inline]
    pub(crate) fn put(&self, idx: u32) {
        let slot = self.slot(idx);
        if slot.refcnt.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            self.free(idx);
        }
    }

    fn free(&self, idx: u32) {
        let slot = self.slot(idx);
        // Seqlock write side: make `seq` odd before any field of the slot changes again.
        let s = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(s | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.payload.release();
        slot.flags.store(0, Ordering::Relaxed);
        self.arena.push(idx);
    }

    /// Pops a free slot (refcount zero, `seq` odd), or `None` when the arena is full.
    pub(crate) fn alloc(&self) -> Option<u32> {
        self.arena.pop()
    }

    /// Writes keys and payload into a slot from [`alloc`](Self::alloc), then publishes it with
    /// one reference (the caller's, later the table's).
    pub(crate) fn prepare(&self, idx: u32, keys: &[K::Words; D], init: impl FnOnce(&P)) {
        let slot = self.slot(idx);
        for (k, a) in keys.iter().zip(&slot.key) {
            k.store(a);
        }
        init(&slot.payload);
        slot.flags.store(0, Ordering::Relaxed);
        let s = slot.seq.load(Ordering::Relaxed);
        slot.seq.store((s | 1).wrapping_add(1), Ordering::Release);
        slot.refcnt.store(1, Ordering::Release);
    }

    /// Chain-length cap for one duplicate scan, randomised as in the kernel.
    fn chain_cap(&self, bucket: u32, idx: u32) -> u32 {
        MIN_CHAINLEN + (self.hasher.hash(&[u64::from(bucket), u64::from(idx)]) as u32 & 31)
    }

    /// Under the stripe lock: the live node with `key` (whose bucket and key bit are
    /// `(bucket, bit)`) in `bucket`, if any. With `capped` (the slot being linked), a chain
    /// longer than its randomised cap is refused; the cap is only computed (a hash) once the
    /// walk passes [`MIN_CHAINLEN`].
    ///
    /// A chain whose summary lacks the key's bit is not walked at all (the key is absent),
    /// so its length is not checked either: a chain that long lacks a given bit with
    /// probability (3/4)^50 under the table's seeded hash, which the cap's attacker cannot
    /// steer.
    fn find_locked(
        &self,
        (bucket, bit): (u32, u32),
        key: &K::Words,
        capped: Option<u32>,
    ) -> Result<Option<u32>, LinkError> {
        let head = self.heads[bucket as usize].load(Ordering::Relaxed);
        if head & bit == 0 {
            return Ok(None);
        }
        let mut link = link_of(head);
        let mut n = 0;
        let mut cap = None;
        while !is_nulls(link) {
            n += 1;
            if n > MIN_CHAINLEN {
                if let Some(idx) = capped {
                    if n > *cap.get_or_insert_with(|| self.chain_cap(bucket, idx)) {
                        return Err(LinkError::ChainTooLong);
                    }
                }
            }
            let (i, d) = decode(link);
            let s = self.slot(i);
            if key.matches(&s.key[d]) && s.flags.load(Ordering::Relaxed) & DYING == 0 {
                return Ok(Some(i));
            }
            link = link_of(s.next[d].load(Ordering::Relaxed));
        }
        Ok(None)
    }

    /// Links node `(idx, dir)`, whose key has key bit `bit`, at the head of `bucket`'s chain.
    /// Its `next` takes the old head's link and summary (the key bits of the nodes after it).
    fn link_head_locked(&self, idx: u32, dir: usize, bucket: u32, bit: u32) {
        let slot = self.slot(idx);
        let head = &self.heads[bucket as usize];
        let old = head.load(Ordering::Relaxed);
        slot.next[dir].store(old, Ordering::Relaxed);
        head.store(node(idx, dir) | (old & TAGS) | bit, Ordering::Release);
        self.note_change(bucket);
    }

    /// Links a prepared slot at the heads of its chains, after checking (if `check`) that no
    /// live entry has any of its keys. On success the caller's reference becomes the table's.
    pub(crate) fn link(&self, idx: u32, keys: &[K::Words; D]) -> Result<(), LinkError> {
        let located: [(u32, u32); D] = std::array::from_fn(|d| self.locate(&keys[d]));
        let buckets: [u32; D] = std::array::from_fn(|d| located[d].0);
        let _g = self.lock_stripes(buckets[0], buckets[D - 1]);
        for d in 0..D {
            match self.find_locked(located[d], &keys[d], Some(idx)) {
                Ok(None) => {}
                Ok(Some(_)) => {
                    self.stripe(buckets[d])
                        .insert_failed
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(LinkError::Exists(d));
                }
                Err(e) => {
                    self.stats.chain_too_long.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        let slot = self.slot(idx);
        slot.flags.store(HASHED, Ordering::Relaxed);
        for (d, &(b, bit)) in located.iter().enumerate() {
            self.link_head_locked(idx, d, b, bit);
        }
        self.add_live(buckets[0], 1);
        Ok(())
    }

    /// Unlinks `target` from `bucket` (caller holds the stripe lock). The node's own `next`
    /// is left intact so that readers standing on it keep walking.
    ///
    /// Tags: each node's `next` carries the key bits of the nodes after it, so the bits of
    /// the chain past the target are in the target's own `next` and need no walk; the nodes
    /// before it (walked anyway) get their tags recomputed, and the head gets the new summary
    /// last, by then covering every node still linked. Readers only consult the head's
    /// summary, which therefore never lacks the bit of a linked key.
    fn unlink_locked(&self, bucket: u32, target: u32) -> bool {
        let head = &self.heads[bucket as usize];
        let first = head.load(Ordering::Relaxed);
        // Pass 1: find the target; for each of the four key bits, the position (1-based) of
        // the last node before the target that has it.
        let mut last = [0u32; 4];
        let mut pos = 0;
        let mut cur = link_of(first);
        let after = loop {
            if is_nulls(cur) {
                return false;
            }
            let (i, d) = decode(cur);
            let slot = self.slot(i);
            let word = slot.next[d].load(Ordering::Relaxed);
            if cur == target {
                break word;
            }
            pos += 1;
            let bit = self.locate(&K::Words::load(&slot.key[d])).1;
            last[(bit >> TAG_SHIFT).trailing_zeros() as usize] = pos;
            cur = link_of(word);
        };
        // Key bits of the nodes after position `i`, once the target is gone.
        let tags_after = |i: u32| {
            (0..4)
                .filter(|&b| last[b] > i)
                .fold(after & TAGS, |t, b| t | 1 << (TAG_SHIFT + b as u32))
        };
        let skip = |link: u32| if link == target { link_of(after) } else { link };
        // Pass 2: rewrite the tags of the nodes before the target; the one just before it
        // (if any) now links past it.
        let mut cur = link_of(first);
        let mut i = 0;
        while cur != target {
            let (n, d) = decode(cur);
            let next = &self.slot(n).next[d];
            let word = next.load(Ordering::Relaxed);
            i += 1;
            let new = skip(link_of(word)) | tags_after(i);
            if new != word {
                next.store(new, Ordering::Release);
            }
            cur = link_of(word);
        }
        head.store(skip(link_of(first)) | tags_after(0), Ordering::Release);
        self.note_change(bucket);
        true
    }

    /// Deletes a live entry the caller holds a reference on. Exactly one caller wins (returns
    /// true); the winner unlinks every direction and puts the table's reference.
    ///
    /// `DYING` is claimed while holding the stripe locks, so lookups that meet a dying entry
    /// (and restart) only spin for the few stores of the unlink, not for a lock wait.
    pub(crate) fn kill(&self, idx: u32) -> bool {
        let slot = self.slot(idx);
        if slot.flags.load(Ordering::Relaxed) & DYING != 0 {
            return false;
        }
        // Our reference pins this incarnation, so its keys are stable.
        let buckets: [u32; D] = std::array::from_fn(|d| self.bucket(&K::Words::load(&slot.key[d])));
        {
            let _g = self.lock_stripes(buckets[0], buckets[D - 1]);
            if slot.flags.fetch_or(DYING, Ordering::AcqRel) & DYING != 0 {
                return false;
            }
            for (d, &b) in buckets.iter().enumerate() {
                let found = self.unlink_locked(b, node(idx, d));
                debug_assert!(found, "killed entry not on its chain");
            }
            self.add_live(buckets[0], -1);
        }
        self.put(idx);
        true
    }

    /// Deletes the live entry whose direction-0 key is `key`, finding it under the stripe
    /// lock instead of pinning it first (two reference-count RMWs fewer than a lookup followed
    /// by [`kill`](Self::kill)). One-link tables only (`D == 1`): a two-link entry's other
    /// chain may be under another stripe, unknown before the entry is found.
    ///
    /// Under the lock a linked, non-dying node holds the table's reference, so claiming
    /// `DYING` (one winner, as in `kill`: here a plain store, since every writer of `DYING`
    /// in a one-link table holds this lock) and unlinking it before putting that reference
    /// follows the same protocol as `kill`.
    pub(crate) fn remove_key(&self, key: &K::Words) -> bool {
        debug_assert_eq!(D, 1, "remove_key is for one-link tables");
        let loc = self.locate(key);
        let b = loc.0;
        if self.peek_from(key, loc, self.head(b), |_, _| ()).is_none() {
            // No live entry with this key when we looked: absent then (no lock taken).
            return false;
        }
        let idx = {
            let _g = self.lock_stripes(b, b);
            let Ok(Some(idx)) = self.find_locked(loc, key, None) else {
                return false;
            };
            // `find_locked` returned a node without `DYING`, and in a one-link table every
            // writer of `DYING` holds this stripe lock: we are the one winner, and a plain
            // store (no read-modify-write) claims it.
            let flags = &self.slot(idx).flags;
            flags.store(flags.load(Ordering::Relaxed) | DYING, Ordering::Release);
            let found = self.unlink_locked(b, node(idx, 0));
            debug_assert!(found, "removed entry not on its chain");
            self.add_live(b, -1);
            idx
        };
        self.put(idx);
        true
    }

    /// Under the stripe lock, calls `f` on the live entry whose direction-0 key is `key`;
    /// false if there is none. `f` may only store atomics of the payload (the entry stays
    /// live and linked meanwhile, since deletes claim `DYING` under the same lock).
    pub(crate) fn update_locked(&self, key: &K::Words, f: impl FnOnce(&P)) -> bool {
        let loc = self.locate(key);
        let _g = self.lock_stripes(loc.0, loc.0);
        match self.find_locked(loc, key, None) {
            Ok(Some(idx)) => {
                f(&self.slot(idx).payload);
                true
            }
            _ => false,
        }
    }

    /// Replaces the live entry with the same key by the prepared slot `idx` in place (the new
    /// node takes the old one's chain position), or links `idx` at the head if there is none.
    /// Returns the replaced slot, whose table reference the caller must `put`.
    pub(crate) fn link_or_replace(
        &self,
        idx: u32,
        key: &K::Words,
    ) -> Result<Option<u32>, LinkError> {
        let (b, bit) = self.locate(key);
        let cap = self.chain_cap(b, idx);
        let _g = self.lock_stripes(b, b);
        let new = self.slot(idx);
        let mut prev = &self.heads[b as usize];
        let mut n = 0;
        loop {
            let word = prev.load(Ordering::Relaxed);
            let cur = link_of(word);
            if is_nulls(cur) {
                break;
            }
            n += 1;
            if n > cap {
                self.stats.chain_too_long.fetch_add(1, Ordering::Relaxed);
                return Err(LinkError::ChainTooLong);
            }
            let (i, d) = decode(cur);
            let old = self.slot(i);
            if key.matches(&old.key[d])
                && old.flags.load(Ordering::Relaxed) & DYING == 0
                && old.flags.fetch_or(DYING, Ordering::AcqRel) & DYING == 0
            {
                new.flags.store(HASHED, Ordering::Relaxed);
                // Same key, same key bit, same position: the old node's `next` word (link and
                // the bits of the nodes after it) and the tags of the word pointing at it stay
                // as they are.
                new.next[0].store(old.next[d].load(Ordering::Relaxed), Ordering::Relaxed);
                prev.store((word & TAGS) | node(idx, 0), Ordering::Release);
                self.note_change(b);
                return Ok(Some(i));
            }
            prev = &old.next[d];
        }
        new.flags.store(HASHED, Ordering::Relaxed);
        self.link_head_locked(idx, 0, b, bit);
        self.add_live(b, 1);
        Ok(None)
    }

    /// Exclusive visit of every slot still holding a reference (for `Drop`).
    pub(crate) fn drain_mut(&mut self, mut f: impl FnMut(&Slot<K, P, D>)) {
        self.arena.for_each_mut(|s| {
            if s.refcnt.load(Ordering::Relaxed) != 0 {
                f(s)
            }
        });
    }

    /// Approximate memory of the table structure (heads, stripes, created slots).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.heads.len() * std::mem::size_of::<AtomicU32>()
            + self.stripes.len() * std::mem::size_of::<Stripe>()
            + self.arena.created() as usize * std::mem::size_of::<Slot<K, P, D>>()
    }
}
