//! [`MapReader`]: lock-free, validating lookups and walks (DESIGN.md §3.3).

use std::fmt;

use super::layout::{
    decode_loc, half, Geometry, Link, Loc, HEADER_WORDS, H_CHANGES, H_HWM, H_LIVE, LINE_WORDS,
    LOC_FREE, S_SEQ,
};
use super::{Entry, MapLayout, Slot, Walk, MAX_DIRS, MAX_KEY_WORDS};
use crate::memory::{copy_words, Memory};
use crate::sync::{fence, spin, AtomicU64, Ordering};
use crate::ShmError;

mod batch;
mod chain;
pub use batch::BATCH;

/// Restarts of one lookup before it gives up with [`ShmError::Contended`].
#[cfg(not(loom))]
const MAX_RESTARTS: u32 = 1024;
#[cfg(loom)]
const MAX_RESTARTS: u32 = 4;

/// Reads of one slot being changed (with a CPU pause between them) before a walk starts
/// yielding the processor to the writer.
#[cfg(not(loom))]
const WALK_TRIES: u32 = 256;
#[cfg(loom)]
const WALK_TRIES: u32 = 3;

/// How far ahead of the slot it reads a walk prefetches, in bytes.
const WALK_AHEAD: usize = 2048;

/// How long a walk waits, yielding the processor, for a slot to leave the middle of a change
/// (the writer may be descheduled inside it) before it skips the slot and counts it in
/// [`Walk::skipped`]. A writer's change is a handful of stores, so only a writer that is not
/// running keeps a slot odd; this is a time slice or two of a loaded machine.
#[cfg(not(loom))]
const WALK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// A lock-free, validating reader of a map in any [`Memory`] (the writer's
/// [`Region`](crate::Region), a client's [`RegionView`](crate::RegionView), or
/// [`HeapMemory`](crate::HeapMemory) with arbitrary contents). Every method returns an error,
/// never panics, on any memory contents; every loop is bounded by the capacity.
///
/// ```
/// use std::sync::Arc;
/// use nlkit_shm::{HeapMemory, MapLayout, MapReader, Region, RegionView, SharedMap};
///
/// // The writer: a map with a unique 2-word key and a non-unique 1-word index.
/// let region = Arc::new(Region::create("doc").unwrap());
/// let map = SharedMap::create(region.clone(), MapLayout::new(64).key(2, true).key(1, false))
///     .unwrap();
/// map.lock().insert(&[&[10, 1], &[5]], 0, b"first").unwrap();
/// map.lock().insert(&[&[10, 2], &[5]], 0, b"second").unwrap();
/// region.publish(0x42, map.offset()).unwrap();
///
/// // A client: its own read-only mapping of the memfd.
/// let view = RegionView::map(region.fd().try_clone_to_owned().unwrap()).unwrap();
/// let reader = MapReader::open(&view, view.find(0x42).unwrap()).unwrap();
/// let mut out = Vec::new();
/// let e = reader.get(0, &[10, 2], &mut out).unwrap().unwrap();
/// assert_eq!((out.as_slice(), e.key(1, reader.layout())), (&b"second"[..], &[5][..]));
/// let mut n = 0;
/// reader.get_all(1, &[5], |_, _| { n += 1; true }).unwrap();
/// assert_eq!(n, 2);
/// let walk = reader.walk(|_, _| true).unwrap();
/// assert!(walk.consistent && walk.visited == 2);
///
/// // Garbage is an error, never a panic.
/// let junk = HeapMemory::from_words(&[7; 32]);
/// assert!(MapReader::open(&junk, 0).is_err());
/// ```
pub struct MapReader<'m, M: Memory + ?Sized> {
    mem: &'m M,
    g: Geometry,
    hdr: &'m [AtomicU64],
    slots: &'m [AtomicU64],
    heads: [&'m [AtomicU64]; MAX_DIRS],
}

impl<M: Memory + ?Sized> fmt::Debug for MapReader<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapReader")
            .field("offset", &self.g.hdr)
            .field("layout", &self.g.layout)
            .finish_non_exhaustive()
    }
}

/// What one seqlock read of a slot found.
pub(crate) enum SlotRead {
    /// A published entry (read into the caller's [`Entry`], its record appended to the
    /// buffer).
    Live,
    /// A free slot.
    Free,
    /// The slot changed during the read, or is being changed.
    Changed,
}

