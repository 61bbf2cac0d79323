//! The feed ring over process memory: order, overrun, entry bounds, waiting across threads,
//! and readers handed random memory (they return errors, never panic).
#![cfg(not(loom))]

use std::sync::Arc;
use std::time::Duration;

use nlkit_shm::feed::{FeedLayout, FeedReader, FeedWriter};
use nlkit_shm::{HeapMemory, ShmError};
use proptest::prelude::*;

fn ring(cap: u64) -> (Arc<HeapMemory>, FeedWriter<Arc<HeapMemory>>) {
    let l = FeedLayout::new(cap);
    let mem = Arc::new(HeapMemory::zeroed((l.bytes() / 8) as usize));
    let w = FeedWriter::init(mem.clone(), 0, l).unwrap();
    (mem, w)
}

/// The bytes of entry `pos` in these tests: its length and contents follow from it.
fn payload(pos: u64) -> Vec<u8> {
    let len = (pos * 7 % 61) as usize;
    (0..len).map(|i| (pos as usize * 31 + i) as u8).collect()
}

#[test]
fn entries_read_back_in_order() {
    let (mem, w) = ring(1 << 16);
    let r = FeedReader::open(&*mem, 0).unwrap();
    assert_eq!(r.next_pos().unwrap(), 1);
    for pos in 1..=100u64 {
        assert_eq!(w.append(pos * 10, &payload(pos)).unwrap(), pos);
    }
    assert_eq!(r.read(1, &mut Vec::new()).unwrap(), None, "not published");
    w.publish();
    assert_eq!(r.next_pos().unwrap(), 101);
    let mut out = Vec::new();
    for pos in 1..=100u64 {
        out.clear();
        let e = r.read(pos, &mut out).unwrap().unwrap();
        assert_eq!((e.pos, e.tag, e.len), (pos, pos * 10, payload(pos).len()));
        assert_eq!(out, payload(pos));
    }
    assert_eq!(r.read(101, &mut out).unwrap(), None);
}

#[test]
fn old_entries_are_overrun_never_torn() {
    let (mem, w) = ring(1024);
    let r = FeedReader::open(&*mem, 0).unwrap();
    let mut out = Vec::new();
    for pos in 1..=2000u64 {
        w.append(pos, &payload(pos)).unwrap();
        if pos % 3 == 0 {
            w.publish();
        }
        // Every published position reads back intact or is reported overrun.
        let head = r.next_pos().unwrap();
        let oldest = r.oldest().unwrap();
        for p in head.saturating_sub(40).max(1)..head {
            out.clear();
            match r.read(p, &mut out) {
                Ok(Some(e)) => {
                    assert!(p >= oldest);
                    assert_eq!((e.pos, e.tag), (p, p));
                    assert_eq!(out, payload(p));
                }
                Err(ShmError::Overrun { asked, oldest: o }) => {
                    assert_eq!(asked, p);
                    assert!(o > p && p < oldest, "{p} overrun, oldest {oldest}");
                    assert!(out.is_empty());
                }
                other => panic!("position {p}: {other:?}"),
            }
        }
    }
    // The ring keeps the newest entries only.
    assert!(matches!(r.read(1, &mut out), Err(ShmError::Overrun { .. })));
    assert!(r.oldest().unwrap() > 1900);
}

#[test]
fn index_bounds_the_number_of_entries() {
    let (mem, w) = ring(1024); // 16 index slots
    let r = FeedReader::open(&*mem, 0).unwrap();
    assert_eq!(r.layout().index_slots(), 16);
    for _ in 0..40 {
        w.append(0, b"").unwrap();
    }
    w.publish();
    assert!(matches!(
        r.read(24, &mut Vec::new()),
        Err(ShmError::Overrun { .. })
    ));
    assert!(r.read(25, &mut Vec::new()).unwrap().is_some());
}

