//! One function that drives the map reader over arbitrary memory: the body of the `shm_map`
//! cargo-fuzz target (`fuzz/` at the top of the repository), of the test that replays its
//! corpus (`tests/map_corpus.rs`) and of the property tests (`tests/map_props.rs`), so all
//! three exercise the same code.
//!
//! Errors are the expected outcome and are only counted. [`map_reader`] panics only when the
//! reader breaks a promise of its own (a walk visiting more entries than the capacity, a
//! record longer than [`MAX_RECORD`], an entry returned under a key it does not hold): such a
//! panic is a bug, which is what a fuzzer looks for.

use std::sync::Arc;

use super::{HeapArena, MapLayout, MapOptions, MapReader, SharedMap, Slot, MAX_RECORD};
use crate::memory::{HeapMemory, Memory};
use crate::sync::Ordering;

/// What [`map_reader`] saw.
///
/// ```
/// let r = nlkit_shm::map::fuzzing::map_reader(&[]);
/// assert_eq!(r.opened, 1); // the sample map, untouched
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapReport {
    /// Maps that opened (of two tries: the bytes as memory, and the sample map with the
    /// bytes' overwrites applied).
    pub opened: usize,
    /// Lookups that found an entry.
    pub found: usize,
    /// Entries walks visited.
    pub walked: u64,
    /// Calls that returned an error.
    pub errors: usize,
}

/// The layout of the sample map: two unique directions and a non-unique index, and 24 bytes
/// of inline record area (records up to 24 bytes in their slot, longer ones in the heap).
fn sample_layout() -> MapLayout {
    let mut l = MapLayout::new(8)
        .key(2, true)
        .key(1, true)
        .key(1, false)
        .inline(24);
    l.buckets = 4;
    l
}

/// Keys of sample entry `i` in its three directions.
fn sample_keys(i: u64) -> ([u64; 2], [u64; 1], [u64; 1]) {
    ([i, i * 3 + 1], [100 + i], [i % 2])
}

/// The words of a small valid map at offset 0: six entries of which one was removed and one
/// replaced (records of varying length: three inline, two in the heap; the replaced one moved
/// from the heap into its slot).
pub fn sample_map() -> Vec<u64> {
    let arena = Arc::new(HeapArena::new(1024));
    let opts = MapOptions {
        heap_chunk: 256,
        seed: Some(0x5eed),
    };
    let Ok(map) = SharedMap::create_in(arena.clone(), sample_layout(), opts) else {
        return Vec::new();
    };
    let mut w = map.lock();
    for i in 0..6u64 {
        let (a, b, c) = sample_keys(i);
        let rec = vec![i as u8; 3 + 9 * i as usize];
        let _ = w.insert(&[&a, &b, &c], i, &rec);
    }
    w.remove(Slot(2));
    let _ = w.replace(Slot(4), 44, b"replaced");
    drop(w);
    let n = (arena.len() / 8) as usize;
    arena
        .words(0, n)
        .map(|ws| ws.iter().map(|a| a.load(Ordering::Relaxed)).collect())
        .unwrap_or_default()
}

/// Reads `bytes` as a map at offset 0 (and at an offset the first word names), then the
/// sample map with `bytes` applied as overwrites (16-byte pairs: word index, value), every way
/// a client does: open, lookups in every direction (sample keys and keys taken from the
/// bytes), index lookups, reads of every slot, a walk, the counters.
///
/// ```
/// let r = nlkit_shm::map::fuzzing::map_reader(&[0xff; 64]);
/// assert!(r.errors > 0 || r.opened > 0);
/// ```
pub fn map_reader(bytes: &[u8]) -> MapReport {
    let mut report = MapReport::default();
    let mem = HeapMemory::from_bytes(bytes);
    read_all(&mem, 0, bytes, &mut report);
    if bytes.len() >= 8 {
        let off = (u64::from_ne_bytes(bytes[..8].try_into().unwrap_or_default()) % 4096) & !7;
        read_all(&mem, off, bytes, &mut report);
    }
    let mut words = sample_map();
    for pair in bytes.chunks_exact(16) {
        let i = u64::from_ne_bytes(pair[..8].try_into().unwrap_or_default());
        let v = u64::from_ne_bytes(pair[8..].try_into().unwrap_or_default());
        if !words.is_empty() {
            let n = words.len();
            words[(i % n as u64) as usize] = v;
        }
    }
    read_all(&HeapMemory::from_words(&words), 0, bytes, &mut report);
    report
}

