//! [`SharedMap`]: a hash table in a shared region — fixed-capacity, type-stable slots on
//! nulls-terminated chains, each record in its slot when it fits the layout's inline area
//! ([`MapLayout::inline`]) and in a size-class heap otherwise — written by one process and
//! read lock-free by any number of others, which validate every read.
//!
//! The layout, the slot lifecycle and the memory orderings are in the crate's DESIGN.md §3.
//! Files: `layout.rs` (the words and the header validation), `writer.rs` (changes),
//! `reader.rs` (validating lookups and walks; `reader/batch.rs`: batched lookups),
//! `heap.rs` (record blocks).

use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::memory::Memory;
#[cfg(not(loom))]
use crate::Region;
use crate::ShmError;

mod arena;
#[cfg(not(loom))]
pub mod fuzzing;
mod heap;
mod layout;
mod reader;
mod writer;

pub use arena::HeapArena;
pub use layout::MAX_CAPACITY;
pub use reader::{CheckedHeader, MapReader, BATCH};

use layout::{Geometry, HEADER_WORDS, H_MAGIC};
use writer::{Ops, WriterState};

/// Most directions (keys) a map files an entry under.
pub const MAX_DIRS: usize = 3;
/// Most words in one key.
pub const MAX_KEY_WORDS: usize = 6;
/// Largest record a map stores.
pub const MAX_RECORD: usize = 1 << 20;
/// Largest inline record area of a slot ([`MapLayout::inline`]).
pub const MAX_INLINE: usize = 4096;

/// The shape of a map, fixed at creation and stored in its header (readers validate it).
///
/// ```
/// use nlkit_shm::MapLayout;
/// let l = MapLayout::new(1 << 10).key(3, true);
/// assert_eq!(l.dirs(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLayout {
    /// Words of each direction's key; directions in use come first, the rest are 0.
    pub key_words: [u8; MAX_DIRS],
    /// Whether a direction's keys are unique (a lookup key) or not (a secondary index: many
    /// entries may share a key, `MapReader::get_all` finds them all).
    pub unique: [bool; MAX_DIRS],
    /// Slots: the most entries the map can hold.
    pub capacity: u32,
    /// Buckets per direction (a power of two; 0 = chosen from the capacity).
    pub buckets: u32,
    /// Bytes of each slot's inline record area (rounded up to 8 bytes; at most
    /// [`MAX_INLINE`]): a record at most this long is stored in its slot, next to the keys,
    /// so a lookup finds it without another cache miss; longer records go to the heap. 0: every
    /// record in the heap. See [`inline`](Self::inline).
    pub inline_bytes: u32,
}

impl MapLayout {
    /// A layout with no directions yet.
    pub fn new(capacity: u32) -> Self {
        MapLayout {
            key_words: [0; MAX_DIRS],
            unique: [false; MAX_DIRS],
            capacity,
            buckets: 0,
            inline_bytes: 0,
        }
    }

    /// Sets the inline record area of each slot to `bytes` (see
    /// [`inline_bytes`](Self::inline_bytes)). The slot stride is the slot's fixed words
    /// (seq, aux, location, links, keys) plus this area; [`slot_bytes`](Self::slot_bytes)
    /// tells it, [`fill_slot`](Self::fill_slot) picks the area that makes a given stride (a
    /// multiple of 64 keeps every slot on the fewest cache lines; the slot array is aligned to
    /// the stride's power-of-two part, up to a page).
    ///
    /// ```
    /// use nlkit_shm::MapLayout;
    /// let l = MapLayout::new(1 << 10).key(3, true).inline(72);
    /// assert_eq!(l.slot_bytes(), 128);
    /// ```
    pub fn inline(mut self, bytes: u32) -> Self {
        self.inline_bytes = bytes;
        self
    }

    /// The inline area that makes a slot exactly `stride` bytes (a multiple of 8): the
    /// stride less the fixed words, or 0 when they do not fit in it.
    ///
    /// ```
    /// use nlkit_shm::MapLayout;
    /// let l = MapLayout::new(1 << 10).key(5, true).key(5, true).key(3, false).fill_slot(256);
    /// assert_eq!((l.inline_bytes, l.slot_bytes()), (112, 256));
    /// ```
    pub fn fill_slot(self, stride: u32) -> Self {
        let fixed = layout::Geometry::fixed_words(&self) as u32 * 8;
        self.inline(stride.saturating_sub(fixed))
    }

