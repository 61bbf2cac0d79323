//! [`RegionView`]: a reader's read-only mapping of a [`Region`](crate::Region).
//!
//! See the crate's DESIGN.md §2 for what a reader checks and why it can never fault.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::SealFlags;

use crate::header;
use crate::mapping::Mapping;
use crate::memory::Memory;
use crate::region::{HEADER_BYTES, RESERVE};
use crate::sync::AtomicU64;
use crate::ShmError;

/// A region mapped `PROT_READ`, `MAP_SHARED`, by a process that did not create it.
///
/// [`map`](RegionView::map) checks the seals (the file cannot shrink and cannot be mapped
/// writable) and the header's magic and version; it reserves [`RESERVE`](crate::RESERVE) bytes
/// of address space once. [`Memory::words`] accepts offsets below the file size seen by the
/// last `fstat`; a longer access calls `fstat` again (a system call only when the region grew).
/// The header's own length word is never trusted for bounds.
///
/// The words are read-only: a store through one of them faults (`SIGSEGV`); the mapping
/// cannot be made writable (`mprotect` is refused).
///
/// Concurrency contract: immutable after `map` except for the cached file size, an atomic
/// high-water mark; any number of threads may read through one view.
///
/// ```
/// use nlkit_shm::{Region, RegionView};
/// let r = Region::create("example").unwrap();
/// let fd = r.fd().try_clone_to_owned().unwrap();
/// let v = RegionView::map(fd).unwrap();
/// assert!(v.find(0x1234).is_err());
/// ```
#[derive(Debug)]
pub struct RegionView {
    fd: OwnedFd,
    map: Mapping,
}

impl RegionView {
    /// Maps a region from its fd.
    ///
    /// Errors: [`ShmError::NotSealed`] unless the file carries `F_SEAL_SHRINK` and
    /// `F_SEAL_FUTURE_WRITE` (or `F_SEAL_WRITE`); [`ShmError::Corrupt`] if it is smaller than
    /// the header or the header's magic, version or geometry is wrong; [`ShmError::Os`] if
    /// a system call fails (e.g. the fd is not a memfd).
    pub fn map(fd: OwnedFd) -> Result<RegionView, ShmError> {
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|e| ShmError::os("F_GET_SEALS", e))?;
        if !seals.contains(SealFlags::SHRINK)
            || !seals.intersects(SealFlags::FUTURE_WRITE | SealFlags::WRITE)
        {
            return Err(ShmError::NotSealed(seals.bits() as i32));
        }
        let size = file_size(fd.as_fd())?;
        if size < HEADER_BYTES {
            return Err(ShmError::Corrupt("region smaller than its header"));
        }
        let map = Mapping::map(fd.as_fd(), false)?;
        // SAFETY: fstat just said the file has `size` bytes, and F_SEAL_SHRINK (checked above;
        // seals can only be added, never removed) keeps it from getting shorter.
        unsafe { map.set_valid(size) };
        let view = RegionView { fd, map };
        header::validate(&view)?;
        Ok(view)
    }

    /// The offset of the object published under `id` (the most recent, if it was published
    /// more than once), or [`ShmError::NotFound`]. A directory count beyond the directory's
    /// size is [`ShmError::Corrupt`].
    ///
    /// The offset itself is whatever the writer stored: accesses through it are
    /// bounds-checked by [`Memory::words`]. If it lies beyond the size known so far, the view
    /// refreshes that size first ([`refresh`](RegionView::refresh)), so [`Memory::len`] covers
    /// objects published after growth.
    pub fn find(&self, id: u64) -> Result<u64, ShmError> {
        let off = header::find(self, id)?;
        if off >= self.map.valid() && off < RESERVE {
            // An object published after the region grew: learn the new size now, so that a
            // caller checking the object against `len` sees it (one fstat, only after growth).
            self.refresh()?;
        }
        Ok(off)
    }

    /// The memfd this view maps.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Asks the kernel for the file's size (`fstat`) and makes every byte below it accessible;
    /// returns the new [`len`](Memory::len). [`Memory::words`] does this by itself when an
    /// access goes past the known size.
    pub fn refresh(&self) -> Result<u64, ShmError> {
        let size = file_size(self.fd.as_fd())?;
        // SAFETY: fstat just said the file has `size` bytes; it is sealed against shrinking
        // (checked in `map`).
        unsafe { self.map.set_valid(size) };
        Ok(self.map.valid())
    }
}

/// The file's size from `fstat`.
fn file_size(fd: BorrowedFd<'_>) -> Result<u64, ShmError> {
    let st = rustix::fs::fstat(fd).map_err(|e| ShmError::os("fstat", e))?;
    Ok(st.st_size.max(0) as u64)
}

impl Memory for RegionView {
    /// The file size seen by the last `fstat` (it may have grown since: [`Memory::words`] and
    /// [`RegionView::refresh`] look again).
    fn len(&self) -> u64 {
        self.map.valid()
    }

    fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError> {
        match self.map.words(off, n) {
            Err(ShmError::OutOfBounds { .. }) if within_reserve(off, n) => {
                // Maybe the region grew since the last fstat: one system call, and only then.
                self.refresh()?;
                self.map.words(off, n)
            }
            r => r,
        }
    }
}

/// Whether `n` words at `off` could ever become accessible (they end inside the reservation).
fn within_reserve(off: u64, n: usize) -> bool {
    (n as u64)
        .checked_mul(8)
        .and_then(|b| off.checked_add(b))
        .is_some_and(|end| end <= RESERVE)
}
