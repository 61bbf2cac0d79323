//! The map's own costs at a million entries, read through a `RegionView` (a client's
//! mapping), without the view crate or a kernel: ns per lookup and per walked entry.
//!
//! - the floor: one dependent random load over an area as large as the conntrack-shaped
//!   map's slot array, and as large as one bucket array (4 KiB pages: each a TLB and cache
//!   miss), one in each in turn (a lookup's two misses); in huge pages
//!   (`Region::collapse`, as the maps: the mirror collapses its tables), or in 4 KiB pages
//!   with `NLKIT_MAP_SMALL_PAGES=1`;
//! - a conntrack-shaped map (keys of 5, 5 and 3 words, the last an index; 72-byte records):
//!   `get`, `get_first` in both directions with an original and with a reply key;
//! - a route-shaped map (one 3-word key, 64-byte records, as an IPv4 route): `get`, and a
//!   warm walk of every entry (ns per entry), handing the record to a callback that reads its
//!   first and last byte;
//! - the same walk over the conntrack-shaped map.
//!
//! ```text
//! cargo bench -p nlkit-shm --bench map
//! NLKIT_MAP_ENTRIES=200000 NLKIT_MAP_REPEAT=5 cargo bench -p nlkit-shm --bench map
//! # the maps and the floor in 4 KiB pages
//! NLKIT_MAP_SMALL_PAGES=1 cargo bench -p nlkit-shm --bench map
//! # only the walks (under `perf record`):
//! NLKIT_MAP_ONLY=walk cargo bench -p nlkit-shm --bench map
//! # other slot sizes (the inline area fills the slot; 0: none, every record in the heap)
//! NLKIT_MAP_CT_SLOT=192 NLKIT_MAP_ROUTE_SLOT=64 cargo bench -p nlkit-shm --bench map
//! ```
//!
//! The layouts are the view's (`nlkit_view::schema::map_layout`: conntrack slots of 216 bytes,
//! routes of 128), repeated here since nlkit-shm cannot depend on the view. Nothing is
//! asserted: a benchmark, not a test.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nlkit_shm::{MapLayout, MapReader, Memory, Region, RegionView, SharedMap};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[path = "common/floor.rs"]
mod floor;
use floor::chase;
use nlkit_testns::size_from_env as env;

/// Best of `repeat` runs of `f` over `n` items: ns per item.
fn best(repeat: usize, n: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..repeat {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

/// ns per pair of dependent random loads, one in an area of `a` bytes then one in an area of
/// `b` bytes (a bucket head, then a slot): the floor of a lookup that takes both misses.
fn chase_pair(
    region: &Region,
    view: &RegionView,
    a: u64,
    b: u64,
    pairs: usize,
    repeat: usize,
    huge: bool,
) -> f64 {
    let (oa, ob) = (
        region.alloc(a).expect("alloc"),
        region.alloc(b).expect("alloc"),
    );
    let (la, lb) = ((a / 64) as usize, (b / 64) as usize);
    // Written through the writer's mapping, chased through the client's.
    let start = fill_pair(
        region.words(oa, la * 8).expect("words"),
        region.words(ob, lb * 8).expect("words"),
    );
    if huge {
        region.collapse(oa, a);
        region.collapse(ob, b);
    }
    let wa = view.words(oa, la * 8).expect("words");
    let wb = view.words(ob, lb * 8).expect("words");
    chase_loop(wa, wb, start, pairs, repeat)
}

/// Writes one random cycle through two areas of words: line `order[i]` of `wa` names line
/// `bl[i]` of `wb`, which names line `order[i + 1]` of `wa` (all distinct: a random mapping
/// would fall into a short cycle). Returns the first line.
fn fill_pair(wa: &[AtomicU64], wb: &[AtomicU64]) -> usize {
    let (la, lb) = (wa.len() / 8, wb.len() / 8);
    let mut rng = StdRng::seed_from_u64(9);
    let mut order: Vec<usize> = (0..la).collect();
    order.shuffle(&mut rng);
    let mut bl: Vec<usize> = (0..lb).collect();
    bl.shuffle(&mut rng);
    for i in 0..la.min(lb) {
        let (x, y, z) = (order[i], bl[i], order[(i + 1) % la.min(lb)]);
        wa[x * 8].store(y as u64, Ordering::Relaxed);
        wb[y * 8].store(z as u64, Ordering::Relaxed);
    }
    order[0]
}

/// Best of `repeat` chases of `pairs` load pairs through a cycle [`fill_pair`] wrote.
fn chase_loop(
    wa: &[AtomicU64],
    wb: &[AtomicU64],
    start: usize,
    pairs: usize,
    repeat: usize,
) -> f64 {
    best(repeat, pairs, || {
        let mut at = start;
        for _ in 0..pairs {
            let s = wa[at * 8].load(Ordering::Relaxed) as usize;
            at = wb[s * 8].load(Ordering::Relaxed) as usize;
        }
        at
    })
}

/// A record of `len` bytes made from `seed`.
fn record(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as u8).wrapping_add(i as u8))
        .collect()
}

