//! Loom models of the map's writer/reader protocol: slot reuse (a node moved to another
//! chain under a reader standing on it), heap block reuse, arena growth (a record in a chunk
//! allocated beyond the length the reader last saw), batched lookups (`get_batch`, from heads
//! loaded before the writer changed them), and walks against changes.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release -p nlkit-shm --test loom_map`
//!
//! Every value a reader returns must be one the writer published for that key: records are
//! `[key, version]` and the aux word is the version, so a torn or mixed read shows.
#![cfg(loom)]

use std::sync::Arc;

use loom::thread;
use nlkit_shm::map::{HeapArena, MapOptions};
use nlkit_shm::{Entry, MapLayout, MapReader, SharedMap, ShmError, Slot};

type Map = SharedMap<HeapArena>;

fn map(capacity: u32, buckets: u32) -> Arc<Map> {
    map_inline(capacity, buckets, 0)
}

/// A map whose slots hold records of up to `inline` bytes themselves.
fn map_inline(capacity: u32, buckets: u32, inline: u32) -> Arc<Map> {
    let mut l = MapLayout::new(capacity).key(1, true).inline(inline);
    l.buckets = buckets;
    // Heap chunks of 8 bytes: every new block grows the arena.
    let opts = MapOptions {
        heap_chunk: 8,
        seed: Some(7),
    };
    Arc::new(SharedMap::create_in(Arc::new(HeapArena::new(64)), l, opts).unwrap())
}

/// `[key, version]`, and for an even version from 100 a third word (24 bytes: longer than
/// the 16-byte inline area of the inline models, so replaces move records between the slot
/// and the heap).
fn record(key: u64, version: u64) -> Vec<u8> {
    let mut r = [key.to_ne_bytes(), version.to_ne_bytes()].concat();
    if version >= 100 && version % 2 == 0 {
        r.extend_from_slice(&(key ^ version).to_ne_bytes());
    }
    r
}

fn insert(m: &Map, key: u64, version: u64) -> Slot {
    m.lock()
        .insert(&[&[key]], version, &record(key, version))
        .unwrap()
}

/// Checks a validated entry: its key, aux and record agree, and the version is one of
/// `versions`.
fn check(e: &Entry, rec: &[u8], key: u64, versions: &[u64]) {
    assert_eq!(e.keys[0][0], key);
    assert_eq!(rec, record(key, e.aux).as_slice(), "torn or mixed record");
    assert!(
        versions.contains(&e.aux),
        "version {} never published",
        e.aux
    );
}

/// A lookup: `Some(version)`, `None` when absent; `Contended` is allowed (and counted as
/// nothing learned).
fn get(r: &MapReader<'_, HeapArena>, key: u64, versions: &[u64]) -> Option<Option<u64>> {
    let mut out = Vec::new();
    match r.get(0, &[key], &mut out) {
        Ok(Some(e)) => {
            check(&e, &out, key, versions);
            Some(Some(e.aux))
        }
        Ok(None) => {
            assert!(
                out.is_empty(),
                "bytes left in the buffer of a failed lookup"
            );
            Some(None)
        }
        Err(ShmError::Contended) => None,
        Err(e) => panic!("reader error {e}"),
    }
}

#[test]
fn replace_reuses_blocks_and_grows_the_heap() {
    loom::model(|| {
        let m = map(2, 2);
        let s = insert(&m, 1, 1);
        let w = {
            let m = m.clone();
            thread::spawn(move || {
                // A block in a new chunk (growth), then the first block reused.
                m.lock().replace(s, 2, &record(1, 2)).unwrap();
                m.lock().replace(s, 3, &record(1, 3)).unwrap();
            })
        };
        let r = m.reader();
        let mut last = 0;
        for _ in 0..2 {
            if let Some(v) = get(&r, 1, &[1, 2, 3]) {
                let v = v.expect("a key that is always present was not found");
                assert!(v >= last, "versions went back: {last} then {v}");
                last = v;
            }
        }
        w.join().unwrap();
        assert_eq!(get(&r, 1, &[3]), Some(Some(3)));
    });
}

