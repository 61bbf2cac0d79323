//! The feed ring across processes: a child process (this test binary, run again) maps the
//! ring's memfd read-only, inherited across `exec`, and follows the feed with `FUTEX_WAIT`
//! while the parent appends and publishes. Checks that a shared futex on a `PROT_READ`
//! mapping is woken by the writer's one `FUTEX_WAKE`.
#![cfg(not(loom))]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use nlkit_shm::feed::{FeedLayout, FeedReader, FeedWriter};
use nlkit_shm::{Memory, ShmError};
use rustix::mm::{MapFlags, ProtFlags};

/// The environment variable that tells the re-executed binary which fd holds the ring.
const CHILD_FD: &str = "NLKIT_SHM_FEED_CHILD_FD";
/// The same, for the child of the test over a `Region`.
const CHILD_REGION_FD: &str = "NLKIT_SHM_FEED_CHILD_REGION_FD";
/// The directory id the region test publishes its ring under.
const RING_ID: u64 = 0xfeed;
/// Entries the parent writes.
const ENTRIES: u64 = 2000;

/// A shared mapping of a whole memfd, as [`Memory`] (the test's own, so this test does not
/// depend on `Region`).
struct Mapping {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn map(fd: &OwnedFd, len: usize, writable: bool) -> Mapping {
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a new mapping at an address the kernel picks; nothing else refers to it.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0) }
                .unwrap();
        Mapping { ptr, len }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no reference into it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

impl Memory for Mapping {
    fn len(&self) -> u64 {
        self.len as u64
    }

    fn words(&self, off: u64, n: usize) -> Result<&[std::sync::atomic::AtomicU64], ShmError> {
        let end = (n as u64)
            .checked_mul(8)
            .and_then(|b| off.checked_add(b))
            .filter(|e| *e <= self.len as u64);
        if off % 8 != 0 {
            return Err(ShmError::Misaligned(off));
        }
        let Some(_) = end else {
            return Err(ShmError::OutOfBounds {
                off,
                len: n as u64 * 8,
                mapped: self.len as u64,
            });
        };
        // SAFETY: in bounds and 8-byte aligned (the mapping is page-aligned); the memory lives
        // as long as `self` and is only ever accessed as atomics.
        Ok(unsafe {
            std::slice::from_raw_parts(
                self.ptr
                    .cast::<u8>()
                    .add(off as usize)
                    .cast::<std::sync::atomic::AtomicU64>(),
                n,
            )
        })
    }
}

fn payload(pos: u64) -> Vec<u8> {
    let len = (pos * 13 % 97) as usize;
    (0..len).map(|i| (pos as usize ^ i) as u8).collect()
}

/// The child: follows the ring from position 1 to the end, checking every entry it reads.
fn follow(fd: OwnedFd) {
    let len = rustix::fs::fstat(&fd).unwrap().st_size as usize;
    let map = Mapping::map(&fd, len, false);
    follow_ring(&FeedReader::open(&map, 0).unwrap());
}

fn follow_ring<M: Memory>(r: &FeedReader<'_, M>) {
    let mut pos = 1;
    let (mut read, mut overrun) = (0u64, 0u64);
    let mut out = Vec::new();
    while pos <= ENTRIES {
        assert!(
            r.wait(pos, Some(Duration::from_secs(60))).unwrap(),
            "no entry {pos}"
        );
        out.clear();
        match r.read(pos, &mut out) {
            Ok(Some(e)) => {
                assert_eq!((e.pos, e.tag), (pos, pos * 3));
                assert_eq!(out, payload(pos));
                read += 1;
                pos += 1;
            }
            Err(ShmError::Overrun { oldest, .. }) => {
                overrun += 1;
                pos = oldest;
            }
            other => panic!("{pos}: {other:?}"),
        }
    }
    println!("child read {read} entries, {overrun} overruns");
}

#[test]
fn child_process_follows_with_futex_on_read_only_mapping() {
    if let Ok(fd) = std::env::var(CHILD_FD) {
        // SAFETY: the parent passed this fd to us, open and ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd.parse().unwrap()) };
        follow(fd);
        return;
    }
    let layout = FeedLayout::new(1 << 14);
    let memfd =
        rustix::fs::memfd_create("nlkit-feed-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, layout.bytes()).unwrap();
    let map = Mapping::map(&memfd, layout.bytes() as usize, true);
    let w = FeedWriter::init(&map, 0, layout).unwrap();
    let mut child = spawn_child(
        "child_process_follows_with_futex_on_read_only_mapping",
        CHILD_FD,
        &memfd,
    );
    // Bursts with pauses, so the child sleeps in FUTEX_WAIT between them.
    for pos in 1..=ENTRIES {
        assert_eq!(w.append(pos * 3, &payload(pos)).unwrap(), pos);
        if pos % 7 == 0 || pos == ENTRIES {
            w.publish();
        }
        if pos % 200 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "child: {status}");
}

/// Spawns this test binary again to run test `name`, with `fd` inherited under `var`.
fn spawn_child(name: &str, var: &str, fd: &OwnedFd) -> std::process::Child {
    // A copy without CLOEXEC, so the child inherits it across exec.
    let inherit = rustix::io::dup(fd).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, inherit.as_raw_fd().to_string())
        .spawn()
        .unwrap()
}

/// The same over the real thing: a `FeedRing` in a sealed `Region`, which the child maps as a
/// `RegionView` (read-only) and finds in the region's directory.
#[test]
fn child_process_follows_a_ring_in_a_region() {
    if let Ok(fd) = std::env::var(CHILD_REGION_FD) {
        // SAFETY: the parent passed this fd to us, open and ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd.parse().unwrap()) };
        let view = nlkit_shm::RegionView::map(fd).unwrap();
        let r = FeedReader::open(&view, view.find(RING_ID).unwrap()).unwrap();
        assert_eq!(r.stamp().unwrap(), 0x5eed);
        follow_ring(&r);
        return;
    }
    let region = std::sync::Arc::new(nlkit_shm::Region::create("feed-process").unwrap());
    let ring = nlkit_shm::FeedRing::create(region.clone(), 1 << 14).unwrap();
    ring.set_stamp(0x5eed);
    region.publish(RING_ID, ring.offset()).unwrap();
    let fd = region.fd().try_clone_to_owned().unwrap();
    let mut child = spawn_child(
        "child_process_follows_a_ring_in_a_region",
        CHILD_REGION_FD,
        &fd,
    );
    for pos in 1..=ENTRIES {
        assert_eq!(ring.append(pos * 3, &payload(pos)).unwrap(), pos);
        if pos % 7 == 0 || pos == ENTRIES {
            ring.publish();
        }
        if pos % 200 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "child: {status}");
}