fn read_all<M: Memory + ?Sized>(mem: &M, off: u64, bytes: &[u8], report: &mut MapReport) {
    let r = match MapReader::open(mem, off) {
        Ok(r) => r,
        Err(_) => {
            report.errors += 1;
            return;
        }
    };
    report.opened += 1;
    let layout = *r.layout();
    let cap = u64::from(layout.capacity);
    let mut extra: Vec<u64> = bytes
        .chunks_exact(8)
        .take(16)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect();
    extra.resize(6, 0);
    let mut out = Vec::new();
    for dir in 0..layout.dirs() {
        let n = layout.key_words[dir] as usize;
        let mut keys: Vec<Vec<u64>> = (0..6u64)
            .map(|i| {
                let (a, b, c) = sample_keys(i);
                let k: &[u64] = match dir {
                    0 => &a,
                    1 => &b,
                    _ => &c,
                };
                let mut k = k.to_vec();
                k.resize(n, 0);
                k
            })
            .collect();
        keys.push(extra[..n].to_vec());
        for key in &keys {
            out.clear();
            match r.get(dir, key, &mut out) {
                Ok(Some(e)) => {
                    report.found += 1;
                    assert_eq!(
                        e.key(dir, &layout),
                        key.as_slice(),
                        "entry under another key"
                    );
                    assert!(out.len() <= MAX_RECORD);
                    assert!(u64::from(e.slot.0) < cap);
                }
                Ok(None) => {}
                Err(_) => report.errors += 1,
            }
            let mut calls = 0u64;
            let res = r.get_all(dir, key, |e, rec| {
                assert_eq!(
                    e.key(dir, &layout),
                    key.as_slice(),
                    "entry under another key"
                );
                assert!(rec.len() <= MAX_RECORD);
                calls += 1;
                calls < 4 * cap
            });
            if res.is_err() {
                report.errors += 1;
            }
        }
        // All the keys' chains at once, taking turns: the same entries as one by one.
        let mut calls = 0u64;
        out.clear();
        let res = r.get_all_many(dir, &keys, &mut out, |i, e, rec| {
            assert_eq!(
                e.key(dir, &layout),
                keys[i].as_slice(),
                "entry under another key"
            );
            assert!(rec.len() <= MAX_RECORD);
            rec.clear();
            calls += 1;
            calls < 4 * cap * keys.len() as u64
        });
        if res.is_err() {
            report.errors += 1;
        }
        // A key of the wrong length is an error, not a panic.
        if r.get(dir, &[0; 7], &mut out).is_err() {
            report.errors += 1;
        }
        if r.get_all_many(dir, &[[0u64; 7]], &mut out, |_, _, _| true)
            .is_err()
        {
            report.errors += 1;
        }
    }
    for s in 0..layout.capacity.min(64) {
        out.clear();
        match r.read(Slot(s), &mut out) {
            Ok(_) => assert!(out.len() <= MAX_RECORD),
            Err(_) => report.errors += 1,
        }
    }
    let mut visited = 0u64;
    match r.walk(|_, rec| {
        assert!(rec.len() <= MAX_RECORD);
        visited += 1;
        true
    }) {
        Ok(w) => {
            assert!(
                w.visited <= cap && w.visited == visited,
                "walk beyond the capacity"
            );
            report.walked += w.visited;
        }
        Err(_) => report.errors += 1,
    }
    let _ = (r.count(), r.changes());
}
