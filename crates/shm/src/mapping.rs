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
use crate::region::{HUGE_PAGE, RESERVE};
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
        // The mapping starts on a huge-page boundary, so that a 2 MiB-aligned range of the
        // file that is backed by a huge page ([`Mapping::collapse`]) is mapped by one page
        // table entry, in the writer and in every reader (one TLB entry instead of 512). The
        // kernel aligns shared file mappings only when the host enables huge pages for shmem,
        // so the address is chosen here: RESERVE + 2 MiB of address space reserved
        // (PROT_NONE, anonymous: no memory), the file mapped over its aligned part, the rest
        // given back.
        // SAFETY: a new mapping at an address the kernel chooses (null hint, no MAP_FIXED), so
        // no existing memory of this process is replaced.
        let room = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                (RESERVE + HUGE_PAGE) as usize,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| ShmError::os("mmap", e))?;
        let start = room as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE as usize);
        // Mapping beyond the end of the file is allowed; those pages are never touched (see
        // `words`). MAP_NORESERVE: the address space is a reservation, pages cost memory only
        // once written.
        // SAFETY: MAP_FIXED replaces only `[aligned, aligned + RESERVE)`, which lies inside
        // the reservation just made by this function (`aligned - start < HUGE_PAGE`) and
        // holds nothing anybody uses.
        let mapped = unsafe {
            rustix::mm::mmap(
                aligned as *mut std::ffi::c_void,
                RESERVE as usize,
                prot,
                MapFlags::SHARED | MapFlags::NORESERVE | MapFlags::FIXED,
                fd,
                0,
            )
        };
        let end = aligned + RESERVE as usize;
        let slack = [
            (start, aligned - start),
            (end, start + (RESERVE + HUGE_PAGE) as usize - end),
        ];
        for (at, len) in slack.into_iter().filter(|(_, len)| *len > 0) {
            // SAFETY: the unused head and tail of this function's own reservation.
            let _ = unsafe { rustix::mm::munmap(at as *mut std::ffi::c_void, len) };
        }
        let ptr = match mapped {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: the reservation's aligned part, still this function's own.
                let _ = unsafe {
                    rustix::mm::munmap(aligned as *mut std::ffi::c_void, RESERVE as usize)
                };
                return Err(ShmError::os("mmap", e));
            }
        };
        let base = NonNull::new(ptr.cast::<AtomicU64>()).ok_or(ShmError::Corrupt("mmap at 0"))?;
        Ok(Mapping {
            base,
            valid: AtomicU64::new(0),
        })
    }

    /// Asks the kernel to back the 2 MiB-aligned range `[off, off + HUGE_PAGE)` of the file
    /// with one huge page (`MADV_COLLAPSE`); `off` must be a multiple of [`HUGE_PAGE`] and
    /// the range below [`valid`](Mapping::valid) (else `EINVAL`, nothing asked). Pages of the
    /// range that were never written are allocated (zeroed) by the collapse. (Through libc:
    /// rustix's `Advice` has no `MADV_COLLAPSE`, Linux 6.1.)
    pub(crate) fn collapse(&self, off: u64) -> Result<(), rustix::io::Errno> {
        if off % HUGE_PAGE != 0 || off.saturating_add(HUGE_PAGE) > self.valid() {
            return Err(rustix::io::Errno::INVAL);
        }
        // The kernel copies the pages into a huge page and remaps every mapping of them: the
        // contents, and so the atomics `words` handed out, stay as they were.
        // SAFETY: advice on a range inside this mapping (below `valid`, so below RESERVE).
        let rc = unsafe {
            libc::madvise(
                self.base.as_ptr().cast::<u8>().add(off as usize).cast(),
                HUGE_PAGE as usize,
                libc::MADV_COLLAPSE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(
                rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                    .unwrap_or(rustix::io::Errno::INVAL),
            )
        }
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