    /// Bytes per slot (the stride of the slot array).
    pub fn slot_bytes(&self) -> usize {
        layout::Geometry::stride_words(self) * 8
    }

    /// Adds a direction whose keys have `words` words.
    pub fn key(mut self, words: u8, unique: bool) -> Self {
        let d = self.dirs();
        if d < MAX_DIRS {
            self.key_words[d] = words;
            self.unique[d] = unique;
        }
        self
    }

    /// Directions in use.
    pub fn dirs(&self) -> usize {
        self.key_words.iter().take_while(|w| **w != 0).count()
    }
}

/// A slot index: names one entry while it lives (with [`Entry::generation`], one incarnation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u32);

/// What a reader learns of an entry besides its record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its slot.
    pub slot: Slot,
    /// The slot's generation when read: changes on every change of the entry and on reuse.
    pub generation: u64,
    /// The writer's word stored with the entry (the mirror keeps confirmation tags there).
    pub aux: u64,
    /// The direction whose key matched (0 for walks).
    pub dir: usize,
    /// The key words of every direction (`keys[d][..layout.key_words[d]]`).
    pub keys: [[u64; MAX_KEY_WORDS]; MAX_DIRS],
}

impl Entry {
    /// An entry of no slot, generation 0 and zero keys: what a reader fills in place.
    pub(crate) const BLANK: Entry = Entry {
        slot: Slot(0),
        generation: 0,
        aux: 0,
        dir: 0,
        keys: [[0; MAX_KEY_WORDS]; MAX_DIRS],
    };

    /// Direction `d`'s key words.
    pub fn key(&self, d: usize, layout: &MapLayout) -> &[u64] {
        let n = layout.key_words.get(d).copied().unwrap_or(0) as usize;
        &self.keys[d.min(MAX_DIRS - 1)][..n.min(MAX_KEY_WORDS)]
    }
}

/// Why an insert was refused.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// A unique direction's key is already present.
    #[error("key of direction {dir} exists (slot {slot:?})")]
    Exists {
        /// The direction.
        dir: usize,
        /// The entry holding it.
        slot: Slot,
    },
    /// No free slot, or no heap memory.
    #[error(transparent)]
    Shm(#[from] ShmError),
}

/// What a walk saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Walk {
    /// Live entries handed to the callback.
    pub visited: u64,
    /// No change completed or was in progress during the walk (the map's change counter was
    /// even and equal at both ends, and no slot was skipped): the walk is a snapshot. Every
    /// change counts, a generation-only one ([`MapWriter::set_aux`]) too.
    pub consistent: bool,
    /// Slots that stayed in the middle of a change for the walk's whole wait (a writer
    /// descheduled inside a change) and were skipped: each may be an entry the walk missed.
    /// Non-zero means `consistent` is false and the walk may be incomplete: a dump built
    /// from it must be reported interrupted (`NLM_F_DUMP_INTR`), never passed as complete.
    pub skipped: u64,
}

/// Memory a map can live in and allocate from: the writer's [`Region`], or (in
/// tests and loom models) any [`Memory`] with an allocator.
///
/// `alloc` returns the offset of `bytes` of zeroed, 8-byte aligned memory that lies inside
/// [`Memory::len`] from then on (the length only grows) and is never handed out again.
pub trait Arena: Memory {
    /// Allocates `bytes` of zeroed memory; [`ShmError::Full`] when there is no more.
    fn alloc(&self, bytes: u64) -> Result<u64, ShmError>;
}

#[cfg(not(loom))]
impl Arena for Region {
    fn alloc(&self, bytes: u64) -> Result<u64, ShmError> {
        Region::alloc(self, bytes)
    }
}

