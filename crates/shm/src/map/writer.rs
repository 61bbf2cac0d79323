//! The writer's operations (DESIGN.md §3.2): every change under the map's writer mutex, each
//! store ordered so that a validating reader sees either the old entry, the new one, or a
//! failed validation.

use super::heap::Heap;
use super::layout::{
    decode_loc, encode_inline, encode_loc, half, own, with_half, Link, Loc, H_CHANGES, H_HWM,
    H_LIVE, LOC_FREE, S_SEQ,
};
use super::reader::MapReader;
use super::{Arena, InsertError, Slot, MAX_DIRS, MAX_KEY_WORDS, MAX_RECORD};
use crate::memory::{copy_words, read_bytes, write_bytes};
use crate::sync::{fence, Ordering};
use crate::ShmError;

/// The writer's private state, behind the map's mutex.
#[derive(Debug)]
pub(crate) struct WriterState {
    /// Free slots below the high-water mark (reused last-freed first).
    pub(crate) free_slots: Vec<u32>,
    /// Slots ever used (the header's high-water word).
    pub(crate) hwm: u32,
    pub(crate) live: u64,
    /// The header's change counter (even between changes).
    pub(crate) changes: u64,
    pub(crate) heap: Heap,
    /// For each non-unique direction, each slot's predecessor in its chain (a [`Link`]:
    /// `Empty` = the bucket head), so removal from a long chain (many entries sharing one
    /// index key) is O(1). Unique directions walk their short chains instead.
    pub(crate) prev: [Vec<u32>; MAX_DIRS],
}

/// Where a chain link lives: a bucket head or a node's link half-word.
#[derive(Clone, Copy)]
enum LinkAt {
    Head(u32),
    Node(u32),
}

/// The writer's operations on the shared words, given the map's reader (for the words) and
/// arena (for heap growth).
pub(crate) struct Ops<'a, A: Arena + ?Sized> {
    pub(crate) r: MapReader<'a, A>,
    pub(crate) arena: &'a A,
    /// Where the heap's byte count is mirrored for lock-free `memory_bytes`.
    pub(crate) heap_bytes: &'a std::sync::atomic::AtomicU64,
}

