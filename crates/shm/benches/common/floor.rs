//! The floor a lookup in the region cannot beat: ns per dependent random load over an area of
//! the mapping. Shared by nlkit-shm's `map` bench and nlkit-view's `ct_get` bench (included
//! there by `#[path]`), so both print the same floor beside their lookups.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;

use nlkit_shm::{write_bytes, Memory, Region, RegionView};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// ns per dependent random load over `bytes` of the mapping (a random cycle through its
/// cache lines, written by the writer, chased through the view), best of `repeat` runs of
/// `loads` loads; `huge`: the area collapsed into huge pages first (`Region::collapse`).
pub fn chase(
    region: &Region,
    view: &RegionView,
    bytes: u64,
    loads: usize,
    repeat: usize,
    huge: bool,
) -> f64 {
    let lines = (bytes / 64) as usize;
    let off = region.alloc(bytes).expect("alloc");
    let mut order: Vec<u64> = (0..lines as u64).collect();
    order.shuffle(&mut StdRng::seed_from_u64(7));
    let mut raw = vec![0u8; lines * 64];
    for i in 0..lines {
        let at = order[i] as usize * 64;
        raw[at..at + 8].copy_from_slice(&order[(i + 1) % lines].to_ne_bytes());
    }
    write_bytes(region, off, &raw).expect("write");
    if huge {
        region.collapse(off, bytes);
    }
    let words = view.words(off, lines * 8).expect("words");
    let mut best = f64::MAX;
    for _ in 0..repeat {
        let t = Instant::now();
        let mut at = 0usize;
        for _ in 0..loads {
            at = words[at * 8].load(Ordering::Relaxed) as usize;
        }
        black_box(at);
        best = best.min(t.elapsed().as_nanos() as f64 / loads as f64);
    }
    best
}
