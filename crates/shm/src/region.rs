//! [`Region`]: the writer's side of a shared region — one sealed memfd, mapped read-write once.
//!
//! See the crate's DESIGN.md §2 for the layout, the seals and the growth protocol.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use parking_lot::Mutex;
use rustix::fs::{MemfdFlags, SealFlags};

use crate::header;
use crate::mapping::Mapping;
use crate::memory::Memory;
use crate::sync::{AtomicU64, Ordering};
use crate::ShmError;

/// The most bytes a region may ever hold. Writer and readers reserve this much address space
/// once, so the mapping never moves and growth never remaps anything a reader borrowed.
pub const RESERVE: u64 = 1 << 36;

/// The size of a huge page (x86-64's PMD page): mappings start on this boundary, and
/// [`Region::collapse`] works in whole ones.
pub const HUGE_PAGE: u64 = 2 << 20;

/// Where the first byte after the region header lies; the directory and layout words live
/// below it.
pub const HEADER_BYTES: u64 = 4096;

/// The file size a new region starts with.
pub(crate) const INITIAL_BYTES: u64 = 4 << 20;
const _: () = assert!(HEADER_BYTES <= INITIAL_BYTES && INITIAL_BYTES <= RESERVE);
/// Growth is in multiples of this (and at least doubles the file, up to [`MAX_STEP`]).
pub(crate) const GROW_CHUNK: u64 = 16 << 20;
/// The largest single growth step beyond what an allocation needs.
pub(crate) const MAX_STEP: u64 = 1 << 30;
/// Allocations are aligned to this (a cache line).
pub const ALLOC_ALIGN: u64 = 64;

/// The seals every region carries (and readers insist on, see
/// [`RegionView::map`](crate::RegionView::map)).
pub(crate) const SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::FUTURE_WRITE)
    .union(SealFlags::SEAL);

/// What [`Region::collapse`] did.
///
/// ```
/// let mut all = nlkit_shm::Collapsed::default();
/// all.add(nlkit_shm::Collapsed { bytes: 2 << 20, failed: 1, error: None });
/// assert_eq!((all.bytes, all.failed), (2 << 20, 1));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collapsed {
    /// Bytes collapsed into huge pages (or found so already).
    pub bytes: u64,
    /// Huge pages the kernel did not make.
    pub failed: u64,
    /// The first failure's error (`EINVAL`: huge pages denied for shmem or a kernel before
    /// 6.1; `ENOMEM`/`EAGAIN`: no huge page free now).
    pub error: Option<rustix::io::Errno>,
}

impl Collapsed {
    /// Adds another collapse's counts (keeping the first error).
    pub fn add(&mut self, other: Collapsed) {
        self.bytes += other.bytes;
        self.failed += other.failed;
        self.error = self.error.or(other.error);
    }
}

/// One shared region, owned by the writer (the mirror).
///
/// A memfd sealed against shrinking (`F_SEAL_SHRINK`), against new writable mappings and
/// `write(2)` (`F_SEAL_FUTURE_WRITE`) and against seal changes (`F_SEAL_SEAL`); it grows by
/// `ftruncate`, never shrinks, so no reader's mapping can fault with `SIGBUS`. The writer maps
/// all of [`RESERVE`] read-write before sealing, and touches only bytes below the file size.
///
/// Concurrency contract: `alloc` and `publish` serialise on an internal mutex (which guards
/// the bump pointer and the file size); the memory itself is only atomics
/// ([`Memory::words`]), shared with every reader. [`Memory::len`] is the file size, which only
/// grows; `words` never takes the mutex.
///
/// ```
/// use nlkit_shm::{Memory, Region, RegionView};
/// let r = Region::create("example").unwrap();
/// let off = r.alloc(64).unwrap();
/// r.word(off).unwrap().store(7, std::sync::atomic::Ordering::Release);
/// r.publish(0x1234, off).unwrap();
///
/// let v = RegionView::map(r.fd().try_clone_to_owned().unwrap()).unwrap();
/// let found = v.find(0x1234).unwrap();
/// assert_eq!(v.word(found).unwrap().load(std::sync::atomic::Ordering::Acquire), 7);
/// ```
#[derive(Debug)]
pub struct Region {
    fd: OwnedFd,
    map: Mapping,
    state: Mutex<State>,
}

