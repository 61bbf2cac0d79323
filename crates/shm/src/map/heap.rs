//! The record heap: size-class blocks carved from chunks of the arena (DESIGN.md §3.4).
//!
//! Concurrency contract: a [`Heap`] is the writer's private state (behind the map's writer
//! mutex); only the blocks' bytes are shared. A block, once carved, belongs to its class for
//! ever, so a reader copying a stale record reads record bytes of the same class (and fails
//! its seqlock validation), never memory of another kind.

use super::{Arena, MAX_RECORD};
use crate::ShmError;

/// Classes of 8-byte granularity up to this size; above it 8 classes per power of two.
const FINE_LIMIT: usize = 1024;
const FINE_CLASSES: usize = FINE_LIMIT / 8;
const COARSE_PER_POW2: usize = 8;
/// log2 of FINE_LIMIT.
const FINE_BITS: u32 = 10;
/// Number of size classes.
pub(crate) const CLASSES: usize =
    FINE_CLASSES + COARSE_PER_POW2 * (MAX_RECORD.trailing_zeros() - FINE_BITS) as usize;

/// The class of a record of `len` bytes (`1..=MAX_RECORD`).
pub(crate) fn class_of(len: usize) -> usize {
    debug_assert!((1..=MAX_RECORD).contains(&len));
    if len <= FINE_LIMIT {
        return len.div_ceil(8) - 1;
    }
    // len in (2^p, 2^(p+1)], steps of 2^p / 8.
    let p = (usize::BITS - 1 - (len - 1).leading_zeros()) as usize;
    let step = 1usize << (p - 3);
    let units = len.div_ceil(step); // 9..=16
    FINE_CLASSES + (p - FINE_BITS as usize) * COARSE_PER_POW2 + (units - 9)
}

/// The block size of class `c`.
pub(crate) fn class_size(c: usize) -> usize {
    if c < FINE_CLASSES {
        return (c + 1) * 8;
    }
    let c = c - FINE_CLASSES;
    let p = c / COARSE_PER_POW2 + FINE_BITS as usize;
    let units = c % COARSE_PER_POW2 + 9;
    units << (p - 3)
}

/// Default bytes per chunk asked of the arena.
pub(crate) const DEFAULT_CHUNK: u64 = 1 << 20;

/// The writer's heap state.
#[derive(Debug)]
pub(crate) struct Heap {
    /// Free blocks of each class (offsets).
    free: Vec<Vec<u64>>,
    /// The chunk being carved: next free offset and bytes left.
    next: u64,
    left: u64,
    chunk: u64,
    /// Bytes obtained from the arena.
    pub(crate) bytes: u64,
}

impl Heap {
    pub(crate) fn new(chunk: u64) -> Heap {
        Heap {
            free: (0..CLASSES).map(|_| Vec::new()).collect(),
            next: 0,
            left: 0,
            chunk: chunk.max(8),
            bytes: 0,
        }
    }

    /// A block for a record of `len` bytes (offset 0 for an empty record).
    pub(crate) fn alloc<A: Arena + ?Sized>(
        &mut self,
        arena: &A,
        len: usize,
    ) -> Result<u64, ShmError> {
        if len == 0 {
            return Ok(0);
        }
        if len > MAX_RECORD {
            return Err(ShmError::TooLarge(len));
        }
        let c = class_of(len);
        if let Some(off) = self.free[c].pop() {
            return Ok(off);
        }
        let size = class_size(c) as u64;
        if size > self.left {
            if size * 4 > self.chunk {
                // A big block gets a chunk of its own; the current chunk stays.
                let off = arena.alloc(size)?;
                self.bytes += size;
                return Ok(off);
            }
            let off = arena.alloc(self.chunk)?;
            self.bytes += self.chunk;
            self.next = off;
            self.left = self.chunk;
        }
        let off = self.next;
        self.next += size;
        self.left -= size;
        Ok(off)
    }

    /// Returns the block of a record of `len` bytes at `off` to its class.
    pub(crate) fn free(&mut self, off: u64, len: usize) {
        if len == 0 || len > MAX_RECORD {
            return;
        }
        self.free[class_of(len)].push(off);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_length() {
        let mut last = 0;
        for len in 1..=MAX_RECORD {
            let c = class_of(len);
            assert!(c < CLASSES, "{len}");
            assert!(c >= last, "{len}");
            last = c;
            let size = class_size(c);
            assert!(size >= len && size % 8 == 0, "{len} -> {size}");
            if len <= FINE_LIMIT {
                assert_eq!(size, len.div_ceil(8) * 8);
            } else {
                assert!(size <= len + len / 8, "{len} -> {size}");
            }
            if c > 0 {
                assert!(class_size(c - 1) < len, "{len}");
            }
        }
        assert_eq!(class_of(MAX_RECORD), CLASSES - 1);
        assert_eq!(class_size(CLASSES - 1), MAX_RECORD);
    }
}
