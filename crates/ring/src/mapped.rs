//! Shared mappings: an owned `mmap` region and the frames of a ring inside it.

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use rustix::mm::{MapFlags, ProtFlags};

use crate::layout::RingRequest;
use crate::{FrameStore, RingError};

/// An owned `MAP_SHARED` mapping, unmapped on drop.
///
/// Concurrency contract: the mapping's address and length are immutable after construction.
/// Its bytes may be written at any time by another process; this type hands out only atomics
/// ([`atomic_u32`](Self::atomic_u32)) and, through [`MappedFrames`], protocol-guarded frames.
///
/// ```
/// use nlkit_ring::MappedRegion;
/// let region = MappedRegion::anonymous_shared(4096).unwrap();
/// let word = region.atomic_u32(64).unwrap();
/// word.store(7, std::sync::atomic::Ordering::Relaxed);
/// assert_eq!(region.len(), 4096);
/// ```
#[derive(Debug)]
pub struct MappedRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain shared memory; every access goes through atomics or the frame
// protocol, so it may be used from any thread.
unsafe impl Send for MappedRegion {}
// SAFETY: as above.
unsafe impl Sync for MappedRegion {}

impl MappedRegion {
    /// Maps `len` bytes of `fd` (a memfd, or a socket offering rings) read-write and shared.
    /// With `populate`, pages are faulted in now (`MAP_POPULATE`) rather than on first use.
    pub fn map_shared(fd: BorrowedFd<'_>, len: usize, populate: bool) -> io::Result<Self> {
        let mut flags = MapFlags::SHARED;
        if populate {
            flags |= MapFlags::POPULATE;
        }
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh mapping chosen by the kernel (null hint) aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
                fd,
                0,
            )?
        };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { ptr, len })
    }

    /// An anonymous shared mapping (shared with threads and with children forked later).
    pub fn anonymous_shared(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh anonymous mapping aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
            )?
        };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { ptr, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never true for a constructed region).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `u32` at `offset` as an atomic; `None` if out of bounds or misaligned.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        if offset % 4 != 0 || offset.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: in bounds and 4-aligned (mappings are page aligned); the memory lives as long
        // as `&self`; every process touches these words only atomically (protocol contract).
        Some(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast::<u32>()) })
    }

    fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and nothing borrows it once we are dropped.
        if let Err(e) = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) } {
            tracing::warn!("munmap failed: {e}");
        }
    }
}

/// The frames of one ring inside a [`MappedRegion`].
///
/// ```
/// use std::sync::Arc;
/// use nlkit_ring::{FrameStore, MappedFrames, MappedRegion, RingRequest};
/// let req = RingRequest::new(2048, 4).unwrap();
/// let region = Arc::new(MappedRegion::anonymous_shared(req.ring_bytes()).unwrap());
/// let frames = MappedFrames::new(region, 0, req).unwrap();
/// assert_eq!(frames.request(), req);
/// ```
#[derive(Debug, Clone)]
pub struct MappedFrames {
    region: Arc<MappedRegion>,
    offset: usize,
    req: RingRequest,
}

impl MappedFrames {
    /// The ring described by `req`, starting `offset` bytes into `region` (page aligned).
    pub fn new(
        region: Arc<MappedRegion>,
        offset: usize,
        req: RingRequest,
    ) -> Result<Self, RingError> {
        req.validate()?;
        let end = offset
            .checked_add(req.ring_bytes())
            .ok_or(RingError::BadRequest("ring overflows the address space"))?;
        if end > region.len() {
            return Err(RingError::BadRequest("ring does not fit the mapping"));
        }
        if offset % crate::layout::page_size() != 0 {
            return Err(RingError::BadRequest("ring offset is not page aligned"));
        }
        Ok(Self {
            region,
            offset,
            req,
        })
    }

    fn frame_ptr(&self, index: u32) -> *mut u8 {
        assert!(index < self.req.frame_nr, "frame index out of range");
        // SAFETY: `new` checked that every frame lies inside the mapping.
        unsafe {
            self.region
                .base()
                .add(self.offset + self.req.frame_offset(index))
        }
    }
}

// SAFETY: `new` checked bounds and alignment (page-aligned ring, 4-aligned frames); the
// region is kept alive by the `Arc`; bodies are `frame_size - 4` bytes after each status word.
unsafe impl FrameStore for MappedFrames {
    fn request(&self) -> RingRequest {
        self.req
    }
    fn status(&self, index: u32) -> &AtomicU32 {
        // SAFETY: the frame start is in bounds and 4-aligned; the word is only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.frame_ptr(index).cast::<u32>()) }
    }
    fn read_body<R>(&self, index: u32, f: impl FnOnce(*const u8) -> R) -> R {
        // SAFETY: the body starts 4 bytes into an in-bounds frame.
        f(unsafe { self.frame_ptr(index).add(4) })
    }
    fn write_body<R>(&self, index: u32, f: impl FnOnce(*mut u8) -> R) -> R {
        // SAFETY: as above.
        f(unsafe { self.frame_ptr(index).add(4) })
    }
}