#[test]
fn replace_of_an_inline_record_under_a_reader() {
    loom::model(|| {
        // Version 101 in the slot, 102 in the heap (24 bytes), 103 in the slot again: the reader
        // copies the inline words while they are rewritten, and the heap block while the
        // location moves off it.
        let m = map_inline(2, 2, 16);
        let s = insert(&m, 1, 101);
        let w = {
            let m = m.clone();
            thread::spawn(move || {
                m.lock().replace(s, 102, &record(1, 102)).unwrap();
                m.lock().replace(s, 103, &record(1, 103)).unwrap();
            })
        };
        let r = m.reader();
        let mut last = 0;
        for _ in 0..2 {
            if let Some(v) = get(&r, 1, &[101, 102, 103]) {
                let v = v.expect("a key that is always present was not found");
                assert!(v >= last, "versions went back: {last} then {v}");
                last = v;
            }
        }
        w.join().unwrap();
        assert_eq!(get(&r, 1, &[103]), Some(Some(103)));
    });
}

#[test]
fn slot_reused_with_an_inline_record_under_a_reader_of_the_old_generation() {
    loom::model(|| {
        // b (inline) is removed and its slot reused at once for c, inline too, in another
        // chain; the reader reads the slot by number (holding b's generation from before)
        // and looks c up: it sees b whole, c whole, or nothing, never b's key with c's bytes.
        let m = map_inline(2, 2, 16);
        let ([_, b, c], w) = move_a_slot_to_another_chain_with(&m, 11, 31);
        let r = m.reader();
        // b's slot: the second one taken (the setup checks that c reuses it).
        let mut out = Vec::new();
        match r.read(Slot(1), &mut out) {
            Ok(Some(e)) => {
                let k = e.keys[0][0];
                assert!(k == b || k == c, "slot 1 holds {k}");
                check(&e, &out, k, if k == b { &[11] } else { &[31] });
            }
            Ok(None) | Err(ShmError::Contended) => {}
            Err(e) => panic!("reader error {e}"),
        }
        // (b looked up while its slot moves: `reused_slot_moves_to_another_chain`.)
        if let Some(v) = get(&r, c, &[31]) {
            assert!(v.is_none() || v == Some(31));
        }
        w.join().unwrap();
    });
}

/// The setup of the models where a slot moves to another chain: keys `a` and `b` (version
/// 10 and 20) share a bucket, `c` lies in the other; the returned thread removes `b` and
/// inserts `c` (version 30), which reuses b's slot and heap block in the other bucket.
fn move_a_slot_to_another_chain(m: &Arc<Map>) -> ([u64; 3], thread::JoinHandle<()>) {
    move_a_slot_to_another_chain_with(m, 20, 30)
}

/// [`move_a_slot_to_another_chain`] with `b` at version `vb` and `c` at `vc` (`a` at 10).
fn move_a_slot_to_another_chain_with(
    m: &Arc<Map>,
    vb: u64,
    vc: u64,
) -> ([u64; 3], thread::JoinHandle<()>) {
    let keys: Vec<u64> = (1..64).collect();
    let b0 = m.bucket_of(0, &[keys[0]]);
    let a = keys[0];
    let b = *keys[1..]
        .iter()
        .find(|k| m.bucket_of(0, &[**k]) == b0)
        .unwrap();
    let c = *keys.iter().find(|k| m.bucket_of(0, &[**k]) != b0).unwrap();
    insert(m, a, 10);
    let sb = insert(m, b, vb); // chain: b -> a
    let w = {
        let m = m.clone();
        thread::spawn(move || {
            m.lock().remove(sb);
            assert_eq!(insert(&m, c, vc), sb);
        })
    };
    ([a, b, c], w)
}