/// What `alloc` and `publish` change, under [`Region::state`].
#[derive(Debug)]
struct State {
    /// The first byte not yet allocated.
    top: u64,
    /// The file's size (what `ftruncate` last set).
    file_len: u64,
}

impl Region {
    /// Creates a region (memfd named `nlkit-<name>`), maps it, seals it and writes its header.
    ///
    /// The file starts at a few MiB (sparse: pages cost memory only once written).
    pub fn create(name: &str) -> Result<Region, ShmError> {
        let fd = rustix::fs::memfd_create(
            format!("nlkit-{name}"),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| ShmError::os("memfd_create", e))?;
        rustix::fs::ftruncate(&fd, INITIAL_BYTES).map_err(|e| ShmError::os("ftruncate", e))?;
        // The one writable mapping, made before F_SEAL_FUTURE_WRITE forbids new ones.
        let map = Mapping::map(fd.as_fd(), true)?;
        rustix::fs::fcntl_add_seals(&fd, SEALS).map_err(|e| ShmError::os("F_ADD_SEALS", e))?;
        // SAFETY: the file was just truncated to INITIAL_BYTES and is now sealed against
        // shrinking.
        unsafe { map.set_valid(INITIAL_BYTES) };
        let region = Region {
            fd,
            map,
            state: Mutex::new(State {
                top: HEADER_BYTES,
                file_len: INITIAL_BYTES,
            }),
        };
        header::init(&region, INITIAL_BYTES)?;
        Ok(region)
    }

    /// The memfd, to pass to readers (`SCM_RIGHTS`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Allocates `bytes` of zeroed memory, 64-byte aligned ([`ALLOC_ALIGN`]), growing the file
    /// as needed; returns its offset. Never freed (callers keep free lists of their own).
    ///
    /// The file grows in steps (at least doubling, in multiples of 16 MiB) before any memory
    /// beyond its end is handed out; an allocation that would end beyond [`RESERVE`] is
    /// [`ShmError::Full`].
    ///
    /// ```
    /// use nlkit_shm::{Memory, Region};
    /// let r = Region::create("alloc-example").unwrap();
    /// let a = r.alloc(10).unwrap();
    /// let b = r.alloc(10).unwrap();
    /// assert_eq!((a % 64, b - a), (0, 64));
    /// let big = r.alloc(64 << 20).unwrap(); // grows the file
    /// assert!(r.len() >= big + (64 << 20));
    /// ```
    pub fn alloc(&self, bytes: u64) -> Result<u64, ShmError> {
        let mut st = self.state.lock();
        let start = st.top.next_multiple_of(ALLOC_ALIGN);
        let end = bytes
            .max(1)
            .checked_next_multiple_of(ALLOC_ALIGN)
            .and_then(|size| start.checked_add(size))
            .filter(|end| *end <= RESERVE)
            .ok_or(ShmError::Full("region address space"))?;
        if end > st.file_len {
            self.grow(&mut st, end)?;
        }
        st.top = end;
        self.set_header(header::OFF_TOP, end, Ordering::Relaxed);
        Ok(start)
    }

    /// Grows the file to hold at least `end` bytes (under the state lock).
    fn grow(&self, st: &mut State, end: u64) -> Result<(), ShmError> {
        let step = st.file_len.clamp(GROW_CHUNK, MAX_STEP);
        let want = (st.file_len + step)
            .max(end)
            .next_multiple_of(GROW_CHUNK)
            .min(RESERVE);
        // A reader holding the fd may have grown the file itself (growth is not sealed);
        // ftruncate to a smaller size would be refused by F_SEAL_SHRINK, so never ask for less
        // than the file already has.
        let now = rustix::fs::fstat(&self.fd)
            .map_err(|e| ShmError::os("fstat", e))?
            .st_size
            .max(0) as u64;
        let new_len = if now >= end {
            now
        } else {
            let new_len = want.max(now);
            rustix::fs::ftruncate(&self.fd, new_len).map_err(|e| ShmError::os("ftruncate", e))?;
            new_len
        };
        // SAFETY: the file is at least `new_len` bytes now (fstat or ftruncate just said so)
        // and sealed against shrinking; `set_valid` caps at RESERVE.
        unsafe { self.map.set_valid(new_len) };
        st.file_len = new_len.min(RESERVE);
        // Release: a reader that sees the new length also sees the header words before it;
        // readers never trust it for bounds (they fstat), it is for diagnostics.
        self.set_header(header::OFF_FILE_LEN, st.file_len, Ordering::Release);
        Ok(())
    }

