//! Unit tests of the map over a [`HeapArena`].

use std::sync::Arc;

use super::*;
use crate::map::layout::S_SEQ;
use crate::sync::Ordering;

fn map(layout: MapLayout, words: usize) -> SharedMap<HeapArena> {
    SharedMap::create_in(
        Arc::new(HeapArena::new(words)),
        layout,
        MapOptions {
            heap_chunk: 256,
            seed: Some(42),
        },
    )
    .unwrap()
}

fn get(m: &SharedMap<HeapArena>, dir: usize, key: &[u64]) -> Option<(Entry, Vec<u8>)> {
    let mut out = Vec::new();
    m.reader()
        .get(dir, key, &mut out)
        .unwrap()
        .map(|e| (e, out))
}

#[test]
fn insert_get_replace_remove() {
    let m = map(MapLayout::new(16).key(2, true), 4096);
    let a = m.lock().insert(&[&[1, 2]], 5, b"one-two").unwrap();
    let b = m.lock().insert(&[&[3, 4]], 6, b"").unwrap();
    assert_ne!(a, b);
    assert_eq!(m.len(), 2);
    let (e, rec) = get(&m, 0, &[1, 2]).unwrap();
    assert_eq!((e.slot, e.aux, rec.as_slice()), (a, 5, &b"one-two"[..]));
    assert_eq!(e.key(0, m.layout()), &[1, 2]);
    let (e2, rec) = get(&m, 0, &[3, 4]).unwrap();
    assert_eq!((e2.aux, rec.len()), (6, 0));
    assert!(get(&m, 0, &[1, 3]).is_none());

    assert!(matches!(
        m.lock().insert(&[&[1, 2]], 0, b"x"),
        Err(InsertError::Exists { dir: 0, slot }) if slot == a
    ));
    m.lock()
        .replace(a, 9, b"a much longer record than before")
        .unwrap();
    let (e3, rec) = get(&m, 0, &[1, 2]).unwrap();
    assert_eq!(rec, b"a much longer record than before");
    assert_eq!(e3.aux, 9);
    assert!(e3.generation > e.generation);
    m.lock().set_aux(a, 10);
    assert_eq!(m.lock().aux(a), 10);
    let mut out = Vec::new();
    m.lock().record(a, &mut out);
    assert_eq!(out, b"a much longer record than before");
    assert_eq!(m.lock().key(a, 0)[..2], [1, 2]);
    assert_eq!(m.lock().find(0, &[1, 2]), Some(a));

    m.lock().remove(a);
    assert!(get(&m, 0, &[1, 2]).is_none());
    assert_eq!(m.lock().find(0, &[1, 2]), None);
    assert_eq!(m.len(), 1);
    assert!(m.reader().read(a, &mut Vec::new()).unwrap().is_none());
    // The slot is reused, with a new generation.
    let c = m.lock().insert(&[&[7, 7]], 0, b"seven").unwrap();
    assert_eq!(c, a);
    let (e4, _) = get(&m, 0, &[7, 7]).unwrap();
    assert!(e4.generation > e3.generation);
    assert_eq!(m.reader().count().unwrap(), 2);
    assert_eq!(m.reader().changes().unwrap() % 2, 0);
}

#[test]
fn full_and_too_large() {
    let m = map(MapLayout::new(2).key(1, true), 4096);
    m.lock().insert(&[&[1]], 0, b"a").unwrap();
    m.lock().insert(&[&[2]], 0, b"b").unwrap();
    assert!(matches!(
        m.lock().insert(&[&[3]], 0, b"c"),
        Err(InsertError::Shm(ShmError::Full(_)))
    ));
    let s = m.lock().find(0, &[1]).unwrap();
    assert!(matches!(
        m.lock().replace(s, 0, &vec![0; MAX_RECORD + 1]),
        Err(ShmError::TooLarge(_))
    ));
    // The heap runs out: an error, nothing changed.
    assert!(matches!(
        m.lock().replace(s, 0, &vec![1; 100_000]),
        Err(ShmError::Full(_))
    ));
    assert_eq!(get(&m, 0, &[1]).unwrap().1, b"a");
    assert!(m
        .lock()
        .insert(&[&[1, 2]], 0, b"")
        .is_err_and(|e| matches!(e, InsertError::Shm(ShmError::Corrupt(_)))));
}