/// Tuning knobs of [`SharedMap::create_in`] (tests and loom models).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct MapOptions {
    /// Bytes of each heap chunk asked of the arena.
    pub heap_chunk: u64,
    /// The hash seed (`None`: random).
    pub seed: Option<u64>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            heap_chunk: heap::DEFAULT_CHUNK,
            seed: None,
        }
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// The writer's handle on a map (the mirror's side). `Send + Sync`.
///
/// Concurrency contract: every change goes through [`lock`](SharedMap::lock), which holds a
/// mutex for the writer's session (one writer at a time; the mutex lives in the writer's
/// process, never in shared memory); readers take no lock. The geometry (offsets, layout,
/// seed) is immutable after construction; the writer's free lists and counters live behind the
/// mutex.
///
/// ```
/// use std::sync::Arc;
/// use nlkit_shm::{MapLayout, Region, SharedMap};
/// let region = Arc::new(Region::create("example").unwrap());
/// let map = SharedMap::create(region, MapLayout::new(1024).key(1, true)).unwrap();
/// let slot = map.lock().insert(&[&[7]], 0, b"seven").unwrap();
/// let mut out = Vec::new();
/// assert!(map.reader().get(0, &[7], &mut out).unwrap().is_some());
/// assert_eq!(out, b"seven");
/// map.lock().remove(slot);
/// ```
pub struct SharedMap<#[cfg(not(loom))] A: Arena = Region, #[cfg(loom)] A: Arena> {
    arena: Arc<A>,
    g: Geometry,
    /// Bytes of the header, bucket and slot arrays.
    fixed_bytes: u64,
    /// Heap bytes taken from the arena (a copy of the writer's count, so that `memory_bytes`
    /// needs no lock).
    heap_bytes: std::sync::atomic::AtomicU64,
    state: Mutex<WriterState>,
    /// What [`SharedMap::collapse`] has done (its own lock: a collapse never holds the
    /// writer's mutex). Unused under loom, whose maps live in a heap arena.
    #[cfg_attr(loom, allow(dead_code))]
    collapsed: Mutex<CollapseProgress>,
}

/// How far [`SharedMap::collapse`] got: huge pages are made once per range.
#[derive(Debug, Default)]
#[cfg_attr(loom, allow(dead_code))]
struct CollapseProgress {
    /// Region offset below which the slot array's whole huge pages are collapsed.
    slots_done: u64,
    /// Whether the bucket arrays are.
    buckets_done: bool,
}

impl<A: Arena> fmt::Debug for SharedMap<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMap")
            .field("offset", &self.g.hdr)
            .field("layout", &self.g.layout)
            .finish_non_exhaustive()
    }
}

#[cfg(not(loom))]
impl SharedMap<Region> {
    /// Allocates a map in `region`: a header, one bucket array per direction and the slot
    /// array (sparse: a slot's memory is touched only once it is used). Record blocks are
    /// allocated from the region as needed. A layout with no direction, a key longer than
    /// [`MAX_KEY_WORDS`], a capacity of 0 or above [`MAX_CAPACITY`], or a bucket count that
    /// is not a power of two is refused with [`ShmError::Corrupt`].
    pub fn create(region: Arc<Region>, layout: MapLayout) -> Result<SharedMap, ShmError> {
        SharedMap::create_in(region, layout, MapOptions::default())
    }

    /// Backs the parts of the map that are in use with huge pages ([`Region::collapse`]):
    /// the whole 2 MiB pages of the slot array below the high-water mark (every slot there
    /// was written), and the bucket arrays once the map holds an eighth as many entries as
    /// a direction has buckets (each 4 KiB page of heads then has ~128 entries: all are in
    /// use). Never a page that is not in use, so it costs no memory; what was collapsed is
    /// not asked again. Takes no lock the writer or a reader takes: call it from any thread,
    /// while the map changes.
    ///
    /// A lookup in a map much larger than the TLB's reach makes two dependent random loads
    /// (bucket head, slot); with 4 KiB pages each is also a page walk (DESIGN.md §3.4).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nlkit_shm::{MapLayout, Region, SharedMap};
    /// let map = SharedMap::create(
    ///     Arc::new(Region::create("collapse").unwrap()),
    ///     MapLayout::new(1 << 16).key(1, true).inline(112),
    /// )
    /// .unwrap();
    /// let mut w = map.lock();
    /// for k in 0..(1 << 16) {
    ///     w.insert(&[&[k]], 0, b"a record").unwrap();
    /// }
    /// drop(w);
    /// // 8 MiB of slots and 256 KiB of buckets in use: 3 or 4 whole huge pages of slots.
    /// let c = map.collapse();
    /// assert!(c.bytes + c.failed * nlkit_shm::HUGE_PAGE >= 3 * nlkit_shm::HUGE_PAGE);
    /// ```
    pub fn collapse(&self) -> crate::Collapsed {
        let mut p = self.collapsed.lock();
        let r = self.reader();
        let stride = self.g.stride_words as u64 * 8;
        let used_end = self.g.slots + u64::from(r.high_water()) * stride;
        let from = p.slots_done.max(self.g.slots);
        let mut c = self.arena.collapse(from, used_end.saturating_sub(from));
        if c.failed == 0 {
            p.slots_done = p
                .slots_done
                .max(used_end / crate::HUGE_PAGE * crate::HUGE_PAGE);
        }
        let buckets = u64::from(self.g.layout.buckets);
        if !p.buckets_done && r.count().unwrap_or(0) >= buckets / 8 {
            let bytes = layout::Geometry::bucket_words(self.g.layout.buckets) as u64 * 8;
            let b = self
                .arena
                .collapse(self.g.buckets[0], bytes * self.g.dirs as u64);
            p.buckets_done = b.failed == 0;
            c.add(b);
        }
        c
    }
}

