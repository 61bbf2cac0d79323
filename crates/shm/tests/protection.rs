//! A reader cannot write the region: not through a new mapping, not by making its mapping
//! writable, not with write(2), not by shrinking the file, and a store through its read-only
//! mapping faults (in a child process, which dies of SIGSEGV; the region is unchanged).
#![cfg(not(loom))] // the region is real memory: not modelled under loom

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use nlkit_shm::{Memory, Region, RegionView, HEADER_BYTES};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

fn region_and_view() -> (Region, RegionView, u64) {
    let r = Region::create("test-protect").unwrap();
    let off = r.alloc(4096).unwrap();
    r.word(off).unwrap().store(0x5eed, Ordering::Release);
    r.publish(1, off).unwrap();
    let v = RegionView::map(r.fd().try_clone_to_owned().unwrap()).unwrap();
    (r, v, off)
}

#[test]
fn a_writable_shared_mapping_is_refused() {
    let (_r, v, _) = region_and_view();
    for fd in [v.fd(), _r.fd()] {
        // SAFETY: a new mapping at an address of the kernel's choosing; it replaces nothing and
        // is unmapped below if it is (wrongly) made.
        let res = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                HEADER_BYTES as usize,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        };
        match res {
            Err(e) => assert_eq!(e, Errno::PERM),
            Ok(p) => {
                // SAFETY: the mapping just made, of that length.
                unsafe { rustix::mm::munmap(p, HEADER_BYTES as usize).unwrap() };
                panic!("a writable shared mapping of a sealed region was allowed");
            }
        }
    }
}

#[test]
fn the_readers_mapping_cannot_be_made_writable() {
    let (_r, v, off) = region_and_view();
    // The view's mapping starts at the address of word 0 (page-aligned).
    let base = v.word(0).unwrap().as_ptr().cast::<std::ffi::c_void>();
    assert_eq!(base as usize % 4096, 0);
    for (addr, len) in [(base, 4096usize), (base, off as usize + 4096)] {
        // SAFETY: the range is part of the view's own mapping; on (wrong) success it would
        // become writable, which the test then reports; no Rust reference assumes it is not.
        let res =
            unsafe { rustix::mm::mprotect(addr, len, MprotectFlags::READ | MprotectFlags::WRITE) };
        assert_eq!(res, Err(Errno::ACCESS), "mprotect to writable");
    }
    // Still readable.
    assert_eq!(v.word(off).unwrap().load(Ordering::Acquire), 0x5eed);
}

#[test]
fn write_and_shrink_are_refused() {
    let (r, v, _) = region_and_view();
    let len = r.len();
    assert_eq!(rustix::io::write(v.fd(), b"scribble"), Err(Errno::PERM));
    assert_eq!(rustix::io::pwrite(v.fd(), b"scribble", 0), Err(Errno::PERM));
    assert_eq!(rustix::fs::ftruncate(v.fd(), len - 4096), Err(Errno::PERM));
    assert_eq!(rustix::fs::ftruncate(v.fd(), 0), Err(Errno::PERM));
    // Seals cannot be changed (F_SEAL_SEAL): nobody can add F_SEAL_GROW to stop growth.
    assert_eq!(
        rustix::fs::fcntl_add_seals(v.fd(), rustix::fs::SealFlags::GROW),
        Err(Errno::PERM)
    );
    assert_eq!(
        rustix::fs::fallocate(
            v.fd(),
            rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
            0,
            4096
        ),
        Err(Errno::PERM)
    );
    assert_eq!(
        rustix::fs::fstat(r.fd().as_fd()).unwrap().st_size as u64,
        len
    );
}

#[test]
fn a_store_through_the_readers_mapping_faults() {
    let (r, v, off) = region_and_view();
    let target = v.word(off).unwrap();
    // SAFETY: fork in a test process that may have other threads: the child only performs
    // an atomic store (no allocation, no lock) and then `_exit`, both async-signal-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        target.store(0xbad, Ordering::Relaxed);
        // Reached only if the store did not fault.
        // SAFETY: ends the child at once, without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
    let got = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(got, pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "child status {status:#x}: the store did not fault"
    );
    assert_eq!(v.word(off).unwrap().load(Ordering::Acquire), 0x5eed);
    assert_eq!(r.word(off).unwrap().load(Ordering::Acquire), 0x5eed);
}