#[test]
fn three_directions_and_index() {
    let l = MapLayout::new(64).key(2, true).key(2, true).key(1, false);
    let m = map(l, 1 << 14);
    let mut slots = Vec::new();
    for i in 0..40u64 {
        let s = m
            .lock()
            .insert(&[&[i, 0], &[0, i], &[i % 3]], i, &i.to_ne_bytes())
            .unwrap();
        slots.push(s);
    }
    for i in 0..40u64 {
        let (e, rec) = get(&m, 1, &[0, i]).unwrap();
        assert_eq!(e.dir, 1);
        assert_eq!(e.key(0, m.layout()), &[i, 0]);
        assert_eq!(rec, i.to_ne_bytes());
    }
    let idx = |k: u64| {
        let mut v = Vec::new();
        m.reader()
            .get_all(2, &[k], |e, r| {
                v.push((e.aux, u64::from_ne_bytes(r.try_into().unwrap())));
                true
            })
            .unwrap();
        v.sort();
        v
    };
    assert_eq!(idx(1).len(), 13);
    assert!(idx(1).iter().all(|(a, r)| a % 3 == 1 && a == r));
    // Remove from the middle, head and tail of index chains.
    for i in [0u64, 3, 39, 21, 1] {
        m.lock().remove(slots[i as usize]);
    }
    assert_eq!(idx(0).len(), 14 - 4);
    assert_eq!(idx(1).len(), 13 - 1);
    assert!(get(&m, 0, &[3, 0]).is_none());
    assert!(get(&m, 1, &[0, 4]).is_some());
    // Stop early.
    let mut n = 0;
    m.reader()
        .get_all(2, &[2], |_, _| {
            n += 1;
            n < 2
        })
        .unwrap();
    assert_eq!(n, 2);
    let removed = m.lock().retain(|_, aux| aux % 2 == 0);
    assert_eq!(removed, 16);
    let mut seen = 0;
    let w = m
        .reader()
        .walk(|e, _| {
            assert_eq!(e.aux % 2, 0);
            seen += 1;
            true
        })
        .unwrap();
    assert!(w.consistent);
    assert_eq!((w.visited, seen, m.len()), (19, 19, 19));
}

#[test]
fn chains_with_one_bucket() {
    let mut l = MapLayout::new(32).key(1, true);
    l.buckets = 1;
    let m = map(l, 1 << 12);
    for i in 0..32u64 {
        m.lock().insert(&[&[i]], i, b"r").unwrap();
    }
    for i in (0..32u64).step_by(3) {
        let s = m.lock().find(0, &[i]).unwrap();
        m.lock().remove(s);
    }
    for i in 0..32u64 {
        assert_eq!(get(&m, 0, &[i]).is_some(), i % 3 != 0, "{i}");
    }
}

#[test]
fn open_validates_header() {
    let m = map(MapLayout::new(8).key(3, true), 1024);
    let a = m.arena();
    assert!(MapReader::open(&**a, m.offset()).is_ok());
    let lay = *MapReader::open(&**a, m.offset()).unwrap().layout();
    assert_eq!(lay, *m.layout());
    // Lie about each header field in turn.
    for i in 0..layout::H_SEED {
        let w = a.word(m.offset() + i as u64 * 8).unwrap();
        let old = w.load(Ordering::Relaxed);
        for bad in [old ^ 1, old ^ (1 << 40), 0, u64::MAX] {
            if bad == old {
                continue;
            }
            w.store(bad, Ordering::Relaxed);
            assert!(
                MapReader::open(&**a, m.offset()).is_err(),
                "word {i} = {bad:#x}"
            );
        }
        w.store(old, Ordering::Relaxed);
    }
    assert!(MapReader::open(&**a, m.offset() + 8).is_err());
    assert!(MapReader::open(&**a, 1 << 40).is_err());
}

#[test]
fn len_and_memory_while_a_writer_is_alive() {
    let m = map(MapLayout::new(4).key(1, true), 1024);
    let mut w = m.lock();
    w.insert(&[&[1]], 0, b"x").unwrap();
    // No deadlock: these take no lock.
    assert_eq!((m.len(), w.len()), (1, 1));
    assert!(m.memory_bytes() > 0);
}

#[test]
fn memory_accounting() {
    let m = map(MapLayout::new(100).key(3, true), 1 << 14);
    let empty = m.memory_bytes();
    m.lock().insert(&[&[1, 2, 3]], 0, &[0; 70]).unwrap();
    // A 56-byte slot and a 72-byte block (more than a quarter of the 256-byte chunk: a
    // chunk of its own).
    assert_eq!(m.memory_bytes(), empty + 56 + 72);
    // With 72 bytes inline: a 128-byte slot and no block.
    let m = map(MapLayout::new(100).key(3, true).inline(72), 1 << 14);
    let empty = m.memory_bytes();
    m.lock().insert(&[&[1, 2, 3]], 0, &[0; 70]).unwrap();
    assert_eq!(m.memory_bytes(), empty + 128);
}