impl<A: Arena> SharedMap<A> {
    /// [`create`](SharedMap::create) in any arena, with tuning knobs.
    #[doc(hidden)]
    pub fn create_in(
        arena: Arc<A>,
        layout: MapLayout,
        opts: MapOptions,
    ) -> Result<SharedMap<A>, ShmError> {
        let layout = Geometry::normalize(layout)?;
        let dirs = layout.dirs();
        let bucket_bytes = Geometry::bucket_words(layout.buckets) as u64 * 8;
        let stride_words = Geometry::stride_words(&layout);
        let slot_bytes = u64::from(layout.capacity) * stride_words as u64 * 8;
        let hdr_bytes = HEADER_WORDS as u64 * 8;
        // The slot array is aligned (DESIGN.md §3.1): room for the padding is allocated too
        // (never touched, so it costs no memory).
        let align = Geometry::slot_align(stride_words);
        let before = hdr_bytes + bucket_bytes * dirs as u64;
        let total = before + (align - 8) + slot_bytes;
        let hdr = arena.alloc(total)?;
        let mut buckets = [0u64; MAX_DIRS];
        for (d, b) in buckets.iter_mut().enumerate().take(dirs) {
            *b = hdr + hdr_bytes + d as u64 * bucket_bytes;
        }
        let slots = (hdr + before).next_multiple_of(align);
        let total = slots + slot_bytes - hdr;
        let seed = opts.seed.unwrap_or_else(random_seed);
        let g = Geometry::new(layout, hdr, slots, buckets, seed);
        let words = g.header_words();
        let h = arena.words(hdr, HEADER_WORDS)?;
        for (i, w) in words.iter().enumerate().skip(1) {
            h[i].store(*w, crate::sync::Ordering::Relaxed);
        }
        // The magic last, Release: a reader that sees it (Acquire) sees the whole header.
        h[H_MAGIC].store(words[H_MAGIC], crate::sync::Ordering::Release);
        // Validate what we wrote the way a reader will.
        MapReader::with_geometry(&*arena, g.clone())?;
        let state = WriterState {
            free_slots: Vec::new(),
            hwm: 0,
            live: 0,
            changes: 0,
            heap: heap::Heap::new(opts.heap_chunk),
            prev: Default::default(),
        };
        Ok(SharedMap {
            arena,
            g,
            fixed_bytes: total,
            heap_bytes: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(state),
            collapsed: Mutex::new(CollapseProgress::default()),
        })
    }

    /// The arena the map lives in.
    #[doc(hidden)]
    pub fn arena(&self) -> &Arc<A> {
        &self.arena
    }

    /// The bucket `key` hashes to in direction `dir` (tests that need keys to collide).
    #[doc(hidden)]
    pub fn bucket_of(&self, dir: usize, key: &[u64]) -> u32 {
        self.g.bucket(dir, key)
    }

    /// The offset of the map's header (what [`MapReader::open`] and the directory take).
    pub fn offset(&self) -> u64 {
        self.g.hdr
    }

    /// The map's layout (with the bucket count filled in).
    pub fn layout(&self) -> &MapLayout {
        &self.g.layout
    }

