//! [`RegionView`]: a reader's read-only mapping of a [`Region`](crate::Region).
//!
//! SKELETON (helper `shm-region` implements).

use std::os::fd::OwnedFd;

use crate::memory::Memory;
use crate::sync::AtomicU64;
use crate::ShmError;

/// A region mapped `PROT_READ`, `MAP_SHARED`, by a process that did not create it.
///
/// [`map`](RegionView::map) checks the seals (the file cannot shrink and cannot be mapped
/// writable) and the header's magic and version; it reserves [`RESERVE`](crate::RESERVE) bytes
/// of address space once. [`Memory::words`] accepts offsets below the file size seen by the
/// last `fstat`; a longer access calls `fstat` again (a system call only when the region grew).
///
/// ```no_run
/// use nlkit_shm::{Region, RegionView};
/// let r = Region::create("example").unwrap();
/// let fd = r.fd().try_clone_to_owned().unwrap();
/// let v = RegionView::map(fd).unwrap();
/// assert!(v.find(0x1234).is_err());
/// ```
#[derive(Debug)]
pub struct RegionView {
    _fd: OwnedFd,
}

impl RegionView {
    /// Maps a region from its fd.
    pub fn map(fd: OwnedFd) -> Result<RegionView, ShmError> {
        let _ = fd;
        todo!()
    }

    /// The offset of the object published under `id`.
    pub fn find(&self, id: u64) -> Result<u64, ShmError> {
        let _ = id;
        todo!()
    }
}

impl Memory for RegionView {
    fn len(&self) -> u64 {
        todo!()
    }
    fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError> {
        let _ = (off, n);
        todo!()
    }
}
