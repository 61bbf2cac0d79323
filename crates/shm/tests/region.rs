//! The region layer on real memfds: publish and find, growth seen by a reader, the seal check.
#![cfg(not(loom))] // the region is real memory: not modelled under loom

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use nlkit_shm::{Memory, Region, RegionView, ShmError, HEADER_BYTES, RESERVE};
use rustix::fs::{MemfdFlags, SealFlags};

fn view_of(r: &Region) -> RegionView {
    RegionView::map(r.fd().try_clone_to_owned().unwrap()).unwrap()
}

#[test]
fn publish_and_find() {
    let r = Region::create("test-publish").unwrap();
    let a = r.alloc(100).unwrap();
    let b = r.alloc(8).unwrap();
    assert!(a >= HEADER_BYTES);
    assert_eq!(a % 64, 0);
    assert_eq!(b, a + 128);
    r.word(a).unwrap().store(0xaaaa, Ordering::Relaxed);
    r.word(b).unwrap().store(0xbbbb, Ordering::Relaxed);
    r.publish(1, a).unwrap();
    r.publish(2, b).unwrap();

    let v = view_of(&r);
    assert_eq!(v.find(1).unwrap(), a);
    assert_eq!(v.find(2).unwrap(), b);
    assert!(matches!(v.find(3), Err(ShmError::NotFound(3))));
    let off = v.find(2).unwrap();
    assert_eq!(v.word(off).unwrap().load(Ordering::Acquire), 0xbbbb);

    // Published after the view was mapped: seen too, and a republished id is replaced.
    r.publish(3, b).unwrap();
    r.publish(1, b).unwrap();
    assert_eq!(v.find(3).unwrap(), b);
    assert_eq!(v.find(1).unwrap(), b);
    assert_eq!(r.find(1).unwrap(), b);
}

#[test]
fn publish_rejects_bad_offsets_and_a_full_directory() {
    let r = Region::create("test-dir").unwrap();
    assert!(matches!(r.publish(1, 12), Err(ShmError::Misaligned(12))));
    assert!(matches!(
        r.publish(1, r.len()),
        Err(ShmError::OutOfBounds { .. })
    ));
    let off = r.alloc(8).unwrap();
    let mut n = 0;
    while r.publish(n, off).is_ok() {
        n += 1;
        assert!(n <= 1024);
    }
    assert!(n >= 64, "{n} directory slots");
    assert!(matches!(r.publish(n, off), Err(ShmError::Full(_))));
    let v = view_of(&r);
    assert_eq!(v.find(n - 1).unwrap(), off);
    assert_eq!(v.find(0).unwrap(), off);
}

#[test]
fn writer_bounds_follow_the_file_size() {
    let r = Region::create("test-bounds").unwrap();
    let len = r.len();
    assert!(len >= HEADER_BYTES);
    assert!(r.words(len - 8, 1).is_ok());
    assert!(matches!(r.words(len, 1), Err(ShmError::OutOfBounds { .. })));
    assert!(matches!(
        r.words(len - 8, 2),
        Err(ShmError::OutOfBounds { .. })
    ));
    assert!(matches!(r.words(4, 1), Err(ShmError::Misaligned(4))));
    assert!(r.words(0, usize::MAX).is_err());
    assert!(r.words(u64::MAX - 7, 1).is_err());
}

#[test]
fn growth_is_visible_to_a_reader() {
    let r = Region::create("test-grow").unwrap();
    let v = view_of(&r);
    let before = v.len();
    assert_eq!(before, r.len());

    // Beyond the initial file size: the writer grows the file first.
    let big = r.alloc(before * 3).unwrap();
    let end = big + before * 3;
    assert!(r.len() >= end);
    let last = end - 8;
    r.word(last).unwrap().store(42, Ordering::Release);
    r.publish(7, last).unwrap();

    // The reader's cached size is stale; an access beyond it refreshes it with fstat.
    assert_eq!(v.len(), before);
    assert_eq!(v.word(last).unwrap().load(Ordering::Acquire), 42);
    assert!(v.len() >= end);

    // So does finding an object beyond the known size, so that `len` covers it.
    let v = view_of(&r);
    r.alloc(r.len()).unwrap();
    let far = r.alloc(64).unwrap();
    r.publish(8, far).unwrap();
    assert!(v.len() <= far);
    assert_eq!(v.find(8).unwrap(), far);
    assert!(v.len() > far);
    let off = v.find(7).unwrap();
    assert_eq!(v.word(off).unwrap().load(Ordering::Acquire), 42);
    assert!(v.len() >= end);
    // Still nothing beyond the file.
    assert!(matches!(
        v.words(v.len(), 1),
        Err(ShmError::OutOfBounds { .. })
    ));
    assert!(v.words(RESERVE, 1).is_err());
}

#[test]
fn alloc_refuses_beyond_the_reserve() {
    let r = Region::create("test-full").unwrap();
    assert!(matches!(r.alloc(RESERVE), Err(ShmError::Full(_))));
    assert!(matches!(r.alloc(u64::MAX), Err(ShmError::Full(_))));
    // The region is still usable.
    let a = r.alloc(8).unwrap();
    r.word(a).unwrap().store(1, Ordering::Relaxed);
}