/// `get_batch` against `get_first`, key by key: present and absent keys, both directions,
/// chains of several entries (few buckets), a slot in the middle of a change.
#[test]
fn get_batch_equals_get() {
    let mut l = MapLayout::new(128).key(2, true).key(1, true);
    l.buckets = 8;
    let m = map(l, 1 << 14);
    for i in 0..100u64 {
        let rec = vec![i as u8; (i % 37) as usize];
        m.lock().insert(&[&[i, !i], &[1000 + i]], i, &rec).unwrap();
    }
    for i in (0..100u64).step_by(7) {
        let s = m.lock().find(0, &[i, !i]).unwrap();
        m.lock().remove(s);
    }
    // Entry 50's slot in the middle of a change: both lookups report it contended.
    let changing = m.lock().find(0, &[50, !50]).unwrap();
    let r = m.reader();
    let seq = &r.slot(changing.0)[S_SEQ];
    let even = seq.load(Ordering::Relaxed);
    seq.store(even | 1, Ordering::Relaxed);
    let keys: Vec<Vec<u64>> = (0..130u64)
        .flat_map(|i| [vec![i, !i], vec![1000 + i], vec![i]])
        .collect();
    for dirs in [&[0, 1][..], &[0], &[1], &[1, 0], &[]] {
        let mut n = 0;
        let mut buf = Vec::new();
        r.get_batch(dirs, &keys, &mut buf, |i, got, buf| {
            assert_eq!(i, n);
            n += 1;
            let mut out = Vec::new();
            let want = r.get_first(dirs, &keys[i], &mut out);
            match (&got, &want) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "key {:?} dirs {dirs:?}", keys[i]),
                (Err(ShmError::Contended), Err(ShmError::Contended)) => {}
                (Err(ShmError::Corrupt(_)), Err(ShmError::Corrupt(_))) => {}
                _ => panic!("key {:?}: {got:?} vs {want:?}", keys[i]),
            }
            assert_eq!(*buf, out);
            buf.clear();
        });
        assert_eq!(n, keys.len());
    }
    let mut contended = 0;
    let mut found = 0;
    r.get_batch(&[0], &keys, &mut Vec::new(), |_, got, buf| {
        match got {
            Err(ShmError::Contended) => contended += 1,
            Ok(Some(_)) => found += 1,
            _ => {}
        }
        buf.clear();
    });
    // Key [50, !50]; 100 - 15 removed - 1 changing entries found (the one-word keys do not
    // fit direction 0: `Corrupt`, as for `get`).
    assert_eq!((contended, found), (1, 84));
    seq.store(even, Ordering::Relaxed);
}

/// `get_batch` while the writer keeps replacing, removing and reinserting the entries: every
/// record handed out is one the writer stored under that key (never torn or another key's).
#[test]
fn get_batch_while_slots_change() {
    let m = Arc::new(map(MapLayout::new(64).key(1, true).key(1, true), 1 << 15));
    let rec = |k: u64, v: u64| -> Vec<u8> {
        let mut r = Vec::new();
        for _ in 0..1 + (v % 5) {
            r.extend_from_slice(&((k * 1_000_003) ^ v).to_le_bytes());
        }
        r
    };
    for k in 0..32u64 {
        m.lock().insert(&[&[k], &[k + 100]], 0, &rec(k, 0)).unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut v = 1u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = v % 32;
                let mut w = m.lock();
                if let Some(s) = w.find(0, &[k]) {
                    if v % 3 == 0 {
                        w.remove(s);
                        w.insert(&[&[k], &[k + 100]], 0, &rec(k, v)).unwrap();
                    } else {
                        w.replace(s, v, &rec(k, v)).unwrap();
                    }
                }
                v += 1;
            }
        })
    };
    let keys: Vec<[u64; 1]> = (0..40u64).flat_map(|k| [[k], [k + 100]]).collect();
    let mut found = 0;
    for _ in 0..300 {
        m.reader()
            .get_batch(&[0, 1], &keys, &mut Vec::new(), |i, got, buf| {
                let k = keys[i][0] % 100;
                match got {
                    Ok(Some(e)) => {
                        assert!(k < 32);
                        assert_eq!((e.keys[0][0], e.keys[1][0]), (k, k + 100));
                        let word = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        let v = word ^ (k * 1_000_003);
                        assert_eq!(*buf, rec(k, v), "key {k}");
                        found += 1;
                    }
                    // A key being removed and reinserted may be missed, or contended.
                    Ok(None) | Err(ShmError::Contended) => {}
                    Err(e) => panic!("{e}"),
                }
                buf.clear();
            });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(found > 0);
}

