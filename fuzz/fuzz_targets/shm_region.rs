//! The nlkit-shm region reader over arbitrary bytes put in a sealed memfd. The body is shared
//! with the corpus-replay test (`crates/shm/tests/region_corpus.rs`): both call
//! `nlkit_shm::fuzzing::region_view`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nlkit_shm::fuzzing::region_view(data);
});