#[test]
fn allocations_are_zeroed_and_disjoint() {
    let r = Region::create("test-zero").unwrap();
    let mut prev_end = HEADER_BYTES;
    for size in [1u64, 8, 63, 64, 65, 4096, 1 << 20, 20 << 20] {
        let off = r.alloc(size).unwrap();
        assert!(off >= prev_end);
        assert_eq!(off % 64, 0);
        let words = r.words(off, size.div_ceil(8) as usize).unwrap();
        assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        prev_end = off + size;
    }
}

fn memfd(seals: SealFlags, bytes: &[u8]) -> OwnedFd {
    let fd = rustix::fs::memfd_create(
        "nlkit-test",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    let mut done = 0;
    while done < bytes.len() {
        done += rustix::io::write(&fd, &bytes[done..]).unwrap();
    }
    rustix::fs::ftruncate(&fd, bytes.len() as u64).unwrap();
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    }
    fd
}

/// The bytes of a fresh region's header, copied out of a real one.
fn header_bytes() -> Vec<u8> {
    let r = Region::create("test-header").unwrap();
    let mut out = Vec::new();
    nlkit_shm::read_bytes(&r, 0, HEADER_BYTES as usize, &mut out).unwrap();
    out
}

#[test]
fn a_reader_needs_the_seals() {
    let good = header_bytes();
    for seals in [
        SealFlags::empty(),
        SealFlags::SHRINK,
        SealFlags::FUTURE_WRITE,
        SealFlags::GROW | SealFlags::SEAL,
    ] {
        let fd = memfd(seals, &good);
        assert!(
            matches!(RegionView::map(fd), Err(ShmError::NotSealed(_))),
            "{seals:?}"
        );
    }
    for seals in [
        SealFlags::SHRINK | SealFlags::FUTURE_WRITE,
        SealFlags::SHRINK | SealFlags::WRITE,
        SealFlags::SHRINK | SealFlags::FUTURE_WRITE | SealFlags::SEAL,
    ] {
        let v = RegionView::map(memfd(seals, &good)).unwrap();
        assert!(matches!(v.find(1), Err(ShmError::NotFound(1))));
    }
}

#[test]
fn a_file_that_is_not_a_memfd_is_an_error() {
    let (r, _w) = rustix::pipe::pipe().unwrap();
    assert!(matches!(RegionView::map(r), Err(ShmError::Os { .. })));
}

#[test]
fn a_short_or_foreign_file_is_corrupt() {
    let seals = SealFlags::SHRINK | SealFlags::FUTURE_WRITE;
    let good = header_bytes();
    for bytes in [
        Vec::new(),
        good[..64].to_vec(),
        good[..HEADER_BYTES as usize - 8].to_vec(),
        vec![0u8; 8192],
        vec![0xffu8; 8192],
    ] {
        let len = bytes.len();
        assert!(
            matches!(
                RegionView::map(memfd(seals, &bytes)),
                Err(ShmError::Corrupt(_))
            ),
            "{len} bytes"
        );
    }
    // Each geometry word changed by one.
    for word in 0..4 {
        let mut bad = good.clone();
        bad[word * 8] ^= 1;
        assert!(
            matches!(
                RegionView::map(memfd(seals, &bad)),
                Err(ShmError::Corrupt(_))
            ),
            "word {word}"
        );
    }
}

#[test]
fn a_lying_directory_count_is_corrupt() {
    let r = Region::create("test-liar").unwrap();
    let v = view_of(&r);
    // The writer's header lies (the writer may be anything): the reader does not believe it.
    for count in [129u64, 1 << 40, u64::MAX] {
        r.word(48).unwrap().store(count, Ordering::Release);
        assert!(matches!(v.find(1), Err(ShmError::Corrupt(_))), "{count}");
    }
    // The length word is never used for bounds.
    r.word(48).unwrap().store(0, Ordering::Release);
    r.word(32).unwrap().store(u64::MAX, Ordering::Release);
    assert!(v.words(v.len(), 1).is_err());
    assert!(v.words(RESERVE - 8, 1).is_err());
}

#[test]
fn readers_follow_a_growing_region_concurrently() {
    use std::sync::Arc;

    const OBJECTS: u64 = 24;
    let r = Arc::new(Region::create("test-concurrent").unwrap());
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let v = view_of(&r);
            std::thread::spawn(move || {
                let mut seen = 0u64;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while seen < OBJECTS && std::time::Instant::now() < deadline {
                    match v.find(seen) {
                        Ok(off) => {
                            // The object's words were stored before it was published.
                            let w = v.words(off, 2).expect("a published object is readable");
                            assert_eq!(w[0].load(Ordering::Relaxed), seen * 1000);
                            assert_eq!(w[1].load(Ordering::Relaxed), off);
                            seen += 1;
                        }
                        Err(ShmError::NotFound(_)) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
                seen
            })
        })
        .collect();
    for id in 0..OBJECTS {
        // 6 MiB each: the file grows every few objects, while the readers read.
        let off = r.alloc(6 << 20).unwrap();
        let w = r.words(off, 2).unwrap();
        w[0].store(id * 1000, Ordering::Relaxed);
        w[1].store(off, Ordering::Relaxed);
        r.publish(id, off).unwrap();
    }
    for t in readers {
        assert_eq!(t.join().unwrap(), OBJECTS);
    }
}
