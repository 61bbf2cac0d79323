//! [`Region`]: the writer's side of a shared region — one sealed memfd, mapped read-write once.
//!
//! SKELETON (helper `shm-region` implements): see the crate's DESIGN.md §region.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::memory::Memory;
use crate::sync::AtomicU64;
use crate::ShmError;

/// The most bytes a region may ever hold. Writer and readers reserve this much address space
/// once, so the mapping never moves and growth never remaps anything a reader borrowed.
pub const RESERVE: u64 = 1 << 36;

/// Where the first byte after the region header lies; the directory and layout words live
/// below it.
pub const HEADER_BYTES: u64 = 4096;

/// One shared region, owned by the writer (the mirror).
///
/// A memfd sealed against shrinking (`F_SEAL_SHRINK`), against new writable mappings and
/// `write(2)` (`F_SEAL_FUTURE_WRITE`) and against seal changes (`F_SEAL_SEAL`); it grows by
/// `ftruncate`, never shrinks, so no reader's mapping can fault with `SIGBUS`. The writer maps
/// all of [`RESERVE`] read-write before sealing, and touches only bytes below the file size.
///
/// Concurrency contract: `alloc` and `publish` serialise on an internal mutex; the memory
/// itself is only atomics ([`Memory::words`]), shared with every reader.
///
/// ```no_run
/// use nlkit_shm::{Memory, Region};
/// let r = Region::create("example").unwrap();
/// let off = r.alloc(64).unwrap();
/// r.word(off).unwrap().store(7, std::sync::atomic::Ordering::Release);
/// r.publish(0x1234, off).unwrap();
/// ```
#[derive(Debug)]
pub struct Region {
    _fd: OwnedFd,
}

impl Region {
    /// Creates a region (memfd named `nlkit-<name>`), maps it, seals it and writes its header.
    pub fn create(name: &str) -> Result<Region, ShmError> {
        let _ = name;
        todo!()
    }

    /// The memfd, to pass to readers (`SCM_RIGHTS`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        todo!()
    }

    /// Allocates `bytes` of zeroed memory, 64-byte aligned, growing the file as needed;
    /// returns its offset. Never freed (callers keep free lists of their own).
    pub fn alloc(&self, bytes: u64) -> Result<u64, ShmError> {
        let _ = bytes;
        todo!()
    }

    /// Adds `(id, off)` to the directory readers look objects up in.
    pub fn publish(&self, id: u64, off: u64) -> Result<(), ShmError> {
        let _ = (id, off);
        todo!()
    }
}

impl Memory for Region {
    fn len(&self) -> u64 {
        todo!()
    }
    fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError> {
        let _ = (off, n);
        todo!()
    }
}
