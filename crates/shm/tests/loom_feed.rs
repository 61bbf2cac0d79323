//! Loom model of the feed ring's writer/reader protocol (DESIGN.md §4): a writer appends and
//! publishes entries into a ring that holds two of them, so the third overwrites the first,
//! while a reader reads. Every entry the reader accepts is exactly the one written at that
//! position; one that was overwritten is reported as `Overrun`, never as torn bytes.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3
//! cargo test --release -p nlkit-shm --test loom_feed`.
#![cfg(loom)]

use std::sync::Arc;

use loom::thread;
use nlkit_shm::feed::{FeedLayout, FeedReader, FeedWriter};
use nlkit_shm::{HeapMemory, ShmError};

/// A 64-byte ring: two entries of 8 bytes (32 bytes each with their header) fit.
fn ring() -> (Arc<HeapMemory>, FeedWriter<Arc<HeapMemory>>) {
    let l = FeedLayout::new(64);
    assert_eq!((l.capacity(), l.index_slots()), (64, 4));
    let mem = Arc::new(HeapMemory::zeroed((l.bytes() / 8) as usize));
    let w = FeedWriter::init(mem.clone(), 0, l).unwrap();
    (mem, w)
}

fn payload(pos: u64) -> [u8; 8] {
    [pos as u8 | 0x80; 8]
}

/// Reads `pos` and checks the answer: the entry written at `pos`, not yet published, or
/// overwritten (only possible for entries the third one overwrote).
fn check(r: &FeedReader<'_, HeapMemory>, pos: u64, may_overrun: bool) -> Option<bool> {
    let mut out = Vec::new();
    match r.read(pos, &mut out) {
        Ok(Some(e)) => {
            assert_eq!((e.pos, e.tag, e.len), (pos, pos * 100, 8));
            assert_eq!(out, payload(pos), "torn entry {pos}");
            Some(true)
        }
        Ok(None) => None,
        Err(ShmError::Overrun { asked, oldest }) => {
            assert!(may_overrun, "entry {pos} reported overrun");
            assert!(out.is_empty());
            assert_eq!(asked, pos);
            assert!(oldest > pos);
            Some(false)
        }
        Err(e) => panic!("entry {pos}: {e:?}"),
    }
}

#[test]
fn reader_sees_written_entries_or_overrun() {
    loom::model(|| {
        let (mem, w) = ring();
        let m = mem.clone();
        let reader = thread::spawn(move || {
            let r = FeedReader::open(&*m, 0).unwrap();
            // Entry 1 is overwritten by entry 3; entry 2 never is.
            check(&r, 1, true);
            check(&r, 2, false);
        });
        for pos in 1..=3u64 {
            assert_eq!(w.append(pos * 100, &payload(pos)).unwrap(), pos);
            w.publish();
        }
        reader.join().unwrap();
        let r = FeedReader::open(&*mem, 0).unwrap();
        assert_eq!(check(&r, 1, true), Some(false), "entry 1 was overwritten");
        assert_eq!(check(&r, 2, false), Some(true));
        assert_eq!(check(&r, 3, false), Some(true));
        assert_eq!(check(&r, 4, false), None);
    });
}

#[test]
fn reader_racing_the_overwrite_of_what_it_reads() {
    loom::model(|| {
        let (mem, w) = ring();
        // Entries 1 and 2 are published before the reader starts; it reads entry 1 while
        // entry 3 overwrites it.
        for pos in 1..=2u64 {
            w.append(pos * 100, &payload(pos)).unwrap();
        }
        w.publish();
        let m = mem.clone();
        let reader = thread::spawn(move || {
            let r = FeedReader::open(&*m, 0).unwrap();
            assert!(check(&r, 1, true).is_some());
        });
        w.append(300, &payload(3)).unwrap();
        w.publish();
        reader.join().unwrap();
    });
}

#[test]
fn waiter_sees_the_published_entry() {
    loom::model(|| {
        let (mem, w) = ring();
        let m = mem.clone();
        let reader = thread::spawn(move || {
            let r = FeedReader::open(&*m, 0).unwrap();
            assert!(r.wait(1, None).unwrap());
            assert_eq!(check(&r, 1, false), Some(true));
        });
        w.append(100, &payload(1)).unwrap();
        w.publish();
        reader.join().unwrap();
    });
}

#[test]
fn one_entry_overwrites_two_after_padding() {
    loom::model(|| {
        let (mem, w) = ring();
        // Two empty entries (24 bytes each) at 0 and 24; the third (40 bytes) does not fit
        // before the end, so it starts the next lap and overwrites both.
        assert_eq!(w.append(100, b"").unwrap(), 1);
        assert_eq!(w.append(200, b"").unwrap(), 2);
        w.publish();
        let m = mem.clone();
        let reader = thread::spawn(move || {
            let r = FeedReader::open(&*m, 0).unwrap();
            for pos in 1..=2u64 {
                let mut out = Vec::new();
                match r.read(pos, &mut out) {
                    Ok(Some(e)) => {
                        assert_eq!((e.pos, e.tag, e.len), (pos, pos * 100, 0));
                        assert!(out.is_empty());
                    }
                    Err(ShmError::Overrun { oldest, .. }) => assert!(oldest > pos),
                    other => panic!("entry {pos}: {other:?}"),
                }
            }
        });
        assert_eq!(w.append(300, &[0x33; 16]).unwrap(), 3);
        w.publish();
        reader.join().unwrap();
        let r = FeedReader::open(&*mem, 0).unwrap();
        assert_eq!(r.oldest().unwrap(), 3);
        let mut out = Vec::new();
        assert_eq!(r.read(3, &mut out).unwrap().unwrap().len, 16);
        assert_eq!(out, [0x33; 16]);
    });
}
