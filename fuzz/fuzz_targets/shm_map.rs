//! The nlkit-shm map reader over arbitrary memory, and over a valid map with arbitrary words
//! overwritten. The body is shared with the corpus-replay test
//! (`crates/shm/tests/map_corpus.rs`): both call `nlkit_shm::map::fuzzing::map_reader`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nlkit_shm::map::fuzzing::map_reader(data);
});
