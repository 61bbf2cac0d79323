//! The shared memory of the ring transport: one sealed memfd holding a control page, the
//! request ring (main → worker) and the reply ring (worker → main).
//!
//! Control page words (each on its own cache line):
//! - `MAIN_ARMED` (offset 64): set to 1 by the main process before it goes idle; the worker,
//!   after publishing a reply, swaps it to 0 and, if it was 1, signals the main eventfd.
//! - `WORKER_WAITING` (offset 128): set to 1 by the worker before it sleeps in `poll`; the main
//!   process, after publishing a request or releasing reply frames, swaps it to 0 and, if it was
//!   1, signals the worker eventfd.
//!
//! Both sides store their flag, then a SeqCst fence, then re-check the ring before sleeping;
//! the other side publishes, fences (SeqCst), then reads the flag. One of the two always sees
//! the other's write, so no wake-up is lost.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use nlkit_ring::{page_size, MappedFrames, MappedRegion, RingRequest};
use rustix::fs::{MemfdFlags, SealFlags};

use crate::error::ProtocolError;

const OFF_MAGIC: usize = 0;
const OFF_MAIN_ARMED: usize = 64;
const OFF_WORKER_WAITING: usize = 128;
const SHM_MAGIC: u32 = u32::from_le_bytes(*b"NLKR");

/// The mapped memfd and the geometry of its two rings.
///
/// Concurrency contract: immutable after construction; the control words are atomics and the
/// rings follow the frame protocol (`nlkit-ring`).
#[derive(Debug, Clone)]
pub(crate) struct SharedRings {
    region: Arc<MappedRegion>,
    req: RingRequest,
}

impl SharedRings {
    fn len_for(req: &RingRequest) -> usize {
        page_size() + 2 * req.ring_bytes()
    }

    /// Creates, sizes, seals and maps a new memfd (main process side).
    pub(crate) fn create(frame_size: u32, frame_nr: u32) -> io::Result<(Self, OwnedFd)> {
        let req = RingRequest::new(frame_size, frame_nr)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let fd = rustix::fs::memfd_create(
            "nlkit-worker-ring",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let len = Self::len_for(&req);
        rustix::fs::ftruncate(&fd, len as u64)?;
        // Sealed so that neither side can shrink the file under the other's mapping (SIGBUS).
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let region = Arc::new(MappedRegion::map_shared(fd.as_fd(), len, true)?);
        let magic = region
            .atomic_u32(OFF_MAGIC)
            .ok_or_else(|| io::Error::other("tiny mapping"))?;
        magic.store(SHM_MAGIC, std::sync::atomic::Ordering::Release);
        Ok((Self { region, req }, fd))
    }

    /// Maps the memfd the main process sent, after checking its size, seals and magic.
    pub(crate) fn attach(
        fd: &OwnedFd,
        frame_size: u32,
        frame_nr: u32,
    ) -> Result<Self, ProtocolError> {
        let bad = |what: &str| ProtocolError::Unexpected(format!("ring setup: {what}"));
        let req = RingRequest::new(frame_size, frame_nr).map_err(|_| bad("bad geometry"))?;
        if req.frame_nr != frame_nr {
            return Err(bad("frame count is not whole blocks"));
        }
        let len = Self::len_for(&req);
        let stat = rustix::fs::fstat(fd).map_err(|_| bad("fstat"))?;
        if stat.st_size != len as i64 {
            return Err(bad("memfd size differs from the geometry"));
        }
        let seals = rustix::fs::fcntl_get_seals(fd).map_err(|_| bad("not a sealable memfd"))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
            return Err(bad("memfd is not sealed"));
        }
        let region =
            Arc::new(MappedRegion::map_shared(fd.as_fd(), len, true).map_err(|_| bad("mmap"))?);
        let magic = region
            .atomic_u32(OFF_MAGIC)
            .ok_or_else(|| bad("tiny mapping"))?;
        if magic.load(std::sync::atomic::Ordering::Acquire) != SHM_MAGIC {
            return Err(bad("bad magic"));
        }
        Ok(Self { region, req })
    }

    pub(crate) fn request(&self) -> RingRequest {
        self.req
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        match self.region.atomic_u32(off) {
            Some(w) => w,
            // The control page is a whole page; these offsets are constants inside it.
            None => unreachable!("control word {off} outside the control page"),
        }
    }

    pub(crate) fn main_armed(&self) -> &AtomicU32 {
        self.word(OFF_MAIN_ARMED)
    }

    pub(crate) fn worker_waiting(&self) -> &AtomicU32 {
        self.word(OFF_WORKER_WAITING)
    }

    /// (request ring, reply ring).
    pub(crate) fn frames(&self) -> (MappedFrames, MappedFrames) {
        let page = page_size();
        let ring = self.req.ring_bytes();
        let make = |off| match MappedFrames::new(self.region.clone(), off, self.req) {
            Ok(f) => f,
            // `len_for` sized the mapping for exactly these two rings.
            Err(e) => unreachable!("ring placement checked at construction: {e}"),
        };
        (make(page), make(page + ring))
    }
}
