//! Every nlkit-wire parser over arbitrary bytes. The body is shared with the corpus-replay
//! test (`crates/wire/tests/corpus.rs`): both call `nlkit_wire::fuzzing::parse_all`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nlkit_wire::fuzzing::parse_all(data);
});
