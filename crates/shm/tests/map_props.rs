//! Property tests of the map: random operation sequences against a model, and readers handed
//! random or corrupted memory.
#![cfg(not(loom))]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nlkit_shm::map::fuzzing::{map_reader, sample_map};
use nlkit_shm::map::{HeapArena, MapOptions};
use nlkit_shm::{HeapMemory, InsertError, MapLayout, MapReader, SharedMap, ShmError, Slot};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert { key: u8, len: u16, aux: u8 },
    Replace { key: u8, len: u16, aux: u8 },
    SetAux { key: u8, aux: u8 },
    Remove { key: u8 },
    Retain { modulus: u8 },
}

/// A record length below `max`, half the time a short one (which an inline area may hold).
fn len(max: u16) -> impl Strategy<Value = u16> {
    prop_oneof![0u16..200, 0..max]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24, len(600), any::<u8>()).prop_map(|(key, len, aux)| Op::Insert { key, len, aux }),
        2 => (0u8..24, len(3000), any::<u8>()).prop_map(|(key, len, aux)| Op::Replace { key, len, aux }),
        1 => (0u8..24, any::<u8>()).prop_map(|(key, aux)| Op::SetAux { key, aux }),
        3 => (0u8..24).prop_map(|key| Op::Remove { key }),
        1 => (2u8..5).prop_map(|modulus| Op::Retain { modulus }),
    ]
}

/// An entry of the model: (aux, record); keys derive from the key number.
type Model = BTreeMap<u8, (u64, Vec<u8>)>;

fn keys(k: u8) -> ([u64; 2], [u64; 3], [u64; 1]) {
    let k = u64::from(k);
    ([k, !k], [k << 32, k, 7], [k % 3])
}

fn record(k: u8, len: u16, aux: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8) ^ k ^ aux).collect()
}