#[test]
fn walk_counts_a_slot_left_mid_change() {
    let m = map(MapLayout::new(8).key(1, true), 4096);
    let slots: Vec<Slot> = (1..=3)
        .map(|k| m.lock().insert(&[&[k]], k, b"rec").unwrap())
        .collect();
    let mut w = m.lock();
    // As a writer descheduled inside a generation-only change of the middle entry.
    let (walk, seen) = w.with_slot_mid_change(slots[1], || {
        let mut seen = Vec::new();
        let walk = m
            .reader()
            .walk(|e, _| {
                seen.push(e.keys[0][0]);
                true
            })
            .unwrap();
        (walk, seen)
    });
    assert_eq!(seen, [1, 3]);
    assert_eq!((walk.visited, walk.skipped), (2, 1));
    assert!(
        !walk.consistent,
        "a walk that skipped an entry is not a snapshot"
    );
    // The change completed: nothing is skipped, and generation-only changes were counted.
    let c = m.reader().changes().unwrap();
    w.set_aux(slots[0], 9);
    assert_eq!(m.reader().changes().unwrap(), c + 2);
    drop(w);
    let walk = m.reader().walk(|_, _| true).unwrap();
    assert_eq!((walk.visited, walk.skipped, walk.consistent), (3, 0, true));
}

#[test]
fn walk_waits_for_a_short_change_or_counts_it() {
    let m = Arc::new(map(MapLayout::new(8).key(1, true), 4096));
    let slots: Vec<Slot> = (1..=3)
        .map(|k| m.lock().insert(&[&[k]], k, b"rec").unwrap())
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let writer = {
        let m = m.clone();
        std::thread::spawn(move || {
            m.lock().with_slot_mid_change(slots[2], || {
                tx.send(()).unwrap();
                // The change lasts until the walk has begun (it then started mid-change
                // however loaded the machine is), and a little longer.
                let _ = started_rx.recv_timeout(std::time::Duration::from_secs(10));
                std::thread::sleep(std::time::Duration::from_millis(2));
            })
        })
    };
    rx.recv().unwrap();
    let walk = m
        .reader()
        .walk(|_, _| {
            let _ = started_tx.send(());
            true
        })
        .unwrap();
    writer.join().unwrap();
    // Normally the walk waited the change out (visited 3); on a machine too loaded for the
    // writer to finish within the walk's wait it counted the slot. Never neither.
    assert_eq!(walk.visited + walk.skipped, 3, "{walk:?}");
    assert!(!walk.consistent);
}

/// The record of the entry under `(k0, k1)` through every reader path and the writer:
/// `get` in both directions, `get_first`, `get_batch`, `get_all`, `read`, `walk`,
/// `MapWriter::record`; each must give `want`.
fn check_every_path(m: &SharedMap<HeapArena>, slot: Slot, k0: u64, k1: u64, want: &[u8]) {
    let r = m.reader();
    let mut out = Vec::new();
    for (dir, k) in [(0, k0), (1, k1)] {
        out.clear();
        let e = r.get(dir, &[k], &mut out).unwrap().unwrap();
        assert_eq!((e.slot, out.as_slice()), (slot, want), "get dir {dir}");
        out.clear();
        r.get_first(&[0, 1], &[k], &mut out).unwrap().unwrap();
        assert_eq!(out, want, "get_first {dir}");
        let mut n = 0;
        out.clear();
        r.get_batch(&[0, 1], &[[k], [k0 ^ 0xdead]], &mut out, |i, got, buf| {
            if i == 0 {
                assert_eq!(got.unwrap().unwrap().slot, slot);
                assert_eq!(buf.as_slice(), want, "get_batch {dir}");
            } else {
                assert!(got.unwrap().is_none());
            }
            n += 1;
            buf.clear();
        });
        assert_eq!(n, 2);
        let mut all = Vec::new();
        r.get_all(dir, &[k], |_, rec| {
            all.push(rec.to_vec());
            true
        })
        .unwrap();
        assert_eq!(all, [want], "get_all {dir}");
    }
    out.clear();
    r.read(slot, &mut out).unwrap().unwrap();
    assert_eq!(out, want, "read");
    let mut walked = Vec::new();
    r.walk(|e, rec| {
        if e.slot == slot {
            walked.push(rec.to_vec());
        }
        true
    })
    .unwrap();
    assert_eq!(walked, [want], "walk");
    out.clear();
    m.lock().record(slot, &mut out);
    assert_eq!(out, want, "writer's record");
}