/// A warm walk: ns per entry (the callback reads the record's first and last byte).
fn walk(r: &MapReader<'_, RegionView>, n: usize, repeat: usize) -> f64 {
    best(repeat, n, || {
        let mut sum = 0usize;
        let w = r
            .walk(|e, rec| {
                sum += e.aux as usize + usize::from(rec[0]) + usize::from(rec[rec.len() - 1]);
                true
            })
            .expect("walk");
        assert_eq!(w.visited as usize, n);
        sum
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of tests: there are none
    }
    let n = env("NLKIT_MAP_ENTRIES", 1_000_000);
    let lookups = env("NLKIT_MAP_LOOKUPS", 200_000);
    let repeat = env("NLKIT_MAP_REPEAT", 3);
    let only = std::env::var("NLKIT_MAP_ONLY").unwrap_or_default();
    let mut rng = StdRng::seed_from_u64(0x006d_6170);
    let cap = (n as u32 * 5 / 4).max(1024);
    let region = Arc::new(Region::create("map-bench").expect("region"));

    // Conntrack-shaped: original, reply (the original's words reversed) and an index key.
    let ct_layout = MapLayout::new(cap)
        .key(5, true)
        .key(5, true)
        .key(3, false)
        .fill_slot(env("NLKIT_MAP_CT_SLOT", 216) as u32);
    let ct = SharedMap::create(region.clone(), ct_layout).expect("ct map");
    let ct_keys: Vec<[u64; 5]> = (0..n).map(|_| rng.random()).collect();
    let reply = |k: &[u64; 5]| [k[4], k[3], k[2], k[1], k[0] ^ 1];
    {
        let mut w = ct.lock();
        for (i, k) in ct_keys.iter().enumerate() {
            let idx = [k[0] % 4096, 0, 4];
            w.insert(&[k, &reply(k), &idx], i as u64, &record(i as u64, 72))
                .expect("insert");
        }
    }
    // Route-shaped.
    let rt_layout = MapLayout::new(cap)
        .key(3, true)
        .fill_slot(env("NLKIT_MAP_ROUTE_SLOT", 128) as u32);
    let rt = SharedMap::create(region.clone(), rt_layout).expect("route map");
    let rt_keys: Vec<[u64; 3]> = (0..n).map(|i| [254, i as u64, 24]).collect();
    {
        let mut w = rt.lock();
        for (i, k) in rt_keys.iter().enumerate() {
            w.insert(&[k], i as u64, &record(i as u64, 64))
                .expect("insert");
        }
    }
    // As the mirror does: the maps' memory in use in huge pages (NLKIT_MAP_SMALL_PAGES=1: left
    // in 4 KiB pages, for comparison).
    let small = std::env::var_os("NLKIT_MAP_SMALL_PAGES").is_some();
    let pages = if small {
        "4 KiB pages".to_string()
    } else {
        let t = Instant::now();
        let mut c = ct.collapse();
        c.add(rt.collapse());
        format!(
            "huge pages ({} MiB collapsed in {:.2?}, {} failed)",
            c.bytes >> 20,
            t.elapsed(),
            c.failed
        )
    };
    let view = RegionView::map(region.fd().try_clone_to_owned().expect("fd")).expect("view");
    let ctr = MapReader::open(&view, ct.offset()).expect("ct reader");
    let rtr = MapReader::open(&view, rt.offset()).expect("route reader");
    println!(
        "map micro bench, {pages}: {n} entries per map, {lookups} random lookups, best of {repeat}; \
         slots: conntrack {} bytes ({} inline), route {} bytes ({} inline)",
        ctr.layout().slot_bytes(),
        ctr.layout().inline_bytes,
        rtr.layout().slot_bytes(),
        rtr.layout().inline_bytes
    );
    if only.is_empty() || only == "walk" {
        let (rw, cw) = (walk(&rtr, n, repeat), walk(&ctr, n, repeat));
        println!("  walk, ns per entry: route-shaped {rw:.1}, conntrack-shaped {cw:.1}");
    }
    if only.is_empty() || only == "get" {
        let slot_bytes = u64::from(cap) * ctr.layout().slot_bytes() as u64;
        let bucket_bytes = u64::from(cap.next_power_of_two()) * 4;
        let fs = chase(&region, &view, slot_bytes, lookups, repeat, !small);
        let fb = chase(&region, &view, bucket_bytes, lookups, repeat, !small);
        let fp = chase_pair(
            &region,
            &view,
            bucket_bytes,
            slot_bytes,
            lookups,
            repeat,
            !small,
        );
        println!(
            "  floor, dependent random load: {fs:.1} in {} MiB (ct slot array), {fb:.1} in {} MiB (a bucket array), {fp:.1} for one in each in turn",
            slot_bytes >> 20,
            bucket_bytes >> 20
        );
        // The keys in lookup order (read sequentially: only the map's misses are timed).
        let pick: Vec<usize> = (0..lookups).map(|_| rng.random_range(0..n)).collect();
        let ct_orig: Vec<[u64; 5]> = pick.iter().map(|&i| ct_keys[i]).collect();
        let ct_reply: Vec<[u64; 5]> = ct_orig.iter().map(reply).collect();
        let rt_pick: Vec<[u64; 3]> = pick.iter().map(|&i| rt_keys[i]).collect();
        let mut out = Vec::with_capacity(512);
        let mut run = |f: &mut dyn FnMut(usize, &mut Vec<u8>) -> bool| {
            best(repeat, lookups, || {
                let mut found = 0;
                for i in 0..lookups {
                    out.clear();
                    found += usize::from(f(i, &mut out));
                    // Read the record's bytes, as a caller does.
                    found += usize::from(out.last().copied().unwrap_or(0) == 1);
                }
                found
            })
        };
        let get = run(&mut |i, out| ctr.get(0, &ct_orig[i], out).unwrap().is_some());
        let first = run(&mut |i, out| ctr.get_first(&[0, 1], &ct_orig[i], out).unwrap().is_some());
        let first_reply =
            run(&mut |i, out| ctr.get_first(&[0, 1], &ct_reply[i], out).unwrap().is_some());
        let rget = run(&mut |i, out| rtr.get(0, &rt_pick[i], out).unwrap().is_some());
        println!(
            "  conntrack-shaped, ns per lookup: get {get:.1}, get_first original {first:.1}, reply {first_reply:.1}"
        );
        println!("  route-shaped, ns per lookup: get {rget:.1}");
    }
}