/// Checks every reader call against the model.
fn check(map: &SharedMap<HeapArena>, model: &Model) {
    let r = map.reader();
    let mut out = Vec::new();
    for k in 0..24u8 {
        let (a, b, _) = keys(k);
        for (dir, key) in [(0, &a[..]), (1, &b[..])] {
            out.clear();
            let got = r.get(dir, key, &mut out).unwrap();
            match model.get(&k) {
                Some((aux, rec)) => {
                    let e = got.unwrap_or_else(|| panic!("key {k} dir {dir} missing"));
                    assert_eq!((e.aux, &out), (*aux, rec), "key {k}");
                    assert_eq!(e.key(0, r.layout()), a);
                    assert_eq!(e.key(2, r.layout()), [u64::from(k % 3)]);
                }
                None => assert!(got.is_none(), "key {k} dir {dir} present"),
            }
        }
    }
    for idx in 0..3u64 {
        let mut seen = BTreeSet::new();
        r.get_all(2, &[idx], |e, rec| {
            let k = e.keys[0][0] as u8;
            assert_eq!(model.get(&k).map(|(_, r)| r.as_slice()), Some(rec));
            assert!(seen.insert(k), "duplicate without concurrent changes");
            true
        })
        .unwrap();
        let want: BTreeSet<u8> = model
            .keys()
            .copied()
            .filter(|k| u64::from(*k) % 3 == idx)
            .collect();
        assert_eq!(seen, want);
    }
    // All three index keys at once: each entry once, under its own key.
    let mut seen = BTreeSet::new();
    out.clear();
    r.get_all_many(2, &[[0u64], [1], [2]], &mut out, |i, e, rec| {
        let k = e.keys[0][0] as u8;
        assert_eq!(u64::from(k) % 3, i as u64, "key {k} under index key {i}");
        assert_eq!(
            model.get(&k).map(|(_, r)| r.as_slice()),
            Some(rec.as_slice())
        );
        assert!(seen.insert(k), "duplicate without concurrent changes");
        rec.clear();
        true
    })
    .unwrap();
    assert_eq!(seen, model.keys().copied().collect::<BTreeSet<u8>>());
    let mut walked = BTreeMap::new();
    let w = r
        .walk(|e, rec| {
            walked.insert(e.keys[0][0] as u8, (e.aux, rec.to_vec()));
            true
        })
        .unwrap();
    assert!(w.consistent);
    assert_eq!(&walked, model);
    assert_eq!(r.count().unwrap(), model.len() as u64);
    assert_eq!(map.len(), model.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn operations_match_a_model(
        ops in prop::collection::vec(op(), 1..120),
        // No inline area, or one that some records fit (replaces move records between
        // the heap and the slot both ways).
        inline in prop_oneof![Just(0u32), 1u32..200],
    ) {
        let mut l = MapLayout::new(16).key(2, true).key(3, true).key(1, false).inline(inline);
        l.buckets = 4; // long chains
        let map = SharedMap::create_in(
            Arc::new(HeapArena::new(1 << 16)),
            l,
            MapOptions { heap_chunk: 1024, seed: Some(1) },
        ).unwrap();
        let mut model = Model::new();
        let mut slots: BTreeMap<u8, Slot> = BTreeMap::new();
        for op in ops {
            let mut w = map.lock();
            match op {
                Op::Insert { key, len, aux } => {
                    let (a, b, c) = keys(key);
                    let rec = record(key, len, aux);
                    match w.insert(&[&a, &b, &c], u64::from(aux), &rec) {
                        Ok(s) => {
                            prop_assert!(!model.contains_key(&key));
                            model.insert(key, (u64::from(aux), rec));
                            slots.insert(key, s);
                        }
                        Err(InsertError::Exists { dir: 0, slot }) => {
                            prop_assert_eq!(Some(&slot), slots.get(&key));
                        }
                        Err(InsertError::Shm(ShmError::Full(_))) => {
                            prop_assert!(model.len() == 16 || !model.contains_key(&key));
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Replace { key, len, aux } => {
                    if let Some(s) = slots.get(&key) {
                        let rec = record(key, len, aux);
                        match w.replace(*s, u64::from(aux), &rec) {
                            Ok(()) => { model.insert(key, (u64::from(aux), rec)); }
                            Err(ShmError::Full(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                Op::SetAux { key, aux } => {
                    if let Some(s) = slots.get(&key) {
                        w.set_aux(*s, u64::from(aux));
                        model.get_mut(&key).unwrap().0 = u64::from(aux);
                        prop_assert_eq!(w.aux(*s), u64::from(aux));
                    }
                }
                Op::Remove { key } => {
                    if let Some(s) = slots.remove(&key) {
                        w.remove(s);
                        model.remove(&key);
                        prop_assert_eq!(w.find(0, &keys(key).0), None);
                    }
                }
                Op::Retain { modulus } => {
                    let m = u64::from(modulus);
                    let n = w.retain(|_, aux| aux % m != 0);
                    let before = model.len();
                    model.retain(|_, (aux, _)| *aux % m != 0);
                    slots.retain(|k, _| model.contains_key(k));
                    prop_assert_eq!(n, before - model.len());
                }
            }
            drop(w);
            check(&map, &model);
        }
        // The writer's own view agrees too.
        let w = map.lock();
        for (k, s) in &slots {
            let mut out = Vec::new();
            w.record(*s, &mut out);
            prop_assert_eq!(&out, &model[k].1);
            prop_assert_eq!(&w.key(*s, 1)[..3], &keys(*k).1[..]);
        }
    }

    #[test]
    fn random_words_never_panic(words in prop::collection::vec(any::<u64>(), 0..300)) {
        let mem = HeapMemory::from_words(&words);
        for off in [0u64, 8, 64] {
            if let Ok(r) = MapReader::open(&mem, off) {
                let _ = r.walk(|_, _| true);
            }
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        map_reader(&bytes);
    }

    #[test]
    fn a_valid_map_with_words_overwritten_never_panics(
        writes in prop::collection::vec((any::<u16>(), any::<u64>()), 1..12),
        small in any::<bool>(),
    ) {
        let mut words = sample_map();
        prop_assert!(!words.is_empty());
        let n = words.len();
        for (i, v) in &writes {
            // Half the time small values: plausible offsets, lengths and links.
            words[*i as usize % n] = if small { v % 64 } else { *v };
        }
        let bytes: Vec<u8> = writes
            .iter()
            .flat_map(|(i, v)| [u64::from(*i).to_ne_bytes(), (if small { v % 64 } else { *v }).to_ne_bytes()])
            .flatten()
            .collect();
        map_reader(&bytes);
        let mem = HeapMemory::from_words(&words);
        if let Ok(r) = MapReader::open(&mem, 0) {
            let w = r.walk(|_, _| true);
            if let Ok(w) = w {
                prop_assert!(w.visited <= u64::from(r.layout().capacity));
            }
        }
    }
}

proptest! {
    /// The sample map's location words and inline areas (slots 0, 1 and 4 hold inline
    /// records, 3 and 5 heap records) overwritten with random words and with plausible ones
    /// (the inline flag with any length, heap locations with small offsets): every reader
    /// call returns a value or an error; a record handed out is never longer than the
    /// inline area when the location says inline.
    #[test]
    fn corrupt_locations_and_inline_areas_never_panic(
        writes in prop::collection::vec((0u64..6, 4u64..12, any::<u64>(), 0u8..4), 1..8),
    ) {
        let mut words = sample_map();
        for (slot, word, v, how) in &writes {
            let at = (24 + 12 * slot + word) as usize;
            words[at] = match how {
                // Inline, any length (in bytes, small) and maybe offset bits.
                0 => (1 << 42) | ((v % 64) << 43) | (v >> 60),
                // Heap, a small offset and length.
                1 => ((v % 40) << 43) | (v % 512),
                2 => *v,
                _ => v % 64,
            };
        }
        let mem = HeapMemory::from_words(&words);
        let r = MapReader::open(&mem, 0).unwrap();
        let inline = r.layout().inline_bytes as usize;
        let mut out = Vec::new();
        for s in 0..8 {
            out.clear();
            let _ = r.read(Slot(s), &mut out);
            prop_assert!(out.len() <= nlkit_shm::map::MAX_RECORD);
        }
        let _ = r.walk(|e, rec| {
            let loc = words[24 + 12 * e.slot.0 as usize + 4];
            if loc & (1 << 42) != 0 {
                assert!(rec.len() <= inline, "inline record over the area");
            }
            true
        });
        let keys: Vec<Vec<u64>> = (0..8u64).map(|i| vec![i, i * 3 + 1]).collect();
        batch_matches_single(&mem, &[0, 1], &keys);
        let bytes: Vec<u8> = writes
            .iter()
            .flat_map(|(s, w, v, _)| [(24 + 12 * s + w).to_ne_bytes(), v.to_ne_bytes()])
            .flatten()
            .collect();
        map_reader(&bytes);
    }
}

/// `get_batch` must answer, key by key, what `get_first` answers (on memory nobody changes,
/// whatever it holds: the same entries, records and errors).
fn batch_matches_single(mem: &HeapMemory, dirs: &[usize], keys: &[Vec<u64>]) {
    let Ok(r) = MapReader::open(mem, 0) else {
        return;
    };
    let mut seen = 0;
    let mut buf = b"prefix".to_vec();
    r.get_batch(dirs, keys, &mut buf, |i, got, buf| {
        assert_eq!(i, seen);
        seen += 1;
        let mut out = b"prefix".to_vec();
        let want = r.get_first(dirs, &keys[i], &mut out);
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "key {i}");
        assert_eq!(*buf, out, "key {i}");
        buf.truncate(6);
    });
    assert_eq!(seen, keys.len());
}

/// Keys for the sample map: its own (two words in direction 0, one in 1 and 2), near misses and
/// random words of random lengths.
fn batch_keys() -> impl Strategy<Value = Vec<Vec<u64>>> {
    let key = prop_oneof![
        (0u64..8).prop_map(|i| vec![i, i * 3 + 1]),
        (0u64..8).prop_map(|i| vec![100 + i]),
        (0u64..8).prop_map(|i| vec![i % 2]),
        prop::collection::vec(any::<u64>(), 0..4),
    ];
    prop::collection::vec(key, 0..40)
}

fn batch_dirs() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..4, 0..4)
}

proptest! {
    #[test]
    fn get_batch_matches_get_on_random_words(
        words in prop::collection::vec(any::<u64>(), 0..300),
        keys in batch_keys(),
        dirs in batch_dirs(),
    ) {
        batch_matches_single(&HeapMemory::from_words(&words), &dirs, &keys);
    }

    #[test]
    fn get_batch_matches_get_on_a_corrupted_map(
        writes in prop::collection::vec((any::<u16>(), any::<u64>()), 0..12),
        small in any::<bool>(),
        keys in batch_keys(),
        dirs in batch_dirs(),
    ) {
        let mut words = sample_map();
        let n = words.len();
        for (i, v) in &writes {
            words[*i as usize % n] = if small { v % 64 } else { *v };
        }
        batch_matches_single(&HeapMemory::from_words(&words), &dirs, &keys);
    }
}

#[test]
fn the_untouched_sample_map_reads_back() {
    let words = sample_map();
    let mem = HeapMemory::from_words(&words);
    let r = MapReader::open(&mem, 0).unwrap();
    let mut n = 0;
    let w = r.walk(|_, _| {
        n += 1;
        true
    });
    assert_eq!(w.unwrap().visited, 5);
    let report = map_reader(&[]);
    assert_eq!((report.opened, report.walked), (1, 5));
    assert!(report.found >= 5 * 2);
}