    fn ops(&self) -> Ops<'_, A> {
        Ops {
            r: self.reader(),
            arena: &self.arena,
            heap_bytes: &self.heap_bytes,
        }
    }

    /// Starts a write session.
    pub fn lock(&self) -> MapWriter<'_, A> {
        MapWriter {
            st: self.state.lock(),
            ops: self.ops(),
        }
    }

    /// A lock-free reader on the writer's own mapping.
    pub fn reader(&self) -> MapReader<'_, A> {
        MapReader::with_geometry(&*self.arena, self.g.clone())
            .expect("the map's arrays were validated at creation and memory never shrinks")
    }

    /// Live entries.
    ///
    /// Takes no lock (it reads the header's count), so it may be called while a
    /// [`MapWriter`] of this map is alive.
    pub fn len(&self) -> usize {
        self.reader().count().unwrap_or(0) as usize
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of region memory the map uses (slots touched, buckets, heap blocks).
    /// Takes no lock.
    pub fn memory_bytes(&self) -> usize {
        let hwm = self.reader().high_water();
        let stride = self.g.stride_words as u64 * 8;
        let untouched = u64::from(self.g.layout.capacity - hwm) * stride;
        let heap = self.heap_bytes.load(std::sync::atomic::Ordering::Relaxed);
        (self.fixed_bytes - untouched + heap) as usize
    }
}

/// A write session: the map's writer mutex is held while this lives.
///
/// Methods taking a [`Slot`] that holds no live entry do nothing (`replace` returns
/// [`ShmError::NotFound`] with the slot number; `aux`, `record` and `key` return nothing).
pub struct MapWriter<'a, #[cfg(not(loom))] A: Arena = Region, #[cfg(loom)] A: Arena> {
    st: MutexGuard<'a, WriterState>,
    ops: Ops<'a, A>,
}

impl<A: Arena> fmt::Debug for MapWriter<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapWriter")
            .field("live", &self.st.live)
            .finish_non_exhaustive()
    }
}

impl<A: Arena> MapWriter<'_, A> {
    /// The live entry filed under `key` in unique direction `dir`.
    pub fn find(&self, dir: usize, key: &[u64]) -> Option<Slot> {
        self.ops.find(dir, key)
    }

    /// Inserts an entry under one key per direction (`keys.len() == layout.dirs()`, each of
    /// its direction's length). Refuses a key already present in a unique direction
    /// ([`InsertError::Exists`]); [`ShmError::Full`] when no slot or no heap memory is left.
    pub fn insert(
        &mut self,
        keys: &[&[u64]],
        aux: u64,
        record: &[u8],
    ) -> Result<Slot, InsertError> {
        self.ops.insert(&mut self.st, keys, aux, record)
    }

    /// Replaces a live entry's record and aux word (its keys stay).
    pub fn replace(&mut self, slot: Slot, aux: u64, record: &[u8]) -> Result<(), ShmError> {
        self.ops.replace(&mut self.st, slot, aux, record)
    }

    /// Sets a live entry's aux word (a change of generation, like any change).
    pub fn set_aux(&mut self, slot: Slot, aux: u64) {
        self.ops.set_aux(&mut self.st, slot, aux)
    }

    /// Test hook: runs `f` with live `slot` left in the middle of a change (its seqlock word
    /// and the map's change counter odd), as a writer descheduled inside a change leaves it,
    /// then completes the change (a new generation, contents unchanged). Readers meanwhile
    /// see the slot as being changed; a walk skips it after its wait
    /// ([`Walk::skipped`]). Does nothing but call `f` for a slot that holds no live entry.
    #[doc(hidden)]
    pub fn with_slot_mid_change<R>(&mut self, slot: Slot, f: impl FnOnce() -> R) -> R {
        self.ops.with_slot_mid_change(&mut self.st, slot, f)
    }

    /// Removes a live entry; its slot and heap block are reused at once.
    pub fn remove(&mut self, slot: Slot) {
        self.ops.remove(&mut self.st, slot)
    }

    /// A live entry's aux word.
    pub fn aux(&self, slot: Slot) -> u64 {
        self.ops.aux(&self.st, slot)
    }

    /// Appends a live entry's record to `out`.
    pub fn record(&self, slot: Slot, out: &mut Vec<u8>) {
        self.ops.record(&self.st, slot, out)
    }

    /// A live entry's key in direction `dir`.
    pub fn key(&self, slot: Slot, dir: usize) -> [u64; MAX_KEY_WORDS] {
        self.ops.key(&self.st, slot, dir)
    }

    /// Removes every live entry for which `keep(slot, aux)` is false; returns how many.
    pub fn retain(&mut self, keep: impl FnMut(Slot, u64) -> bool) -> usize {
        self.ops.retain(&mut self.st, keep)
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.st.live as usize
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.st.live == 0
    }
}

#[cfg(test)]
mod tests;