    /// Adds `(id, off)` to the directory readers look objects up in
    /// ([`RegionView::find`](crate::RegionView::find)). Store the object's header before
    /// publishing it: the directory entry is published with `Release`, and a reader's lookup
    /// loads it with `Acquire`.
    ///
    /// Publishing an id again replaces it for later lookups. `off` must be 8-byte aligned and
    /// below the file size; the directory holds a fixed number of entries (128), beyond
    /// which this is [`ShmError::Full`].
    pub fn publish(&self, id: u64, off: u64) -> Result<(), ShmError> {
        let _st = self.state.lock();
        self.word(off)?;
        header::publish(self, id, off)
    }

    /// The offset most recently published under `id` (the writer's own lookup, the same as
    /// [`RegionView::find`](crate::RegionView::find)).
    pub fn find(&self, id: u64) -> Result<u64, ShmError> {
        header::find(self, id)
    }

    /// Backs the whole 2 MiB pages inside `[off, off + len)` with huge pages
    /// (`MADV_COLLAPSE`, one page at a time), in the writer's mapping and, at their next
    /// fault, in every reader's: one TLB entry per 2 MiB instead of 512. For random lookups
    /// over a table much larger than the TLB's reach (a million conntrack entries) that
    /// removes most of each lookup's page walks.
    ///
    /// Works whatever the host's `shmem_enabled` says, unless it is `deny` (then, on a kernel
    /// before 6.1, or with no huge page free, the page is counted in [`Collapsed::failed`]
    /// and stays as it was). The pages of a range that were never written are allocated by
    /// the collapse: call it only on ranges in use. The contents never change; a reader or
    /// the writer touching a page while it is collapsed waits for it (a few milliseconds).
    ///
    /// ```
    /// use nlkit_shm::{Memory, Region, HUGE_PAGE};
    /// let r = Region::create("collapse-example").unwrap();
    /// let off = r.alloc(3 * HUGE_PAGE).unwrap();
    /// for i in 0..3 * HUGE_PAGE / 4096 {
    ///     r.word(off + i * 4096).unwrap().store(1, std::sync::atomic::Ordering::Relaxed);
    /// }
    /// // `off` is not on a 2 MiB boundary: the two whole pages after it are collapsed.
    /// let c = r.collapse(off, 3 * HUGE_PAGE);
    /// assert_eq!(c.bytes + c.failed * HUGE_PAGE, 2 * HUGE_PAGE);
    /// ```
    pub fn collapse(&self, off: u64, len: u64) -> Collapsed {
        let start = off.next_multiple_of(HUGE_PAGE);
        let end = off.saturating_add(len).min(self.map.valid()) / HUGE_PAGE * HUGE_PAGE;
        let mut c = Collapsed::default();
        let mut at = start;
        while at < end {
            match self.map.collapse(at) {
                Ok(()) => c.bytes += HUGE_PAGE,
                Err(e) => {
                    c.failed += 1;
                    c.error.get_or_insert(e);
                }
            }
            at += HUGE_PAGE;
        }
        c
    }

    /// Stores a header word (always inside the file: HEADER_BYTES <= INITIAL_BYTES).
    fn set_header(&self, off: u64, value: u64, order: Ordering) {
        if let Ok(w) = self.map.words(off, 1) {
            w[0].store(value, order);
        }
    }
}

impl Memory for Region {
    /// The file's size: every byte below it may be accessed.
    fn len(&self) -> u64 {
        self.map.valid()
    }

    fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError> {
        self.map.words(off, n)
    }
}
