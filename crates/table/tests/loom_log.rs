//! Loom models of the record log ([`nlkit_table::RecordLog`]): publication of appended
//! records, kills that redirect readers through an index, and compaction that moves records
//! and drops chunks while readers hold older chunk lists. Under `cfg(loom)` a chunk holds 32
//! bytes (two records of 8 bytes), so three appends already turn chunks over.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use nlkit_table::{Loc, RecordLog};

/// Record contents are derived from the tag, so a reader can tell a torn or foreign read.
fn bytes_of(tag: u32) -> [u8; 8] {
    (u64::from(tag) * 0x0101_0101_0101_0101).to_ne_bytes()
}

/// A reader sees an appended record whole or not at all, in a scan and by location.
#[test]
fn append_publishes_whole_records() {
    loom::model(|| {
        let log = Arc::new(RecordLog::new());
        let at = Arc::new(AtomicU64::new(u64::MAX));
        let (l, a) = (log.clone(), at.clone());
        let w = thread::spawn(move || {
            let mut w = l.writer();
            w.append(&bytes_of(1), 1);
            let loc = w.append(&bytes_of(2), 2);
            a.store(loc.to_word(), Ordering::Release);
            w.append(&bytes_of(3), 3); // a new chunk
        });
        let mut tags = Vec::new();
        log.scan(|_, tag, b| {
            assert_eq!(b, bytes_of(tag));
            tags.push(tag);
            true
        });
        // Log order: whatever was seen is a prefix of 1, 2, 3.
        assert_eq!(tags, (1..=tags.len() as u32).collect::<Vec<_>>());
        let loc = at.load(Ordering::Acquire);
        if loc != u64::MAX {
            let mut out = Vec::new();
            assert_eq!(log.read_into(Loc::from_word(loc), &mut out), Some(2));
            assert_eq!(out, bytes_of(2));
        }
        w.join().unwrap();
    });
}

/// An index word points at the current record; the writer replaces it (append, re-point,
/// kill the old one). A reader that finds a dead record looks the index up again and always
/// gets a live, whole record within two lookups.
#[test]
fn kill_redirects_readers() {
    loom::model(|| {
        let log = Arc::new(RecordLog::new());
        let first = log.writer().append(&bytes_of(1), 1);
        let index = Arc::new(AtomicU64::new(first.to_word()));
        let (l, i) = (log.clone(), index.clone());
        let w = thread::spawn(move || {
            let mut w = l.writer();
            let new = w.append(&bytes_of(2), 2);
            i.store(new.to_word(), Ordering::Release);
            assert!(w.kill(first));
        });
        let mut got = None;
        for _ in 0..2 {
            let loc = Loc::from_word(index.load(Ordering::Acquire));
            let mut out = Vec::new();
            if let Some(tag) = log.read_into(loc, &mut out) {
                assert_eq!(out, bytes_of(tag));
                got = Some(tag);
                break;
            }
        }
        assert!(got.is_some(), "a dead record must lead to the live one");
        w.join().unwrap();
    });
}

/// Compaction moves the live record of a mostly dead chunk to the head chunk and drops the
/// old chunk, while a reader follows the index: it always reads the record's bytes, from the
/// old chunk (kept alive by its list snapshot) or the new one.
#[test]
fn compaction_keeps_readers_safe() {
    loom::model(|| {
        let log = Arc::new(RecordLog::new());
        let (keep, index) = {
            let mut w = log.writer();
            let keep = w.append(&bytes_of(7), 7);
            let gone = w.append(&bytes_of(8), 8);
            assert!(w.kill(gone)); // chunk 1 is half dead, but still the head
            (keep, Arc::new(AtomicU64::new(keep.to_word())))
        };
        let (l, i) = (log.clone(), index.clone());
        let w = thread::spawn(move || {
            let mut w = l.writer();
            w.append(&bytes_of(9), 9); // chunk 2: chunk 1 becomes sparse
            let moved = w.compact(|b, old, new| {
                assert_eq!((b, old), (&bytes_of(7)[..], keep));
                i.store(new.to_word(), Ordering::Release);
                true
            });
            assert_eq!(moved, 1);
        });
        let mut ok = false;
        for _ in 0..2 {
            let loc = Loc::from_word(index.load(Ordering::Acquire));
            let mut out = Vec::new();
            if let Some(tag) = log.read_into(loc, &mut out) {
                assert_eq!((tag, out), (7, bytes_of(7).to_vec()));
                ok = true;
                break;
            }
        }
        assert!(ok);
        w.join().unwrap();
        let mut n = 0;
        log.scan(|_, tag, b| {
            assert_eq!(b, bytes_of(tag));
            n += 1;
            true
        });
        assert_eq!(n, 2); // 7 (moved) and 9
    });
}