/// Replaces move a record from the slot to the heap and back; every path reads each
/// version; the heap blocks given up are reused (the heap stops growing).
#[test]
fn records_move_between_the_slot_and_the_heap() {
    let m = map(
        MapLayout::new(8).key(1, true).key(1, true).inline(16),
        1 << 14,
    );
    assert_eq!((m.layout().inline_bytes, m.layout().slot_bytes()), (16, 64));
    let other = m.lock().insert(&[&[100], &[200]], 0, &[9; 50]).unwrap();
    let s = m.lock().insert(&[&[1], &[2]], 1, b"short").unwrap();
    check_every_path(&m, s, 1, 2, b"short");
    let versions: [&[u8]; 7] = [
        &[7; 100], &[1; 16], &[2; 17], b"", &[3; 100], &[4; 8], &[5; 99],
    ];
    let mut heap_steady = 0;
    for round in 0..4 {
        for (i, v) in versions.iter().enumerate() {
            let g1 = m
                .reader()
                .read(s, &mut Vec::new())
                .unwrap()
                .unwrap()
                .generation;
            m.lock().replace(s, i as u64, v).unwrap();
            let e = m.reader().read(s, &mut Vec::new()).unwrap().unwrap();
            assert!(e.generation > g1 && e.aux == i as u64);
            check_every_path(&m, s, 1, 2, v);
            check_every_path(&m, other, 100, 200, &[9; 50]);
        }
        // (Round 0 ends holding one 104-byte block; round 1's first replace needs a second,
        // since a new block is written before the old one is given up.)
        if round == 1 {
            heap_steady = m.memory_bytes();
        } else if round > 1 {
            assert_eq!(m.memory_bytes(), heap_steady, "heap blocks reused");
        }
    }
    // Reuse of the slot: an inline entry removed, a heap entry in its place, and back.
    m.lock().replace(s, 0, b"in-slot").unwrap();
    m.lock().remove(s);
    let t = m.lock().insert(&[&[3], &[4]], 0, &[6; 60]).unwrap();
    assert_eq!(t, s);
    check_every_path(&m, t, 3, 4, &[6; 60]);
    assert!(get(&m, 0, &[1]).is_none());
    m.lock().remove(t);
    let u = m.lock().insert(&[&[5], &[6]], 0, b"in").unwrap();
    assert_eq!(u, s);
    check_every_path(&m, u, 5, 6, b"in");
    assert_eq!(m.memory_bytes(), heap_steady);
}

/// A reader refuses a stable slot whose location word is corrupt in an inline way: a length
/// over the inline area, or offset bits with the inline flag.
#[test]
fn corrupt_inline_locations_are_errors() {
    let m = map(MapLayout::new(8).key(1, true).inline(16), 1 << 12);
    let s = m.lock().insert(&[&[1]], 0, b"abc").unwrap();
    let r = m.reader();
    let loc = &r.slot(s.0)[r.geometry().loc_at];
    let good = loc.load(Ordering::Relaxed);
    assert_eq!(good, layout::encode_inline(3));
    for bad in [layout::encode_inline(24), layout::encode_inline(8) | 8] {
        loc.store(bad, Ordering::Relaxed);
        assert!(matches!(
            r.get(0, &[1], &mut Vec::new()),
            Err(ShmError::Corrupt(_))
        ));
        assert!(r.read(s, &mut Vec::new()).is_err());
        assert!(r.walk(|_, _| true).is_err());
    }
    // The full area is fine.
    loc.store(layout::encode_inline(16), Ordering::Relaxed);
    let mut out = Vec::new();
    r.get(0, &[1], &mut out).unwrap().unwrap();
    assert_eq!(&out[..3], b"abc");
    assert_eq!(out.len(), 16);
}

/// The slot array is aligned to the stride's power-of-two part (at least a line), so a 128-
/// or 256-byte slot never straddles a page.
#[test]
fn slot_array_is_aligned() {
    let ct = MapLayout::new(10).key(5, true).key(5, true).key(3, false);
    for (l, stride, align) in [
        (MapLayout::new(10).key(3, true).inline(72), 128, 128u64),
        (ct.fill_slot(256), 256, 256),
        (ct.fill_slot(216), 216, 64),
        (MapLayout::new(10).key(1, true), 40, 64),
    ] {
        let m = map(l, 1 << 12);
        let g = m.reader().geometry().clone();
        assert_eq!(g.stride_words * 8, stride, "{l:?}");
        assert_eq!(g.slots % align, 0, "{l:?}");
    }
}
