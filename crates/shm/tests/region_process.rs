//! A reader in another process (this test binary, run again with the region's fd inherited)
//! follows a region the writer keeps growing and publishing into: every object it finds holds
//! what the writer stored before publishing it, and every access past its last known size is
//! answered after one `fstat`, never a fault.
#![cfg(not(loom))] // the region is real memory: not modelled under loom

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nlkit_shm::{Memory, Region, RegionView, ShmError};

const CHILD_FD: &str = "NLKIT_SHM_TEST_REGION_FD";
const OBJECTS: u64 = 40;

/// The child's side: map the inherited fd and read every object as it appears.
fn reader(fd: OwnedFd) {
    let v = RegionView::map(fd).expect("map the inherited region");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < OBJECTS {
        assert!(Instant::now() < deadline, "saw only {seen} objects");
        match v.find(seen) {
            Ok(off) => {
                let w = v.words(off, 3).expect("a published object is readable");
                assert_eq!(w[0].load(Ordering::Relaxed), seen);
                assert_eq!(w[1].load(Ordering::Relaxed), off);
                assert_eq!(w[2].load(Ordering::Relaxed), !off);
                seen += 1;
            }
            Err(ShmError::NotFound(_)) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_reader_process_follows_a_growing_region() {
    if let Ok(fd) = std::env::var(CHILD_FD) {
        let fd: i32 = fd.parse().unwrap();
        // SAFETY: the parent passed this fd number for us to own; nothing else in this
        // process uses it.
        reader(unsafe { OwnedFd::from_raw_fd(fd) });
        return;
    }
    let r = Region::create("test-process").unwrap();
    // dup(2) gives a descriptor without FD_CLOEXEC: the child inherits it.
    let inherit = rustix::io::dup(r.fd()).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_reader_process_follows_a_growing_region",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FD, inherit.as_raw_fd().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(inherit);
    for id in 0..OBJECTS {
        // 5 MiB each: the file grows every few objects while the child reads.
        let off = r.alloc(5 << 20).unwrap();
        let w = r.words(off, 3).unwrap();
        w[0].store(id, Ordering::Relaxed);
        w[1].store(off, Ordering::Relaxed);
        w[2].store(!off, Ordering::Relaxed);
        r.publish(id, off).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reader process: {}\n{stdout}",
        out.status
    );
    // The child really ran the reader (a filter that matched nothing would also succeed).
    assert!(stdout.contains("1 passed"), "{stdout}");
}