#[test]
fn too_large_entries_are_refused() {
    let (mem, w) = ring(1024);
    let max = w.layout().max_entry();
    assert_eq!(max, 1024 / 4);
    assert!(matches!(
        w.append(0, &vec![1; max + 1]),
        Err(ShmError::TooLarge(n)) if n == max + 1
    ));
    assert_eq!(w.append(0, &vec![1; max]).unwrap(), 1);
    w.publish();
    let mut out = Vec::new();
    FeedReader::open(&*mem, 0)
        .unwrap()
        .read(1, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(out.len(), max);
}

#[test]
fn first_position_is_the_writers() {
    let l = FeedLayout::new(4096);
    let mem = HeapMemory::zeroed((l.bytes() / 8) as usize);
    let w = FeedWriter::init_at(&mem, 0, l, 500).unwrap();
    assert_eq!(w.reader().stamp().unwrap(), 0);
    w.set_stamp(0xe90c);
    assert_eq!(w.reader().stamp().unwrap(), 0xe90c);
    assert_eq!(w.append(1, b"x").unwrap(), 500);
    w.publish();
    let r = w.reader();
    assert_eq!(r.next_pos().unwrap(), 501);
    assert!(matches!(
        r.read(499, &mut Vec::new()),
        Err(ShmError::Overrun { .. })
    ));
    assert!(r.read(500, &mut Vec::new()).unwrap().is_some());
}

#[test]
fn publish_without_appends_changes_nothing() {
    let (mem, w) = ring(4096);
    let futex = |m: &HeapMemory| {
        use nlkit_shm::Memory;
        m.word(32)
            .unwrap()
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    w.publish();
    assert_eq!(futex(&mem), 0);
    w.append(0, b"a").unwrap();
    w.append(0, b"b").unwrap();
    w.publish();
    w.publish();
    assert_eq!(futex(&mem), 1, "one bump per publish with entries");
}

#[test]
fn wait_wakes_threads_on_publish() {
    let (mem, w) = ring(1 << 16);
    let r = FeedReader::open(&*mem, 0).unwrap();
    assert!(!r.wait(1, Some(Duration::from_millis(20))).unwrap());
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let r = FeedReader::open(&*mem, 0).unwrap();
                    let mut pos = 1;
                    let mut out = Vec::new();
                    while pos <= 50 {
                        assert!(r.wait(pos, Some(Duration::from_secs(30))).unwrap());
                        out.clear();
                        let e = r.read(pos, &mut out).unwrap().unwrap();
                        assert_eq!(out, payload(e.pos));
                        pos += 1;
                    }
                })
            })
            .collect();
        for pos in 1..=50u64 {
            w.append(0, &payload(pos)).unwrap();
            w.publish();
            if pos % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        for t in waiters {
            t.join().unwrap();
        }
    });
    assert!(r.wait(10, None).unwrap(), "already published: no wait");
}

#[test]
fn garbage_headers_are_errors() {
    let l = FeedLayout::new(1024);
    let words = (l.bytes() / 8) as usize;
    // Zeroes, a lying capacity, a lying index size, a ring larger than the memory.
    let mut bad: Vec<Vec<u64>> = vec![vec![0; words]];
    let magic = u64::from_le_bytes(*b"NLKFEED1");
    for (cap, idx) in [(1000, 16), (1024, 3), (1024, 1024), (1 << 20, 16), (0, 0)] {
        let mut w = vec![0; words];
        w[0] = magic;
        w[1] = cap;
        w[2] = idx;
        bad.push(w);
    }
    for w in bad {
        let m = HeapMemory::from_words(&w);
        assert!(FeedReader::open(&m, 0).is_err());
    }
    assert!(FeedReader::open(&HeapMemory::zeroed(2), 0).is_err());
    assert!(FeedReader::open(&HeapMemory::zeroed(64), 4).is_err());
}

/// A valid header over random contents: what a reader makes of any index and entries.
fn random_ring(cap_log: u32, idx_log: u32, head: u64, tail: u64, rest: &[u64]) -> Vec<u64> {
    let cap = 1u64 << cap_log;
    let idx = 1u64 << idx_log;
    let words = (64 + 8 * idx + cap) / 8;
    let mut w: Vec<u64> = (0..words as usize)
        .map(|i| rest.get(i % rest.len().max(1)).copied().unwrap_or(0))
        .collect();
    w[0] = u64::from_le_bytes(*b"NLKFEED1");
    w[1] = cap;
    w[2] = idx;
    w[3] = head;
    w[5] = tail;
    w
}