impl<A: Arena + ?Sized> Ops<'_, A> {
    fn dirs(&self) -> usize {
        self.r.geometry().dirs
    }

    /// Whether `s` holds a published entry.
    pub(crate) fn is_live(&self, st: &WriterState, s: Slot) -> bool {
        s.0 < st.hwm && own(&self.r.slot(s.0)[S_SEQ]) & 1 == 0
    }

    fn key_words(&self, s: u32, d: usize) -> &[crate::sync::AtomicU64] {
        let g = self.r.geometry();
        let at = g.key_at[d];
        &self.r.slot(s)[at..at + g.layout.key_words[d] as usize]
    }

    fn load_link(&self, at: LinkAt, d: usize) -> Link {
        Link::decode(match at {
            LinkAt::Head(b) => half(own(self.r.head(d, b)), b as usize),
            LinkAt::Node(s) => half(own(&self.r.slot(s)[self.r.geometry().link_at[d / 2]]), d),
        })
    }

    /// Stores a link with Release: whoever loads it (Acquire) sees the node it names
    /// initialised.
    fn store_link(&self, at: LinkAt, d: usize, v: Link) {
        let (w, i) = match at {
            LinkAt::Head(b) => (self.r.head(d, b), b as usize),
            LinkAt::Node(s) => (&self.r.slot(s)[self.r.geometry().link_at[d / 2]], d),
        };
        w.store(with_half(own(w), i, v.encode()), Ordering::Release);
    }

    fn bucket_of_slot(&self, s: u32, d: usize) -> u32 {
        let mut k = [0u64; MAX_KEY_WORDS];
        let w = self.key_words(s, d);
        for (x, a) in k.iter_mut().zip(w) {
            *x = own(a);
        }
        self.r.geometry().bucket(d, &k[..w.len()])
    }

    /// The live entry under `key` in direction `d`.
    pub(crate) fn find(&self, d: usize, key: &[u64]) -> Option<Slot> {
        let g = self.r.geometry();
        if d >= g.dirs || key.len() != g.layout.key_words[d] as usize {
            return None;
        }
        let mut link = self.load_link(LinkAt::Head(g.bucket(d, key)), d);
        for _ in 0..=g.layout.capacity {
            let Link::Slot(s) = link else { return None };
            if self
                .key_words(s, d)
                .iter()
                .zip(key)
                .all(|(a, k)| own(a) == *k)
            {
                return Some(Slot(s));
            }
            link = self.load_link(LinkAt::Node(s), d);
        }
        None
    }

    fn begin_change(&self, st: &mut WriterState) {
        st.changes += 1;
        self.r
            .header(H_CHANGES)
            .store(st.changes, Ordering::Relaxed);
        // Orders the odd counter before every store of the change (pairs with a walk's
        // fence(Acquire) before it re-reads the counter).
        fence(Ordering::Release);
    }

    fn end_change(&self, st: &mut WriterState) {
        st.changes += 1;
        self.r.header(H_LIVE).store(st.live, Ordering::Relaxed);
        self.r
            .header(H_CHANGES)
            .store(st.changes, Ordering::Release);
    }

    /// Whether `record` goes into its slot's inline area rather than the heap.
    fn fits_inline(&self, record: &[u8]) -> bool {
        record.len() <= self.r.geometry().inline_bytes
    }

    /// Writes `record` into a new heap block; returns its location word.
    fn new_record(&self, st: &mut WriterState, record: &[u8]) -> Result<u64, ShmError> {
        if record.len() > MAX_RECORD {
            return Err(ShmError::TooLarge(record.len()));
        }
        let off = st.heap.alloc(self.arena, record.len())?;
        self.heap_bytes
            .store(st.heap.bytes, std::sync::atomic::Ordering::Relaxed);
        if !record.is_empty() {
            write_bytes(self.arena, off, record)?;
        }
        Ok(encode_loc(off, record.len()))
    }

    /// Where `record` will be: a new heap block written now (nobody can reach it yet), or
    /// `None` for a record that goes inline (written by [`put_inline`](Self::put_inline)
    /// once the slot is the writer's: free, fresh, or its seq odd).
    fn place(&self, st: &mut WriterState, record: &[u8]) -> Result<Option<u64>, ShmError> {
        if self.fits_inline(record) {
            Ok(None)
        } else {
            self.new_record(st, record).map(Some)
        }
    }

    /// Stores `record` (it fits) into slot words `w`'s inline area (Relaxed, zero-padded to
    /// a word); returns its location word.
    fn put_inline(&self, w: &[crate::sync::AtomicU64], record: &[u8]) -> u64 {
        let g = self.r.geometry();
        let area = &w[g.inline_at..g.inline_at + g.inline_bytes / 8];
        let mut chunks = record.chunks(8);
        for (a, c) in area.iter().zip(&mut chunks) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            a.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        encode_inline(record.len())
    }

    fn free_record(&self, st: &mut WriterState, loc: u64) {
        if let Ok(Loc::Heap { off, len }) = decode_loc(loc, self.r.geometry().inline_bytes) {
            st.heap.free(off, len);
        }
    }

    pub(crate) fn insert(
        &self,
        st: &mut WriterState,
        keys: &[&[u64]],
        aux: u64,
        record: &[u8],
    ) -> Result<Slot, InsertError> {
        let g = self.r.geometry().clone();
        if keys.len() != g.dirs
            || keys
                .iter()
                .enumerate()
                .any(|(d, k)| k.len() != g.layout.key_words[d] as usize)
        {
            return Err(ShmError::Corrupt("keys do not match the map's layout").into());
        }
        for (d, k) in keys.iter().enumerate() {
            if g.layout.unique[d] {
                if let Some(slot) = self.find(d, k) {
                    return Err(InsertError::Exists { dir: d, slot });
                }
            }
        }
        let (s, fresh) = match st.free_slots.last() {
            Some(s) => (*s, false),
            None if st.hwm < g.layout.capacity => (st.hwm, true),
            None => return Err(ShmError::Full("map slots").into()),
        };
        let heap = self.place(st, record)?;
        if !fresh {
            st.free_slots.pop();
        }
        self.begin_change(st);
        let w = self.r.slot(s);
        // The slot is free (seq odd since its removal, whose fence(Release) orders these
        // stores after it) or fresh (beyond the high-water mark, reachable by nobody).
        let old = own(&w[S_SEQ]);
        let loc = heap.unwrap_or_else(|| self.put_inline(w, record));
        w[g.aux_at].store(aux, Ordering::Relaxed);
        w[g.loc_at].store(loc, Ordering::Relaxed);
        for (d, k) in keys.iter().enumerate() {
            for (a, x) in w[g.key_at[d]..].iter().zip(k.iter()) {
                a.store(*x, Ordering::Relaxed);
            }
        }
        // Links to the current chain heads (whole words, Release: a reader standing on this
        // node from its previous life follows either its old next or the new chain).
        let mut buckets = [0u32; MAX_DIRS];
        let mut link_words = [0u64; MAX_DIRS.div_ceil(2)];
        for (d, k) in keys.iter().enumerate() {
            let b = g.bucket(d, k);
            buckets[d] = b;
            let next = match self.load_link(LinkAt::Head(b), d) {
                Link::Slot(h) => Link::Slot(h),
                _ => Link::Nulls(b),
            };
            link_words[d / 2] = with_half(link_words[d / 2], d, next.encode());
        }
        for (i, lw) in link_words.iter().enumerate().take(g.dirs.div_ceil(2)) {
            w[g.link_at[i]].store(*lw, Ordering::Release);
        }
        // Publish: seq even (Release: everything above is visible to whoever sees it).
        w[S_SEQ].store((old | 1) + 1, Ordering::Release);
        if fresh {
            st.hwm = s + 1;
            for d in 0..g.dirs {
                if !g.layout.unique[d] {
                    st.prev[d].push(Link::Empty.encode());
                }
            }
            self.r
                .header(H_HWM)
                .store(u64::from(st.hwm), Ordering::Release);
        }
        for d in 0..g.dirs {
            let b = buckets[d];
            if !g.layout.unique[d] {
                if let Link::Slot(h) = Link::decode(half(link_words[d / 2], d)) {
                    st.prev[d][h as usize] = Link::Slot(s).encode();
                }
                st.prev[d][s as usize] = Link::Empty.encode();
            }
            self.store_link(LinkAt::Head(b), d, Link::Slot(s));
        }
        st.live += 1;
        self.end_change(st);
        Ok(Slot(s))
    }

    pub(crate) fn replace(
        &self,
        st: &mut WriterState,
        slot: Slot,
        aux: u64,
        record: &[u8],
    ) -> Result<(), ShmError> {
        if !self.is_live(st, slot) {
            return Err(ShmError::NotFound(u64::from(slot.0)));
        }
        // A new heap block is written before the seq goes odd: nobody can reach it yet.
        let heap = self.place(st, record)?;
        self.begin_change(st);
        let g = self.r.geometry();
        let w = self.r.slot(slot.0);
        let s1 = own(&w[S_SEQ]);
        w[S_SEQ].store(s1 + 1, Ordering::Relaxed);
        // Orders the odd seq before the new inline bytes, location and aux (pairs with the
        // reader's fence(Acquire) before it re-reads the seq).
        fence(Ordering::Release);
        let old = own(&w[g.loc_at]);
        let loc = heap.unwrap_or_else(|| self.put_inline(w, record));
        w[g.loc_at].store(loc, Ordering::Relaxed);
        w[g.aux_at].store(aux, Ordering::Relaxed);
        w[S_SEQ].store(s1 + 2, Ordering::Release);
        // Only now may an old heap block be reused: a reader that copied it sees seq != s1.
        self.free_record(st, old);
        self.end_change(st);
        Ok(())
    }

    pub(crate) fn set_aux(&self, st: &mut WriterState, slot: Slot, aux: u64) {
        if !self.is_live(st, slot) {
            return;
        }
        self.begin_change(st);
        let w = self.r.slot(slot.0);
        let s1 = own(&w[S_SEQ]);
        w[S_SEQ].store(s1 + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        w[self.r.geometry().aux_at].store(aux, Ordering::Relaxed);
        w[S_SEQ].store(s1 + 2, Ordering::Release);
        self.end_change(st);
    }

    /// The test hook [`MapWriter::with_slot_mid_change`](super::MapWriter::with_slot_mid_change):
    /// the first half of a change (as `set_aux`), `f`, then the second half.
    pub(crate) fn with_slot_mid_change<R>(
        &self,
        st: &mut WriterState,
        slot: Slot,
        f: impl FnOnce() -> R,
    ) -> R {
        if !self.is_live(st, slot) {
            return f();
        }
        self.begin_change(st);
        let w = self.r.slot(slot.0);
        let s1 = own(&w[S_SEQ]);
        w[S_SEQ].store(s1 + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let r = f();
        w[S_SEQ].store(s1 + 2, Ordering::Release);
        self.end_change(st);
        r
    }

    pub(crate) fn remove(&self, st: &mut WriterState, slot: Slot) {
        if !self.is_live(st, slot) {
            return;
        }
        let s = slot.0;
        let g = self.r.geometry().clone();
        self.begin_change(st);
        let w = self.r.slot(s);
        let s1 = own(&w[S_SEQ]);
        w[S_SEQ].store(s1 + 1, Ordering::Relaxed);
        // Orders the odd seq before the unlinks and before any later reuse of the slot or its
        // block (pairs with the reader's fence(Acquire) before it re-reads the seq).
        fence(Ordering::Release);
        for d in 0..g.dirs {
            // The node keeps its own next link: a reader standing on it walks on.
            let next = self.load_link(LinkAt::Node(s), d);
            let pred = if g.layout.unique[d] {
                self.predecessor(s, d)
            } else {
                match Link::decode(st.prev[d][s as usize]) {
                    Link::Slot(p) => LinkAt::Node(p),
                    _ => LinkAt::Head(self.bucket_of_slot(s, d)),
                }
            };
            let stored = match (pred, next) {
                (LinkAt::Head(b), Link::Nulls(nb)) if nb == b => Link::Empty,
                (_, n) => n,
            };
            self.store_link(pred, d, stored);
            if !g.layout.unique[d] {
                if let Link::Slot(n) = next {
                    st.prev[d][n as usize] = st.prev[d][s as usize];
                }
            }
        }
        let loc = own(&w[g.loc_at]);
        w[g.loc_at].store(LOC_FREE, Ordering::Relaxed);
        self.free_record(st, loc);
        st.free_slots.push(s);
        st.live -= 1;
        self.end_change(st);
    }

    /// The link that names `s` in direction `d`'s chain (a head or a node).
    fn predecessor(&self, s: u32, d: usize) -> LinkAt {
        let b = self.bucket_of_slot(s, d);
        let mut at = LinkAt::Head(b);
        for _ in 0..=self.r.geometry().layout.capacity {
            match self.load_link(at, d) {
                Link::Slot(x) if x == s => return at,
                Link::Slot(x) => at = LinkAt::Node(x),
                _ => break,
            }
        }
        // Unreachable for a live slot (the writer links every live entry); stay harmless.
        debug_assert!(false, "live slot {s} not on its chain");
        at
    }

    pub(crate) fn aux(&self, st: &WriterState, slot: Slot) -> u64 {
        if !self.is_live(st, slot) {
            return 0;
        }
        own(&self.r.slot(slot.0)[self.r.geometry().aux_at])
    }

    pub(crate) fn record(&self, st: &WriterState, slot: Slot, out: &mut Vec<u8>) {
        if !self.is_live(st, slot) {
            return;
        }
        let g = self.r.geometry();
        let w = self.r.slot(slot.0);
        match decode_loc(own(&w[g.loc_at]), g.inline_bytes) {
            Ok(Loc::Heap { off, len }) if len > 0 => {
                let _ = read_bytes(self.arena, off, len, out);
            }
            Ok(Loc::Inline { len }) => copy_words(&w[g.inline_at..], len, out),
            _ => {}
        }
    }

    pub(crate) fn key(&self, st: &WriterState, slot: Slot, d: usize) -> [u64; MAX_KEY_WORDS] {
        let mut k = [0u64; MAX_KEY_WORDS];
        if d < self.dirs() && self.is_live(st, slot) {
            for (x, a) in k.iter_mut().zip(self.key_words(slot.0, d)) {
                *x = own(a);
            }
        }
        k
    }

    pub(crate) fn retain(
        &self,
        st: &mut WriterState,
        mut keep: impl FnMut(Slot, u64) -> bool,
    ) -> usize {
        let mut n = 0;
        for s in 0..st.hwm {
            let slot = Slot(s);
            if self.is_live(st, slot) && !keep(slot, self.aux(st, slot)) {
                self.remove(st, slot);
                n += 1;
            }
        }
        n
    }
}
