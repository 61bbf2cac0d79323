//! [`HeapArena`]: an [`Arena`] in ordinary process memory whose readable length grows with
//! each allocation, like a [`Region`](crate::Region) (unit tests, property tests, loom models).

use super::Arena;
use crate::memory::{check, Memory};
use crate::sync::{AtomicU64, Ordering};
use crate::ShmError;

/// A fixed reserve of zeroed words of which the first [`len`](Memory::len) bytes are
/// readable; [`alloc`](Arena::alloc) hands out the next bytes (8-byte aligned) and publishes
/// the longer length with `Release`, the way a region grows its file.
///
/// Concurrency contract: readers may run on any thread; `alloc` is called by one thread at a
/// time (the map's writer holds its mutex).
///
/// ```
/// use nlkit_shm::map::{Arena, HeapArena};
/// use nlkit_shm::Memory;
/// let a = HeapArena::new(16);
/// assert_eq!(a.len(), 0);
/// let off = a.alloc(24).unwrap();
/// assert_eq!((off, a.len()), (0, 24));
/// assert!(a.alloc(200).is_err());
/// ```
#[derive(Debug)]
pub struct HeapArena {
    words: Box<[AtomicU64]>,
    len: AtomicU64,
}

impl HeapArena {
    /// An arena of at most `words` words, none allocated yet.
    pub fn new(words: usize) -> HeapArena {
        HeapArena {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicU64::new(0),
        }
    }
}

impl Memory for HeapArena {
    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError> {
        let r = check(off, n, self.len())?;
        Ok(&self.words[r])
    }
}

impl Arena for HeapArena {
    fn alloc(&self, bytes: u64) -> Result<u64, ShmError> {
        // Only the allocating thread stores `len`.
        let off = super::layout::own(&self.len);
        let end = bytes
            .div_ceil(8)
            .checked_mul(8)
            .and_then(|b| off.checked_add(b))
            .filter(|end| *end <= self.words.len() as u64 * 8)
            .ok_or(ShmError::Full("heap arena"))?;
        self.len.store(end, Ordering::Release);
        Ok(off)
    }
}