proptest! {
    /// Appends of random sizes into rings of 64 bytes to 2 KiB, published in random batches:
    /// every position reads back exactly what was written or is overrun, the newest entry is
    /// there after a publish, and what is kept is a suffix of the positions.
    #[test]
    fn rings_of_any_size_keep_a_suffix(
        cap_log in 6u32..12,
        ops in prop::collection::vec((0usize..600, any::<bool>()), 1..120),
    ) {
        let (mem, w) = ring(1 << cap_log);
        let r = FeedReader::open(&*mem, 0).unwrap();
        let max = w.layout().max_entry();
        let mut written: Vec<Vec<u8>> = Vec::new();
        let mut out = Vec::new();
        for (len, publish) in ops {
            let bytes: Vec<u8> = (0..len).map(|i| (i as u8) ^ (written.len() as u8)).collect();
            match w.append(written.len() as u64, &bytes) {
                Ok(pos) => {
                    prop_assert!(len <= max);
                    prop_assert_eq!(pos, written.len() as u64 + 1);
                    written.push(bytes);
                }
                Err(ShmError::TooLarge(n)) => {
                    prop_assert!(n > max);
                    continue;
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
            if publish {
                w.publish();
            }
            let head = r.next_pos().unwrap();
            let mut kept = false;
            for pos in 1..head {
                out.clear();
                match r.read(pos, &mut out) {
                    Ok(Some(e)) => {
                        prop_assert_eq!(e.tag, pos - 1);
                        prop_assert_eq!(&out, &written[(pos - 1) as usize]);
                        kept = true;
                    }
                    Err(ShmError::Overrun { .. }) => prop_assert!(!kept, "a hole at {}", pos),
                    other => return Err(TestCaseError::fail(format!("{pos}: {other:?}"))),
                }
            }
            // Appends not yet published may overwrite published entries; once published,
            // the newest is always kept.
            prop_assert!(!publish || kept, "the newest entry is kept");
        }
    }

    #[test]
    fn random_memory_never_panics(words in prop::collection::vec(any::<u64>(), 0..200), pos in any::<u64>(), off in 0u64..64) {
        let m = HeapMemory::from_words(&words);
        if let Ok(r) = FeedReader::open(&m, off * 8) {
            let _ = r.next_pos();
            let _ = r.read(pos, &mut Vec::new());
            let _ = r.wait(pos, Some(Duration::ZERO));
        }
    }

    #[test]
    fn random_entries_never_panic(
        cap_log in 6u32..10,
        idx_log in 2u32..4,
        head in 0u64..64,
        tail in 0u64..64,
        rest in prop::collection::vec(prop_oneof![any::<u64>(), 0u64..2048], 1..64),
    ) {
        let m = HeapMemory::from_words(&random_ring(cap_log, idx_log, head, tail, &rest));
        let r = FeedReader::open(&m, 0).unwrap();
        let mut out = Vec::new();
        for pos in 0..=head {
            out.clear();
            match r.read(pos, &mut out) {
                Ok(Some(e)) => prop_assert_eq!(out.len(), e.len),
                Ok(None) => prop_assert!(pos >= head),
                Err(_) => prop_assert!(out.is_empty()),
            }
        }
    }
}

#[test]
fn concurrent_readers_see_written_entries_or_overrun() {
    let (mem, w) = ring(2048);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let r = FeedReader::open(&*mem, 0).unwrap();
                    let (mut ok, mut overrun) = (0u64, 0u64);
                    let mut out = Vec::new();
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let head = r.next_pos().unwrap();
                        for p in head.saturating_sub(30).max(1)..head {
                            out.clear();
                            match r.read(p, &mut out) {
                                Ok(Some(e)) => {
                                    assert_eq!((e.pos, e.tag), (p, !p));
                                    assert_eq!(out, payload(p), "torn entry {p}");
                                    ok += 1;
                                }
                                Err(ShmError::Overrun { .. }) => overrun += 1,
                                other => panic!("{p}: {other:?}"),
                            }
                        }
                    }
                    (ok, overrun)
                })
            })
            .collect();
        for pos in 1..=200_000u64 {
            w.append(!pos, &payload(pos)).unwrap();
            if pos % 4 == 0 {
                w.publish();
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in readers {
            let (ok, _overrun) = t.join().unwrap();
            assert!(ok > 0);
        }
    });
}

#[test]
fn ring_in_a_region_read_through_a_view() {
    use nlkit_shm::{FeedRing, Region, RegionView};
    let region = Arc::new(Region::create("feed-test").unwrap());
    let feed = FeedRing::create(region.clone(), 1 << 16).unwrap();
    region.publish(0xfeed, feed.offset()).unwrap();
    let view = RegionView::map(region.fd().try_clone_to_owned().unwrap()).unwrap();
    let r = FeedReader::open(&view, view.find(0xfeed).unwrap()).unwrap();
    assert_eq!(r.layout(), feed.layout());
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let mut out = Vec::new();
            for pos in 1..=20u64 {
                assert!(r.wait(pos, Some(Duration::from_secs(30))).unwrap());
                out.clear();
                let e = r.read(pos, &mut out).unwrap().unwrap();
                assert_eq!((e.tag, &out[..]), (pos, &payload(pos)[..]));
            }
        });
        for pos in 1..=20u64 {
            assert_eq!(feed.append(pos, &payload(pos)).unwrap(), pos);
            feed.publish();
        }
        t.join().unwrap();
    });
    let mut out = Vec::new();
    assert!(feed.reader().read(20, &mut out).unwrap().is_some());
}
