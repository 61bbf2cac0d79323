//! [`Mapping`]: the one place that maps a region's memfd and turns the mapping into atomics.
//!
//! All of the region layer's `unsafe` lives here. A mapping covers [`RESERVE`] bytes of address
//! space (mapped once, never moved), but only the bytes below [`Mapping::valid`] are ever handed
//! out: those lie below the file's size, and the file is sealed against shrinking, so touching
//! them can never raise `SIGBUS`. `valid` only grows, and only through
//! [`Mapping::set_valid`], whose caller promises that the file really is that long.

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use rustix::mm::{MapFlags, ProtFlags};

use crate::memory::check;
use crate::region::RESERVE;
use crate::sync::{AtomicU64, Ordering};
use crate::ShmError;

/// [`RESERVE`] bytes of a memfd mapped `MAP_SHARED`, read-write (the writer) or read-only (a
/// reader).
///
/// Concurrency contract: the mapping's address and length are immutable after construction;
/// `valid` is a monotonic high-water mark (`fetch_max`), so a stale load only makes an access
/// fail conservatively, never succeed wrongly.
#[derive(Debug)]
pub(crate) struct Mapping {
    base: NonNull<AtomicU64>,
    /// Bytes known to be backed by the file (at most `RESERVE`).
    valid: AtomicU64,
}

// SAFETY: the mapping is plain shared memory that is only ever accessed through `&AtomicU64`
// (atomic loads and stores), so any number of threads may use it at once; the pointer is never
// used to create `&mut` or non-atomic references. Unmapping happens only in `Drop`, when no
// borrow of the mapping (all tied to `&self`) can be alive.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: every access is atomic, and `valid` is itself an atomic.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps [`RESERVE`] bytes of `fd` from offset 0, `MAP_SHARED`, read-write or read-only.
    /// Nothing is readable through [`words`](Mapping::words) until
    /// [`set_valid`](Mapping::set_valid).
    pub(crate) fn map(fd: BorrowedFd<'_>, writable: bool) -> Result<Mapping, ShmError> {
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // Mapping beyond the end of the file is allowed; those pages are never touched (see
        // `words`). MAP_NORESERVE: the address space is a reservation, pages cost memory only
        // once written.
        // SAFETY: a new mapping at an address the kernel chooses (null hint, no MAP_FIXED), so
        // no existing memory of this process is replaced.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                RESERVE as usize,
                prot,
                MapFlags::SHARED | MapFlags::NORESERVE,
                fd,
                0,
            )
        }
        .map_err(|e| ShmError::os("mmap", e))?;
        let base = NonNull::new(ptr.cast::<AtomicU64>()).ok_or(ShmError::Corrupt("mmap at 0"))?;
        Ok(Mapping {
            base,
            valid: AtomicU64::new(0),
        })
    }

    /// Bytes that [`words`](Mapping::words) accepts.
    pub(crate) fn valid(&self) -> u64 {
        self.valid.load(Ordering::Acquire)
    }

    /// Raises [`valid`](Mapping::valid) to `len` (capped at [`RESERVE`]; never lowers it).
    ///
    /// # Safety
    /// The file behind the mapping must be at least `len` bytes long and must never become
    /// shorter (it carries `F_SEAL_SHRINK`): otherwise a later access could raise `SIGBUS`.
    pub(crate) unsafe fn set_valid(&self, len: u64) {
        self.valid.fetch_max(len.min(RESERVE), Ordering::AcqRel);
    }

    /// `n` words at byte offset `off`, if all of them lie below [`valid`](Mapping::valid).
    pub(crate) fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError> {
        let r = check(off, n, self.valid())?;
        // Why the slice below is sound, in full: `check` proved `off` 8-byte aligned and
        // `off + 8n <= valid <= RESERVE`, so the range lies inside the mapping (page-aligned
        // base, so the words are aligned) and below the file's size, which cannot shrink: every
        // byte is backed by a page of the file and accessing it cannot fault (a store faults on
        // a reader's read-only mapping, which kills the process with SIGSEGV but is not
        // undefined behaviour and cannot change the file). Viewing the bytes as `[AtomicU64]`
        // is sound because the memory is shared with other processes and is only ever accessed
        // atomically through these references, by every party (writer and readers alike);
        // `AtomicU64` has the size and alignment of `u64` and permits mutation through `&`.
        // SAFETY: in bounds of the mapping and below the (unshrinkable) file size, aligned,
        // only accessed atomically (above); the slice borrows `self`, so it cannot outlive the
        // mapping (unmapped only in `Drop`).
        Ok(unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(r.start).cast_const(), r.len())
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range mapped in `map`; every borrow handed out by `words` borrows
        // `self`, so none is alive here. An error (impossible for a valid range) is ignored.
        unsafe {
            let _ = rustix::mm::munmap(self.base.as_ptr().cast(), RESERVE as usize);
        }
    }
}
