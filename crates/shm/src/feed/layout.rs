//! The ring's layout: the header words, the position index and the byte ring (DESIGN.md §4).

use crate::memory::Memory;
use crate::sync::Ordering;
use crate::ShmError;

/// `b"NLKFEED1"`: the first word of a ring's header.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"NLKFEED1");

/// Header bytes before the index.
pub(crate) const HEADER: u64 = 64;
// Header word offsets.
pub(crate) const W_MAGIC: u64 = 0;
pub(crate) const W_CAPACITY: u64 = 8;
pub(crate) const W_INDEX: u64 = 16;
pub(crate) const W_HEAD: u64 = 24;
pub(crate) const W_FUTEX: u64 = 32;
pub(crate) const W_TAIL: u64 = 40;
pub(crate) const W_STAMP: u64 = 48;

/// Words before an entry's bytes: position, length, tag.
pub(crate) const ENTRY_HEADER: u64 = 24;
/// The smallest byte ring.
pub(crate) const MIN_CAPACITY: u64 = 64;
/// The largest byte ring (1 TiB: more than a region can hold).
pub(crate) const MAX_CAPACITY: u64 = 1 << 40;
/// The fewest index slots.
pub(crate) const MIN_INDEX: u64 = 4;
/// Bytes of ring per index slot: the ring holds at most `capacity / 64` entries.
pub(crate) const BYTES_PER_INDEX: u64 = 64;

/// The shape of a feed ring: its byte capacity and its number of index slots, fixed at
/// creation and stored in its header (readers validate it).
///
/// ```
/// use nlkit_shm::feed::FeedLayout;
/// let l = FeedLayout::new(1000);
/// assert_eq!(l.capacity(), 1024);
/// assert_eq!(l.max_entry(), 1024 / 4);
/// assert!(l.bytes() > 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedLayout {
    cap: u64,
    index: u64,
}

impl FeedLayout {
    /// A ring of at least `capacity` bytes (rounded up to a power of two, at least 64 and at
    /// most 1 TiB), with one index slot per 64 bytes (at least 4).
    pub fn new(capacity: u64) -> FeedLayout {
        let cap = capacity
            .clamp(MIN_CAPACITY, MAX_CAPACITY)
            .next_power_of_two();
        FeedLayout {
            cap,
            index: (cap / BYTES_PER_INDEX).max(MIN_INDEX),
        }
    }

    /// Bytes of the byte ring.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// Index slots: the most entries the ring keeps, whatever their size.
    pub fn index_slots(&self) -> u64 {
        self.index
    }

    /// The longest entry (its bytes) the ring accepts: a quarter of the ring.
    pub fn max_entry(&self) -> usize {
        (self.cap / 4) as usize
    }

    /// Bytes of memory the ring takes (header, index, byte ring).
    pub fn bytes(&self) -> u64 {
        HEADER + 8 * self.index + self.cap
    }

    /// Offset of the index relative to the header.
    pub(crate) fn index_off(&self) -> u64 {
        HEADER
    }

    /// Offset of the byte ring relative to the header.
    pub(crate) fn data_off(&self) -> u64 {
        HEADER + 8 * self.index
    }

    /// Reads and validates the layout of the ring whose header is at `off`.
    pub(crate) fn read<M: Memory + ?Sized>(mem: &M, off: u64) -> Result<FeedLayout, ShmError> {
        let h = mem.words(off, (HEADER / 8) as usize)?;
        if h[(W_MAGIC / 8) as usize].load(Ordering::Acquire) != MAGIC {
            return Err(ShmError::Corrupt("feed ring: bad magic"));
        }
        let cap = h[(W_CAPACITY / 8) as usize].load(Ordering::Relaxed);
        let index = h[(W_INDEX / 8) as usize].load(Ordering::Relaxed);
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(ShmError::Corrupt("feed ring: bad capacity"));
        }
        if !index.is_power_of_two() || index < MIN_INDEX || index > cap / 8 {
            return Err(ShmError::Corrupt("feed ring: bad index size"));
        }
        let l = FeedLayout { cap, index };
        // The whole ring must lie in the memory (readers bounds-check every access anyway).
        match off.checked_add(l.bytes()) {
            Some(end) if end <= mem.len() => Ok(l),
            _ => Err(ShmError::OutOfBounds {
                off,
                len: l.bytes(),
                mapped: mem.len(),
            }),
        }
    }
}

/// `n` rounded up to a multiple of 8.
pub(crate) fn pad8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}
