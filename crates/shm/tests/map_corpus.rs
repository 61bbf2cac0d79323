//! Replays the `shm_map` fuzz corpus (`fuzz/corpus/shm_map`) and any saved crash inputs
//! (`fuzz/artifacts/shm_map`) through the function the fuzz target runs,
//! `nlkit_shm::map::fuzzing::map_reader`.
//!
//! The seeds are written by this file's `write_seeds` (`cargo test -p nlkit-shm --test
//! map_corpus -- --ignored write_seeds`, after a layout change); each input is read both as
//! memory and as a list of (word index, value) overwrites of a valid map.
#![cfg(not(loom))]

use std::fs;

use nlkit_shm::map::fuzzing::{map_reader, sample_map};

use nlkit_testns::corpus::{files, fuzz_dir};

fn overwrites(pairs: &[(u64, u64)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(i, v)| [i.to_ne_bytes(), v.to_ne_bytes()])
        .flatten()
        .collect()
}

/// The seeds: the sample map itself, and overwrites that make its header lie or its slots
/// loop, point outside, or claim huge records. Word indexes: header 0..16, three bucket
/// arrays of 2 words (16..22), then (aligned to a cache line) slots of 12 words from 24:
/// seq, links of directions 0 and 1, key 0 (2 words), location, key 1, aux, link of
/// direction 2, key 2, 24 bytes of inline area. Slots 0, 1 and 4 hold their records inline,
/// 3 and 5 in the heap; 2 is free.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let map: Vec<u8> = sample_map().iter().flat_map(|w| w.to_ne_bytes()).collect();
    let slot = |s: u64, w: u64| 24 + 12 * s + w;
    const INLINE: u64 = 1 << 42;
    vec![
        ("sample-map.bin", map),
        ("empty.bin", Vec::new()),
        ("bad-magic.bin", overwrites(&[(0, 0)])),
        (
            "lying-capacity.bin",
            overwrites(&[(2, (4 << 32) | 1_000_000)]),
        ),
        ("lying-buckets.bin", overwrites(&[(2, (3 << 32) | 8)])),
        ("lying-stride.bin", overwrites(&[(4, 8)])),
        // More inline words than the stride has room for.
        ("lying-inline.bin", overwrites(&[(1, 0x10_0301_0102)])),
        ("slots-overlap-header.bin", overwrites(&[(3, 0)])),
        ("huge-high-water.bin", overwrites(&[(9, u64::MAX)])),
        // Every link of slot 0 names slot 0: a cycle.
        (
            "link-cycle.bin",
            overwrites(&[(slot(0, 1), 2 | (2 << 32)), (slot(0, 7), 2 | (2 << 32))]),
        ),
        // Bucket heads name slots beyond the capacity.
        (
            "link-beyond.bin",
            overwrites(&[(16, u64::MAX - 1), (18, 1000)]),
        ),
        // A record of MAX_RECORD + 8 bytes, and one far outside the memory.
        (
            "record-too-long.bin",
            overwrites(&[(slot(0, 4), ((1 << 20) + 8) << 43)]),
        ),
        (
            "record-outside.bin",
            overwrites(&[(slot(1, 4), (64 << 43) | (1 << 30))]),
        ),
        // An inline record longer than the inline area, and an inline location with
        // offset bits.
        (
            "inline-too-long.bin",
            overwrites(&[(slot(0, 4), INLINE | (32 << 43))]),
        ),
        (
            "inline-with-offset.bin",
            overwrites(&[(slot(1, 4), INLINE | (8 << 43) | 5)]),
        ),
        (
            "all-odd.bin",
            overwrites(&(0..8).map(|s| (slot(s, 0), 1)).collect::<Vec<_>>()),
        ),
        (
            "random.bin",
            (0..512u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ]
}

/// Writes the seeds (run with `--ignored` after a layout change, then commit them).
#[test]
#[ignore = "regenerates fuzz/corpus/shm_map; run by hand after a layout change"]
fn write_seeds() {
    let dir = fuzz_dir("corpus/shm_map");
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn corpus_replays_without_panic() {
    let corpus = files(&fuzz_dir("corpus/shm_map"));
    assert!(
        corpus.len() >= 10,
        "fuzz/corpus/shm_map is missing its seeds"
    );
    let mut opened = 0;
    let mut errors = 0;
    for (name, bytes) in &corpus {
        // A panic here names the file through the test output.
        eprintln!("replaying {name}");
        let r = map_reader(bytes);
        opened += r.opened;
        errors += r.errors;
    }
    assert!(opened > corpus.len() / 2, "{opened} maps opened");
    assert!(errors > corpus.len(), "{errors} errors");
}

#[test]
fn seeds_replay_and_say_what_they_mean() {
    for (name, bytes) in seeds() {
        let r = map_reader(&bytes);
        match name {
            // Read as memory the sample opens; as overwrites it scatters its own words.
            "sample-map.bin" => assert!(r.opened >= 1, "{name}: {r:?}"),
            "empty.bin" => assert_eq!((r.opened, r.walked), (1, 5), "{name}"),
            "bad-magic.bin"
            | "lying-capacity.bin"
            | "lying-buckets.bin"
            | "lying-stride.bin"
            | "lying-inline.bin"
            | "slots-overlap-header.bin" => assert_eq!(r.opened, 0, "{name}: {r:?}"),
            "record-too-long.bin"
            | "record-outside.bin"
            | "inline-too-long.bin"
            | "inline-with-offset.bin"
            | "link-cycle.bin"
            | "link-beyond.bin" => {
                assert_eq!(r.opened, 1, "{name}");
                assert!(r.errors > 0, "{name}: {r:?}");
            }
            "all-odd.bin" => assert_eq!((r.opened, r.walked), (1, 0), "{name}"),
            _ => {}
        }
    }
}

#[test]
fn crash_artifacts_replay_without_panic() {
    for (name, bytes) in files(&fuzz_dir("artifacts/shm_map")) {
        eprintln!("replaying artifact {name}");
        map_reader(&bytes);
    }
}