#[test]
fn reused_slot_moves_to_another_chain() {
    loom::model(|| {
        let m = map(2, 2);
        let ([a, b, c], w) = move_a_slot_to_another_chain(&m);
        let r = m.reader();
        // `a` is present throughout: a reader that stood on b while it moved must restart,
        // not miss it.
        if let Some(v) = get(&r, a, &[10]) {
            assert_eq!(v, Some(10), "a present key was missed");
        }
        // `b` matches, then its slot is re-keyed to `c` before the seqlock read.
        if let Some(v) = get(&r, b, &[20]) {
            assert!(v.is_none() || v == Some(20));
        }
        if let Some(v) = get(&r, c, &[30]) {
            assert!(v.is_none() || v == Some(30));
        }
        w.join().unwrap();
    });
}

#[test]
fn get_batch_while_a_slot_moves_to_another_chain() {
    loom::model(|| {
        // As `reused_slot_moves_to_another_chain`, but the three lookups in one batch: its
        // heads are loaded (and its slots read for prefetching) before any validated read,
        // so those reads may start from heads the writer has changed since.
        let m = map(2, 2);
        let ([a, b, c], w) = move_a_slot_to_another_chain(&m);
        let r = m.reader();
        let want = [(a, 10), (b, 20), (c, 30)];
        let mut n = 0;
        r.get_batch(&[0], &[[a], [b], [c]], &mut Vec::new(), |i, got, buf| {
            let (k, v) = want[i];
            match got {
                Ok(Some(e)) => check(&e, buf, k, &[v]),
                Ok(None) => {
                    assert!(buf.is_empty(), "bytes left by a failed lookup");
                    assert_ne!(k, a, "a present key was missed");
                }
                Err(ShmError::Contended) => {}
                Err(e) => panic!("reader error {e}"),
            }
            buf.clear();
            n += 1;
        });
        assert_eq!(n, 3);
        w.join().unwrap();
    });
}

#[test]
fn walk_sees_published_entries() {
    loom::model(|| {
        let m = map(2, 1);
        let sa = insert(&m, 1, 1);
        let w = {
            let m = m.clone();
            thread::spawn(move || {
                insert(&m, 2, 2);
                m.lock().remove(sa);
            })
        };
        let r = m.reader();
        let mut seen = Vec::new();
        let walk = r
            .walk(|e, rec| {
                let k = e.keys[0][0];
                check(e, rec, k, &[k]);
                seen.push(k);
                true
            })
            .unwrap();
        assert!(seen.len() <= 2);
        if walk.consistent {
            assert!(
                seen == [1] || seen == [1, 2] || seen == [2],
                "a consistent walk is a snapshot: {seen:?}"
            );
        }
        w.join().unwrap();
    });
}

#[test]
fn walk_never_silently_misses_an_entry() {
    loom::model(|| {
        // Entries 1 and 2 are live throughout; the writer changes 2's generation (aux) only
        // and replaces 1. A walk must hand out both, or count what it skipped, and it is
        // never consistent when it missed one.
        let m = map(2, 1);
        let sa = insert(&m, 1, 1);
        let sb = insert(&m, 2, 2);
        let w = {
            let m = m.clone();
            thread::spawn(move || {
                m.lock().set_aux(sb, 2);
                m.lock().replace(sa, 3, &record(1, 3)).unwrap();
            })
        };
        let r = m.reader();
        let mut seen = Vec::new();
        let walk = r
            .walk(|e, rec| {
                let k = e.keys[0][0];
                check(e, rec, k, if k == 1 { &[1, 3] } else { &[2] });
                seen.push(k);
                true
            })
            .unwrap();
        assert_eq!(walk.visited, seen.len() as u64);
        assert_eq!(
            walk.visited + walk.skipped,
            2,
            "a live entry neither handed out nor counted: {seen:?} {walk:?}"
        );
        if walk.consistent {
            assert_eq!(seen, [1, 2], "a consistent walk missed an entry");
        }
        w.join().unwrap();
    });
}

