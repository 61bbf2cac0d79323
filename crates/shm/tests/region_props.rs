//! Property tests: a reader handed a sealed memfd whose header lies in any way (random words,
//! random sizes, random directories) returns errors and never panics, and what it does accept
//! agrees with the bytes. The checks are `nlkit_shm::fuzzing::region_view`'s, the body of the
//! `shm_region` fuzz target.
#![cfg(not(loom))] // the region is real memory: not modelled under loom

use nlkit_shm::fuzzing::region_view;
use nlkit_shm::HEADER_BYTES;
use proptest::prelude::*;

/// Words that are often what a reader checks for, or edge cases, and otherwise anything.
fn header_word() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::from_be_bytes(*b"NLKITSHM")),
        Just(1u64),
        Just(HEADER_BYTES),
        Just(128u64),
        0u64..300,
        Just(u64::MAX),
        (0u64..(1 << 37)).prop_map(|w| w & !7),
        any::<u64>(),
    ]
}

fn region_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(header_word(), 0..(HEADER_BYTES as usize / 8 + 64)),
        0usize..8,
    )
        .prop_map(|(words, tail)| {
            let mut b: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            b.truncate(b.len().saturating_sub(tail));
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn lying_headers_give_errors_not_panics(bytes in region_bytes()) {
        let r = region_view(&bytes);
        // The second try always has a valid header; it maps if the file is long enough.
        prop_assert_eq!(r.mapped >= 1, bytes.len() as u64 >= HEADER_BYTES);
    }

    #[test]
    fn random_bytes_give_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..9000)) {
        region_view(&bytes);
    }
}

#[test]
fn a_real_header_maps_and_finds() {
    let r = nlkit_shm::Region::create("props-real").unwrap();
    let off = r.alloc(64).unwrap();
    r.publish(9, off).unwrap();
    let mut bytes = Vec::new();
    nlkit_shm::read_bytes(&r, 0, (off + 64) as usize, &mut bytes).unwrap();
    let report = region_view(&bytes);
    assert_eq!(report.mapped, 2);
    assert!(report.found >= 2, "{report:?}");
}