/// Asks the CPU to bring the cache line of `w` in (x86-64); nothing elsewhere and under loom.
#[inline(always)]
pub(crate) fn prefetch(w: &AtomicU64) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address, and changes no
    // memory; `_mm_prefetch` is `unsafe` only as a raw-pointer intrinsic (SSE, which x86-64
    // always has). The address is that of a live reference anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(w.as_ptr().cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = w;
}

/// A map's header as [`MapReader::open`] validated it: reopen the same map with
/// [`MapReader::with_header`] without validating the header again (a lookup's fixed cost).
///
/// The header is fixed when the map is created, so what was validated once stays valid; the
/// arrays it names are still checked against the memory they are used with.
///
/// ```
/// use std::sync::Arc;
/// use nlkit_shm::{MapLayout, MapReader, Region, SharedMap};
/// let region = Arc::new(Region::create("doc-header").unwrap());
/// let map = SharedMap::create(region.clone(), MapLayout::new(64).key(1, true)).unwrap();
/// map.lock().insert(&[&[7]], 0, b"seven").unwrap();
/// let header = MapReader::open(&*region, map.offset()).unwrap().header_checked();
/// let reader = MapReader::with_header(&*region, &header).unwrap();
/// assert!(reader.get(0, &[7], &mut Vec::new()).unwrap().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct CheckedHeader(Geometry);

impl<'m, M: Memory + ?Sized> MapReader<'m, M> {
    /// Opens the map whose header is at `off`, validating the header: magic, layout (key
    /// sizes, directions, capacity, power-of-two buckets), slot stride, and that the slot and
    /// bucket arrays lie inside the memory.
    pub fn open(mem: &'m M, off: u64) -> Result<Self, ShmError> {
        let g = Geometry::read(mem, off)?;
        Self::with_geometry(mem, g)
    }

    pub(crate) fn with_geometry(mem: &'m M, g: Geometry) -> Result<Self, ShmError> {
        let hdr = mem.words(g.hdr, HEADER_WORDS)?;
        let slots = g.slot_array(mem)?;
        let mut heads: [&'m [AtomicU64]; MAX_DIRS] = [&[]; MAX_DIRS];
        for (d, h) in heads.iter_mut().enumerate().take(g.dirs) {
            *h = g.bucket_array(mem, d)?;
        }
        Ok(MapReader {
            mem,
            g,
            hdr,
            slots,
            heads,
        })
    }

    /// The map's layout (as validated at `open`).
    pub fn layout(&self) -> &MapLayout {
        &self.g.layout
    }

    /// The header this reader validated, to reopen the map later without validating it
    /// again ([`with_header`](Self::with_header)).
    pub fn header_checked(&self) -> CheckedHeader {
        CheckedHeader(self.g.clone())
    }

    /// A reader of the map whose header was validated before
    /// ([`header_checked`](Self::header_checked)): checks only that its arrays lie in `mem`
    /// (a few bounds checks, no header reads).
    pub fn with_header(mem: &'m M, header: &CheckedHeader) -> Result<Self, ShmError> {
        Self::with_geometry(mem, header.0.clone())
    }

    /// The words of slot `s` (`s < capacity`).
    #[inline]
    pub(crate) fn slot(&self, s: u32) -> &'m [AtomicU64] {
        let at = s as usize * self.g.stride_words;
        &self.slots[at..at + self.g.stride_words]
    }

