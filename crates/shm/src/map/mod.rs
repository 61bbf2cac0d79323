//! [`SharedMap`]: a hash table in a shared region — fixed-capacity, type-stable slots on
//! nulls-terminated chains, records in a size-class heap — written by one process and read
//! lock-free by any number of others, which validate every read.
//!
//! SKELETON (helper `shm-map` implements): the public API below is fixed; the layout is the
//! helper's, documented in the crate's DESIGN.md.

use std::sync::Arc;

use crate::memory::Memory;
use crate::{Region, ShmError};

/// Most directions (keys) a map files an entry under.
pub const MAX_DIRS: usize = 3;
/// Most words in one key.
pub const MAX_KEY_WORDS: usize = 6;
/// Largest record a map stores.
pub const MAX_RECORD: usize = 1 << 20;

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
}

impl MapLayout {
    /// A layout with no directions yet.
    pub fn new(capacity: u32) -> Self {
        MapLayout {
            key_words: [0; MAX_DIRS],
            unique: [false; MAX_DIRS],
            capacity,
            buckets: 0,
        }
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
    /// even and equal at both ends): the walk is a snapshot.
    pub consistent: bool,
}

/// The writer's handle on a map (the mirror's side). `Send + Sync`.
///
/// Concurrency contract: every change goes through [`lock`](SharedMap::lock), which holds a
/// mutex for the writer's session (one writer at a time; the mutex lives in the writer's
/// process, never in shared memory); readers take no lock.
///
/// ```no_run
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
#[derive(Debug)]
pub struct SharedMap {
    _region: Arc<Region>,
}

impl SharedMap {
    /// Allocates a map in `region`.
    pub fn create(region: Arc<Region>, layout: MapLayout) -> Result<SharedMap, ShmError> {
        let _ = (region, layout);
        todo!()
    }

    /// The offset of the map's header (what [`MapReader::open`] and the directory take).
    pub fn offset(&self) -> u64 {
        todo!()
    }

    /// Starts a write session.
    pub fn lock(&self) -> MapWriter<'_> {
        todo!()
    }

    /// A lock-free reader on the writer's own mapping.
    pub fn reader(&self) -> MapReader<'_, Region> {
        todo!()
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of region memory the map uses (slots touched, buckets, heap blocks).
    pub fn memory_bytes(&self) -> usize {
        todo!()
    }
}

/// A write session: the map's writer mutex is held while this lives.
#[derive(Debug)]
pub struct MapWriter<'a> {
    _map: &'a SharedMap,
}

impl MapWriter<'_> {
    /// The live entry filed under `key` in unique direction `dir`.
    pub fn find(&self, dir: usize, key: &[u64]) -> Option<Slot> {
        let _ = (dir, key);
        todo!()
    }

    /// Inserts an entry under one key per direction (`keys.len() == layout.dirs()`).
    pub fn insert(
        &mut self,
        keys: &[&[u64]],
        aux: u64,
        record: &[u8],
    ) -> Result<Slot, InsertError> {
        let _ = (keys, aux, record);
        todo!()
    }

    /// Replaces a live entry's record and aux word (its keys stay).
    pub fn replace(&mut self, slot: Slot, aux: u64, record: &[u8]) -> Result<(), ShmError> {
        let _ = (slot, aux, record);
        todo!()
    }

    /// Sets a live entry's aux word (a change of generation, like any change).
    pub fn set_aux(&mut self, slot: Slot, aux: u64) {
        let _ = (slot, aux);
        todo!()
    }

    /// Removes a live entry; its slot and heap block are reused at once.
    pub fn remove(&mut self, slot: Slot) {
        let _ = slot;
        todo!()
    }

    /// A live entry's aux word.
    pub fn aux(&self, slot: Slot) -> u64 {
        let _ = slot;
        todo!()
    }

    /// Appends a live entry's record to `out`.
    pub fn record(&self, slot: Slot, out: &mut Vec<u8>) {
        let _ = (slot, out);
        todo!()
    }

    /// A live entry's key in direction `dir`.
    pub fn key(&self, slot: Slot, dir: usize) -> [u64; MAX_KEY_WORDS] {
        let _ = (slot, dir);
        todo!()
    }

    /// Removes every live entry for which `keep(slot, aux)` is false; returns how many.
    pub fn retain(&mut self, keep: impl FnMut(Slot, u64) -> bool) -> usize {
        let _ = keep;
        todo!()
    }
}

/// A lock-free, validating reader of a map in any [`Memory`] (the writer's [`Region`], a
/// client's [`RegionView`](crate::RegionView), or [`HeapMemory`](crate::HeapMemory) with
/// arbitrary contents). Every method returns an error, never panics, on any memory contents.
#[derive(Debug)]
pub struct MapReader<'m, M: Memory + ?Sized> {
    _mem: &'m M,
}

impl<'m, M: Memory + ?Sized> MapReader<'m, M> {
    /// Opens the map whose header is at `off`, validating the header.
    pub fn open(mem: &'m M, off: u64) -> Result<Self, ShmError> {
        let _ = (mem, off);
        todo!()
    }

    /// The map's layout (as validated at `open`).
    pub fn layout(&self) -> &MapLayout {
        todo!()
    }

    /// Looks `key` up in unique direction `dir`; appends the record to `out`.
    pub fn get(
        &self,
        dir: usize,
        key: &[u64],
        out: &mut Vec<u8>,
    ) -> Result<Option<Entry>, ShmError> {
        let _ = (dir, key, out);
        todo!()
    }

    /// Calls `f` with every live entry filed under `key` in direction `dir` (a non-unique
    /// index), until it returns false.
    pub fn get_all(
        &self,
        dir: usize,
        key: &[u64],
        f: impl FnMut(&Entry, &[u8]) -> bool,
    ) -> Result<(), ShmError> {
        let _ = (dir, key, f);
        todo!()
    }

    /// Reads one slot (`None` when it is free).
    pub fn read(&self, slot: Slot, out: &mut Vec<u8>) -> Result<Option<Entry>, ShmError> {
        let _ = (slot, out);
        todo!()
    }

    /// Calls `f` with every live entry in slot order, until it returns false. Bounded by the
    /// capacity: never loops forever.
    pub fn walk(&self, f: impl FnMut(&Entry, &[u8]) -> bool) -> Result<Walk, ShmError> {
        let _ = f;
        todo!()
    }

    /// Live entries (a momentary count).
    pub fn count(&self) -> Result<u64, ShmError> {
        todo!()
    }

    /// The map's change counter: odd while a change is in progress, +2 per completed change.
    pub fn changes(&self) -> Result<u64, ShmError> {
        todo!()
    }
}
