//! Replays the `shm_region` fuzz corpus (`fuzz/corpus/shm_region`) and any saved crash inputs
//! (`fuzz/artifacts/shm_region`) through the function the fuzz target runs,
//! `nlkit_shm::fuzzing::region_view`.
#![cfg(not(loom))] // the region is real memory: not modelled under loom

use std::fs;

use nlkit_shm::fuzzing::region_view;

use nlkit_testns::corpus::{files, fuzz_dir};

#[test]
fn corpus_replays_without_panic() {
    let corpus = files(&fuzz_dir("corpus/shm_region"));
    assert!(
        corpus.len() >= 4,
        "fuzz/corpus/shm_region is missing its seeds"
    );
    let mut mapped = 0;
    let mut found = 0;
    for (name, bytes) in &corpus {
        // A panic here names the file through the test output.
        eprintln!("replaying {name}");
        let r = region_view(bytes);
        mapped += r.mapped;
        found += r.found;
    }
    // The seeds include real region headers with published objects.
    assert!(mapped > corpus.len(), "{mapped} views mapped");
    assert!(found > 0);
}

#[test]
fn crash_artifacts_replay_without_panic() {
    for (name, bytes) in files(&fuzz_dir("artifacts/shm_region")) {
        eprintln!("replaying artifact {name}");
        region_view(&bytes);
    }
}

/// Writes the seeds (run with `--ignored` after a layout change, then commit them).
#[test]
#[ignore = "regenerates fuzz/corpus/shm_region; run by hand after a layout change"]
fn write_seeds() {
    use std::sync::atomic::Ordering;

    use nlkit_shm::{read_bytes, Memory, Region, HEADER_BYTES};

    let dir = fuzz_dir("corpus/shm_region");
    fs::create_dir_all(&dir).unwrap();
    let dump = |r: &Region, len: u64| {
        let mut b = Vec::new();
        read_bytes(r, 0, len as usize, &mut b).unwrap();
        b
    };
    let r = Region::create("seed").unwrap();
    fs::write(dir.join("empty-region.bin"), dump(&r, HEADER_BYTES)).unwrap();
    let a = r.alloc(64).unwrap();
    let b = r.alloc(128).unwrap();
    r.word(a).unwrap().store(0x1111, Ordering::Relaxed);
    r.publish(0x7001, a).unwrap();
    r.publish(0x7002, b).unwrap();
    r.publish(0x7001, b).unwrap();
    fs::write(dir.join("three-entries.bin"), dump(&r, b + 128)).unwrap();
    let mut lying = dump(&r, HEADER_BYTES);
    lying[48..56].copy_from_slice(&200u64.to_ne_bytes());
    fs::write(dir.join("lying-count.bin"), &lying).unwrap();
    let mut far = dump(&r, HEADER_BYTES);
    far[136..144].copy_from_slice(&(1u64 << 35).to_ne_bytes());
    far[32..40].copy_from_slice(&u64::MAX.to_ne_bytes());
    fs::write(dir.join("offset-beyond-file.bin"), &far).unwrap();
    fs::write(dir.join("short-header.bin"), dump(&r, 200)).unwrap();
    fs::write(dir.join("zeros.bin"), vec![0u8; 4096]).unwrap();
}