/// A map of three slots with a unique key and a non-unique index over two buckets: entries 1
/// and 2 filed under index key 0, entry 3 under 0 or (`third_apart`) under `other`, the
/// smallest index key of the other bucket; and a thread that then removes 2 and files 4 under
/// `other` in 2's slot. Returns the map, `other` and the thread.
fn index_map_with_a_move(third_apart: bool) -> (Arc<Map>, u64, thread::JoinHandle<()>) {
    let mut l = MapLayout::new(3).key(1, true).key(1, false);
    l.buckets = 2;
    let opts = MapOptions {
        heap_chunk: 8,
        seed: Some(7),
    };
    let m = Arc::new(SharedMap::create_in(Arc::new(HeapArena::new(96)), l, opts).unwrap());
    let b0 = m.bucket_of(1, &[0]);
    let other = (1..64u64).find(|k| m.bucket_of(1, &[*k]) != b0).unwrap();
    let ins = |k: u64, idx: u64| m.lock().insert(&[&[k], &[idx]], k, &record(k, k)).unwrap();
    ins(1, 0);
    let s2 = ins(2, 0);
    ins(3, if third_apart { other } else { 0 });
    let w = {
        let m = m.clone();
        thread::spawn(move || {
            m.lock().remove(s2);
            let s4 = m
                .lock()
                .insert(&[&[4], &[other]], 4, &record(4, 4))
                .unwrap();
            assert_eq!(s4, s2);
        })
    };
    (m, other, w)
}

#[test]
fn index_scan_while_an_entry_leaves_and_its_slot_returns_elsewhere() {
    loom::model(|| {
        // A unique key and a non-unique index key; 1, 2, 3 share index key 0 (one chain:
        // 3 -> 2 -> 1); the writer moves 2's slot to 4, under the other bucket's key.
        let (m, _, w) = index_map_with_a_move(false);
        let r = m.reader();
        let mut seen = Vec::new();
        match r.get_all(1, &[0], |e, rec| {
            let k = e.keys[0][0];
            check(e, rec, k, &[k]);
            assert_eq!(e.keys[1][0], 0, "an entry of another index key");
            seen.push(k);
            true
        }) {
            Ok(()) => {
                assert!(
                    seen.contains(&1) && seen.contains(&3),
                    "a present entry was missed: {seen:?}"
                );
                assert!(!seen.contains(&4));
            }
            Err(ShmError::Contended) => {}
            Err(e) => panic!("{e}"),
        }
        w.join().unwrap();
        let mut after = Vec::new();
        r.get_all(1, &[0], |e, _| {
            after.push(e.keys[0][0]);
            true
        })
        .unwrap();
        after.sort();
        assert_eq!(after, [1, 3]);
    });
}

#[test]
fn interleaved_index_scans_while_an_entry_moves_between_their_keys() {
    loom::model(|| {
        // Index keys 0 and `other` (two buckets, two chains); 1 and 2 under 0, 3 under
        // `other`. The writer removes 2 and files 4 under `other` in its slot, while a reader
        // walks both chains taking turns (`get_all_many`).
        let (m, other, w) = index_map_with_a_move(true);
        let r = m.reader();
        let keys = [[0u64], [other]];
        let mut seen = [Vec::new(), Vec::new()];
        let mut buf = Vec::new();
        match r.get_all_many(1, &keys, &mut buf, |i, e, rec| {
            let k = e.keys[0][0];
            check(e, rec, k, &[k]);
            assert_eq!(e.keys[1][0], keys[i][0], "an entry of another index key");
            seen[i].push(k);
            rec.clear();
            true
        }) {
            Ok(()) => {
                assert!(seen[0].contains(&1), "a present entry was missed: {seen:?}");
                assert!(seen[1].contains(&3), "a present entry was missed: {seen:?}");
                assert!(!seen[0].contains(&4) && !seen[1].contains(&2), "{seen:?}");
            }
            Err(ShmError::Contended) => {}
            Err(e) => panic!("{e}"),
        }
        w.join().unwrap();
    });
}