    /// The bucket head of `b` in direction `d`.
    #[inline]
    pub(crate) fn head(&self, d: usize, b: u32) -> &'m AtomicU64 {
        &self.heads[d][b as usize / 2]
    }

    pub(crate) fn header(&self, i: usize) -> &'m AtomicU64 {
        &self.hdr[i]
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.g
    }

    /// Checks a caller's direction and key against the layout.
    pub(super) fn check_key(&self, dir: usize, key: &[u64]) -> Result<(), ShmError> {
        if dir >= self.g.dirs || key.len() != self.g.layout.key_words[dir] as usize {
            return Err(ShmError::Corrupt("key does not match the map's layout"));
        }
        Ok(())
    }

    /// The key words of every direction of slot words `w` into `keys` (Relaxed loads;
    /// validated by the caller's seqlock read; the words past each direction's key are left
    /// as they are).
    #[inline(always)]
    fn load_keys(&self, w: &[AtomicU64], keys: &mut [[u64; MAX_KEY_WORDS]; MAX_DIRS]) {
        for (d, k) in keys.iter_mut().enumerate().take(self.g.dirs) {
            let at = self.g.key_at[d];
            let n = self.g.layout.key_words[d] as usize;
            for (x, a) in k.iter_mut().zip(&w[at..at + n]) {
                *x = a.load(Ordering::Relaxed);
            }
        }
    }

    /// The end of a seqlock read that began with seq `s1`: appends the record at `loc` to
    /// `buf` (bounds-checked once, its words loaded Relaxed straight into the buffer's spare
    /// capacity), fence(Acquire), seq again. `Ok(false)` when the slot changed meanwhile;
    /// then, and on an error, `buf` is cut back to `base`. A bad location in a slot that stayed
    /// stable is what the writer published: corruption.
    #[inline]
    fn copy_stable(
        &self,
        w: &[AtomicU64],
        s1: u64,
        loc: u64,
        buf: &mut Vec<u8>,
        base: usize,
    ) -> Result<bool, ShmError> {
        let copied = match decode_loc(loc, self.g.inline_bytes) {
            Err(e) => Err(e),
            Ok(Loc::Heap { len: 0, .. }) => Ok(()),
            Ok(Loc::Heap { off, len }) => crate::memory::read_bytes(self.mem, off, len, buf),
            // In the slot itself: `len` is at most the inline area, which the slot holds.
            Ok(Loc::Inline { len }) => match w.get(self.g.inline_at..) {
                Some(area) if len <= area.len() * 8 => {
                    copy_words(area, len, buf);
                    Ok(())
                }
                _ => Err(ShmError::Corrupt("inline record beyond its slot")),
            },
        };
        fence(Ordering::Acquire);
        if w[S_SEQ].load(Ordering::Relaxed) != s1 {
            buf.truncate(base);
            return Ok(false);
        }
        if let Err(e) = copied {
            buf.truncate(base);
            return Err(e);
        }
        Ok(true)
    }

    /// Prefetches the cache lines of slot words `w` after the first (which the caller is
    /// about to load), so that their misses overlap the first one's instead of following it.
    #[inline(always)]
    pub(crate) fn prefetch_rest(&self, w: &[AtomicU64]) {
        // A word every line from the second, and the last word (a stride that is not a
        // multiple of 64 may end on one line more).
        // An index loop: `step_by` does not fold into one here (it was a call per slot).
        let mut i = LINE_WORDS;
        while i < w.len() {
            prefetch(&w[i]);
            i += LINE_WORDS;
        }
        if let Some(last) = w.last() {
            prefetch(last);
        }
    }

    /// One seqlock read of slot `s` into `e` (filled in place, as a chain walk's: a walk
    /// reads every slot): seq (Acquire), then aux, location, keys and record words
    /// (Relaxed), fence(Acquire), seq again. The record is appended to `buf` (and cut off
    /// again when the read fails validation); `e` holds any words unless the slot was live.
    #[inline]
    pub(crate) fn read_slot(
        &self,
        s: u32,
        dir: usize,
        buf: &mut Vec<u8>,
        e: &mut Entry,
    ) -> Result<SlotRead, ShmError> {
        let w = self.slot(s);
        let base = buf.len();
        let s1 = w[S_SEQ].load(Ordering::Acquire);
        if s1 & 1 == 1 {
            // Free (location marker) or being changed; no validation needed: either way
            // there is no entry to return.
            return Ok(if w[self.g.loc_at].load(Ordering::Relaxed) == LOC_FREE {
                SlotRead::Free
            } else {
                SlotRead::Changed
            });
        }
        e.aux = w[self.g.aux_at].load(Ordering::Relaxed);
        let loc = w[self.g.loc_at].load(Ordering::Relaxed);
        self.load_keys(w, &mut e.keys);
        if !self.copy_stable(w, s1, loc, buf, base)? {
            return Ok(SlotRead::Changed);
        }
        e.slot = Slot(s);
        e.generation = s1;
        e.dir = dir;
        Ok(SlotRead::Live)
    }

    /// A lookup's seqlock read of slot `s`, found in the chain of `key` in direction `dir`:
    /// seq (Acquire); aux, location and the keys of every direction (Relaxed); the key of
    /// `dir` must still be `key` (else the slot was reused under the lookup: restart, without
    /// copying a record that is not the key's); the record words (Relaxed, straight into
    /// `buf`); fence(Acquire); seq again. The record is cut off again when the read fails.
    ///
    /// `Ok(true)`: the entry was live, and is in `e` (filled in place: a walk hands out many
    /// entries, and an [`Entry`] is too large to move around cheaply); `Ok(false)`: restart
    /// (`e` then holds any words).
    #[inline(always)]
    pub(super) fn read_match(
        &self,
        s: u32,
        dir: usize,
        key: &[u64],
        buf: &mut Vec<u8>,
        e: &mut Entry,
    ) -> Result<bool, ShmError> {
        let w = self.slot(s);
        let base = buf.len();
        let s1 = w[S_SEQ].load(Ordering::Acquire);
        if s1 & 1 == 1 {
            // Free or being changed: no entry to return either way.
            return Ok(false);
        }
        e.aux = w[self.g.aux_at].load(Ordering::Relaxed);
        let loc = w[self.g.loc_at].load(Ordering::Relaxed);
        self.load_keys(w, &mut e.keys);
        // Word by word (a slice comparison would call `memcmp` for five words).
        if e.keys[dir].iter().zip(key).any(|(a, k)| a != k) {
            // Whatever the slot holds now, it is not this key's entry (seq stable or not):
            // the chain changed under the lookup.
            return Ok(false);
        }
        if !self.copy_stable(w, s1, loc, buf, base)? {
            return Ok(false);
        }
        e.slot = Slot(s);
        e.generation = s1;
        e.dir = dir;
        Ok(true)
    }

    /// The head word of `key`'s bucket in direction `dir` (Acquire), loaded ahead of a
    /// search so that the loads of several directions' heads overlap; `None` for a
    /// direction or key that does not match the layout (the search reports it).
    #[inline]
    fn head_ahead(&self, dir: usize, key: &[u64]) -> Option<(u32, u64)> {
        self.check_key(dir, key).ok()?;
        let b = self.g.bucket(dir, key);
        Some((b, self.head(dir, b).load(Ordering::Acquire)))
    }

    /// Prefetches every cache line of slot `s` (nothing for a slot beyond the capacity).
    #[inline]
    pub(crate) fn prefetch_slot(&self, s: u32) {
        if s < self.g.layout.capacity {
            let w = self.slot(s);
            prefetch(&w[0]);
            self.prefetch_rest(w);
        }
    }

    /// Looks `key` up in direction `dir` (normally a unique one; in a non-unique direction the
    /// first entry found); appends the record to `out`. `Ok(None)` when absent;
    /// [`ShmError::Contended`] when the entry kept changing while it was read;
    /// [`ShmError::Corrupt`] when `dir` or the key's length does not match the layout, or the
    /// memory holds what no writer writes.
    pub fn get(
        &self,
        dir: usize,
        key: &[u64],
        out: &mut Vec<u8>,
    ) -> Result<Option<Entry>, ShmError> {
        let mut e = Entry::BLANK;
        Ok(self.find(dir, key, None, out, &mut e)?.then_some(e))
    }

    /// Looks `key` up in each direction of `dirs` in turn (as [`get`](Self::get)), and
    /// appends the record of the first entry found to `out`: a conntrack tuple that may be
    /// an original or a reply tuple. The bucket heads of all the directions are loaded
    /// first, so their cache misses overlap; the chains are then walked one after the other.
    /// At most [`MAX_DIRS`] directions are used.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nlkit_shm::{MapLayout, Region, SharedMap};
    /// let region = Arc::new(Region::create("doc-first").unwrap());
    /// let map = SharedMap::create(region, MapLayout::new(64).key(1, true).key(1, true)).unwrap();
    /// map.lock().insert(&[&[1], &[2]], 0, b"one-two").unwrap();
    /// let mut out = Vec::new();
    /// let e = map.reader().get_first(&[0, 1], &[2], &mut out).unwrap().unwrap();
    /// assert_eq!((e.dir, out.as_slice()), (1, &b"one-two"[..]));
    /// ```
    pub fn get_first(
        &self,
        dirs: &[usize],
        key: &[u64],
        out: &mut Vec<u8>,
    ) -> Result<Option<Entry>, ShmError> {
        let dirs = &dirs[..dirs.len().min(MAX_DIRS)];
        let mut heads = [None; MAX_DIRS];
        for (h, &d) in heads.iter_mut().zip(dirs) {
            *h = self.head_ahead(d, key);
        }
        // The first slot of every later direction's chain too (the first direction's is
        // loaded at once by its walk): a reply tuple's slot then arrives while the first
        // chain is walked. A hint only: the walks below decide everything.
        for (b, word) in heads.iter().skip(1).flatten() {
            if let Link::Slot(s) = Link::decode(half(*word, *b as usize)) {
                self.prefetch_slot(s);
            }
        }
        self.first_from(dirs, key, &heads, out)
    }

    /// Reads one slot (`None` when it is free or beyond the slots ever used).
    pub fn read(&self, slot: Slot, out: &mut Vec<u8>) -> Result<Option<Entry>, ShmError> {
        if slot.0 >= self.high_water() {
            return Ok(None);
        }
        let mut e = Entry::BLANK;
        for _ in 0..MAX_RESTARTS {
            match self.read_slot(slot.0, 0, out, &mut e)? {
                SlotRead::Live => return Ok(Some(e)),
                SlotRead::Free => return Ok(None),
                SlotRead::Changed => spin(),
            }
        }
        Err(ShmError::Contended)
    }

    /// Slots ever used (Acquire: pairs with the writer's Release store after it published a
    /// fresh slot), capped at the capacity.
    pub(crate) fn high_water(&self) -> u32 {
        let h = self.hdr[H_HWM].load(Ordering::Acquire);
        h.min(u64::from(self.g.layout.capacity)) as u32
    }

    /// Calls `f` with every live entry in slot order, until it returns false. Bounded by the
    /// capacity: never loops forever.
    ///
    /// A slot found in the middle of a change is read again, first with CPU pauses, then
    /// yielding the processor (the writer may have been descheduled inside its change), for
    /// up to about 50 ms. A slot still mid-change after that is skipped and counted in
    /// [`Walk::skipped`]; a walk that skipped anything is never
    /// [`consistent`](Walk::consistent). A walk never silently misses an entry: either
    /// `skipped` is non-zero, or every entry live throughout the walk was visited (and, when
    /// `consistent`, the visited entries are exactly the map's contents at one moment).
    pub fn walk(&self, mut f: impl FnMut(&Entry, &[u8]) -> bool) -> Result<Walk, ShmError> {
        let c1 = self.hdr[H_CHANGES].load(Ordering::Acquire);
        let hwm = self.high_water();
        let mut walk = Walk::default();
        let mut buf = Vec::new();
        let mut e = Entry::BLANK;
        // Slots are read in order; the lines WALK_AHEAD bytes ahead are prefetched, so that
        // the next page's TLB miss and first lines (which the hardware prefetcher, stopping at
        // page boundaries, does not fetch) overlap the copying of this one's.
        let ahead = (WALK_AHEAD / (self.g.stride_words * 8)).max(1) as u32;
        'slots: for s in 0..hwm {
            if s + ahead < hwm {
                self.prefetch_slot(s + ahead);
            }
            let mut waiter = SlotWait::new();
            loop {
                buf.clear();
                match self.read_slot(s, 0, &mut buf, &mut e)? {
                    SlotRead::Live => {
                        walk.visited += 1;
                        if !f(&e, &buf) {
                            break 'slots;
                        }
                        break;
                    }
                    SlotRead::Free => break,
                    SlotRead::Changed => {
                        if !waiter.wait() {
                            walk.skipped += 1;
                            break;
                        }
                    }
                }
            }
        }
        fence(Ordering::Acquire);
        let c2 = self.hdr[H_CHANGES].load(Ordering::Relaxed);
        walk.consistent = walk.skipped == 0 && c1 & 1 == 0 && c1 == c2;
        Ok(walk)
    }

    /// Live entries (a momentary count).
    pub fn count(&self) -> Result<u64, ShmError> {
        Ok(self.hdr[H_LIVE].load(Ordering::Acquire))
    }

    /// The map's change counter: odd while a change is in progress, +2 per completed change.
    pub fn changes(&self) -> Result<u64, ShmError> {
        Ok(self.hdr[H_CHANGES].load(Ordering::Acquire))
    }
}

/// A walk's wait for one slot to leave the middle of a change: [`WALK_TRIES`] CPU pauses,
/// then (outside loom) yields of the processor until [`WALK_WAIT`] has passed.
struct SlotWait {
    tries: u32,
    #[cfg(not(loom))]
    since: Option<std::time::Instant>,
}

impl SlotWait {
    fn new() -> Self {
        SlotWait {
            tries: 0,
            #[cfg(not(loom))]
            since: None,
        }
    }

    /// Waits a little; false when the walk should give up on the slot.
    fn wait(&mut self) -> bool {
        self.tries += 1;
        if self.tries < WALK_TRIES {
            spin();
            return true;
        }
        #[cfg(not(loom))]
        {
            let since = *self.since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < WALK_WAIT {
                std::thread::yield_now();
                return true;
            }
        }
        false
    }
}
