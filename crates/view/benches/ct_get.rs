//! Conntrack get by tuple through the view, without a kernel or a mirror: a `Region` with the
//! conntrack map filled here (as the mirror fills it: packed kernel-layout messages, both
//! tuples and the address index as keys, the `CtAux` word), read through a `RegionView` of
//! the memfd, i.e. the mapping a client has. The map is collapsed into huge pages as the
//! mirror does (`SharedMap::collapse`; `NLKIT_CT_GET_SMALL_PAGES=1`: left in 4 KiB pages,
//! where every random load is also a page walk). Prints ns per lookup for:
//!
//! - the floor: one dependent random load in an area of the mapping as large as the slot
//!   array, and in one as large as a bucket array (in the same pages as the map; a lookup
//!   makes at least two such loads one after the other: bucket head, slot, and a third for a
//!   record that does not fit in its slot);
//! - `MapReader::get` alone (the packed record, not unpacked; reader opened once);
//! - `CtReader::get` (lookup + the kernel's message rebuilt; reader opened once);
//! - `MirrorView::ct_get` (the same, the table's reader made per call), by original and by
//!   reply tuple;
//! - batched: `MapReader::get_batch` and `CtReader::get_many` (groups of `BATCH` lookups whose
//!   misses overlap), per lookup;
//! - the unpack alone (one record, cached);
//! - the listing of one source address through the address index (per entry): the index
//!   scan alone (`MapReader::get_all_many` over its lanes, packed records) and `MirrorView::ct_walk` with
//!   `CtFilter::src` (the kernel's messages). The address holds `NLKIT_CT_GET_SHARE` entries
//!   (default 50,000, as the mirror bench's large share: 10.200.0.1:sport → 10.201.0.1:53,
//!   UDP), inserted at random places in the insertion order, as the mirror inserts the
//!   kernel's dump (hash order): their slots and records are spread over the whole table;
//!   and the same entries read by slot number, independently of each other (no chain to
//!   follow: what a listing could cost if the index did not make each entry a dependent
//!   miss away from the previous one);
//! - the whole table, per entry: `MapReader::walk` (packed records) and `MirrorView::ct_walk`
//!   with no filter (the kernel's messages).
//!
//! ```text
//! cargo bench -p nlkit-view --bench ct_get
//! NLKIT_CT_GET_ENTRIES=1000000 NLKIT_CT_GET_LOOKUPS=200000 NLKIT_CT_GET_REPEAT=5 cargo bench -p nlkit-view --bench ct_get
//! # the view bench's sample: 20,000 lookups among 20,000 of 200,000 entries
//! NLKIT_CT_GET_ENTRIES=200000 NLKIT_CT_GET_LOOKUPS=20000 NLKIT_CT_GET_DISTINCT=20000 cargo bench -p nlkit-view --bench ct_get
//! ```
//!
//! Nothing is asserted: a benchmark, not a test.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use nlkit_shm::{Region, RegionView, SharedMap};
use nlkit_table::{ConnKey, TableKey};
use nlkit_view::ct_pack::{pack, unpack_into};
use nlkit_view::schema::{ct_addr_key, ct_addr_keys, map_layout, table_object, CtAux};
use nlkit_view::{CtFilter, MirrorView, TableId};
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[path = "../../shm/benches/common/floor.rs"]
mod floor;
use floor::chase;
use nlkit_testns::size_from_env as env;

/// A conntrack message laid out as the kernel's (tuples, status, timeout, mark, use, id and
/// a TCP protocol-info nest): about 200 bytes, as in a real table.
fn kernel_msg(o: &ConnKey, r: &ConnKey) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    nlkit_conntrack::request::begin(&mut b, IPCTNL_MSG_CT_NEW, 0, 0, AF_INET);
    for (ty, t) in [(CTA_TUPLE_ORIG, o), (CTA_TUPLE_REPLY, r)] {
        nlkit_conntrack::Tuple::with_ports(t.proto, t.src, t.src_port, t.dst, t.dst_port)
            .write(&mut b, ty);
    }
    let p = b.nest_begin(CTA_PROTOINFO);
    b.attr_bytes(1, &[0u8; 24]);
    b.nest_end(p);
    b.attr_be32(CTA_STATUS, 0x188);
    b.attr_be32(CTA_TIMEOUT, 431_999);
    b.attr_be32(CTA_MARK, 0);
    b.attr_be32(CTA_USE, 1);
    b.attr_be32(CTA_ID, 0x1234_5678);
    b.finish().expect("message");
    b.as_bytes().to_vec()
}

/// The source address of the large share: 50,000 entries of the table by default, as the
/// mirror bench's fixtures (`nlkit_testns::load_conntrack`: 10.200.0.1:sport → 10.201.0.1:53,
/// UDP, one source per 50,000 entries).
const SHARE_SRC: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

/// The `i`-th connection of the share (as the fixtures' `i`-th, for `i` < 50,000).
fn share_tuple(i: usize) -> ConnKey {
    let dst = IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1));
    ConnKey::new(
        IpAddr::V4(SHARE_SRC),
        1024 + (i % 50_000) as u16,
        dst,
        53 + (i / 50_000) as u16,
        17,
    )
}

/// Best of `repeat` runs of `f` over `n` items: ns per item.
fn best(repeat: usize, n: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut r = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        r = black_box(f());
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    (best, r)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of tests: there are none
    }
    let n = env("NLKIT_CT_GET_ENTRIES", 1_000_000);
    let lookups = env("NLKIT_CT_GET_LOOKUPS", 200_000);
    let repeat = env("NLKIT_CT_GET_REPEAT", 5);
    let mut rng = StdRng::seed_from_u64(0x6e6c_6b69);

    let region = Arc::new(Region::create("ct-get-bench").expect("region"));
    let map = SharedMap::create(
        region.clone(),
        map_layout(TableId::Conntrack, (n as u32 * 5 / 4).max(1024)),
    )
    .expect("map");
    region
        .publish(table_object(TableId::Conntrack), map.offset())
        .expect("publish");
    let t = Instant::now();
    let mut tuples = Vec::with_capacity(n);
    let mut dropped_sum = 0u64;
    // Which of the entries, in insertion order, are the one source's share: spread at
    // random, as the mirror inserts the kernel's dump (hash order).
    let share = env("NLKIT_CT_GET_SHARE", 50_000).min(n);
    let mut in_share = vec![false; n];
    in_share[..share].fill(true);
    in_share.shuffle(&mut rng);
    let mut shared = 0;
    {
        let mut w = map.lock();
        while tuples.len() < n {
            let o = if in_share[tuples.len()] {
                shared += 1;
                share_tuple(shared - 1)
            } else {
                let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | rng.random::<u32>() >> 8));
                let dst = IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 | rng.random::<u32>() >> 16));
                let proto = if rng.random_bool(0.7) { 6 } else { 17 };
                ConnKey::new(src, rng.random(), dst, rng.random(), proto)
            };
            let r = o.reverse();
            let (rec, dropped) = pack(kernel_msg(&o, &r), &o, &r);
            let aux = CtAux {
                dropped,
                ..CtAux::default()
            };
            let (ow, rw, aw) = (o.to_words(), r.to_words(), ct_addr_key(&o));
            if w.insert(&[&ow, &rw, &aw], aux.to_word(), &rec).is_ok() {
                dropped_sum += u64::from(dropped & 0x7fff);
                tuples.push(o);
            }
        }
    }
    eprintln!(
        "{n} entries in {:.2?} (mean tuple bytes dropped {:.0})",
        t.elapsed(),
        dropped_sum as f64 / n as f64
    );
    // The lookups draw from a sample of `distinct` tuples (all of them by default; the view
    // bench draws 20,000 of 200,000, so its lookups touch a smaller part of the mapping).
    let distinct = env("NLKIT_CT_GET_DISTINCT", n).clamp(1, tuples.len());
    let keys: Vec<ConnKey> = (0..lookups)
        .map(|_| tuples[rng.random_range(0..distinct)])
        .collect();
    let replies: Vec<ConnKey> = keys.iter().map(ConnKey::reverse).collect();

    // As the mirror does after its initial sync: the slots and buckets in use in huge pages
    // (NLKIT_CT_GET_SMALL_PAGES=1: left in 4 KiB pages, for comparison).
    let small = std::env::var_os("NLKIT_CT_GET_SMALL_PAGES").is_some();
    if !small {
        let t = Instant::now();
        let c = map.collapse();
        eprintln!(
            "huge pages: {} MiB collapsed in {:.2?} ({} failed{})",
            c.bytes >> 20,
            t.elapsed(),
            c.failed,
            c.error.map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let rv = RegionView::map(region.fd().try_clone_to_owned().expect("fd")).expect("view");
    let view = MirrorView::from_region(rv);
    let mapped = view.region();
    let stride = map_layout(TableId::Conntrack, 1).slot_bytes() as u64;
    let slot_bytes = (n as u64 * 5 / 4 * stride).next_multiple_of(1 << 21);
    let bucket_bytes = ((n as u64 * 5 / 4).next_power_of_two() * 4).next_multiple_of(1 << 21);
    let floor_slots = chase(&region, mapped, slot_bytes, lookups, repeat, !small);
    let floor_buckets = chase(&region, mapped, bucket_bytes, lookups, repeat, !small);

    let reader = view.table(TableId::Conntrack).expect("table");
    let ct = view.ct_reader().expect("ct reader");
    let mut out = Vec::with_capacity(512);
    // The unpack alone, on one cached record.
    let (o, r) = (keys[0], keys[0].reverse());
    let (rec, dropped) = pack(kernel_msg(&o, &r), &o, &r);
    let reps = lookups * 4;
    // The measures take turns, `repeat` rounds, the best of each kept: on a shared machine
    // they then see the same load.
    let zero = black_box(0usize);
    let mut ns = [f64::MAX; 16];
    // NLKIT_CT_GET_ONLY=i: only measure i (0 map get, 1 CtReader, 2 ct_get, 3 reply,
    // 8 get_batch, 9 get_many, 11 index scan, 12 ct_walk of an address, 13 the address's
    // entries by slot, 14 walk, 15 ct_walk of the whole table), e.g. under `perf`.
    let key_words: Vec<[u64; 5]> = keys.iter().map(ConnKey::to_words).collect();
    // The share's slots (in the index chain's order), for measure 13: the same entries read
    // by slot number, one independent read after the other (what an index without a
    // dependent miss per entry could cost).
    let mut share_slots = Vec::with_capacity(share);
    reader
        .get_all_many(
            2,
            &ct_addr_keys(IpAddr::V4(SHARE_SRC)),
            &mut out,
            |_, e, rec| {
                share_slots.push(e.slot);
                rec.clear();
                true
            },
        )
        .expect("share");
    let only = std::env::var("NLKIT_CT_GET_ONLY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let mut found = [0usize; 16];
    for _ in 0..repeat {
        let runs: [(&[ConnKey], u8); 8] = [
            (&keys, 0),
            (&keys, 1),
            (&keys, 2),
            (&replies, 2),
            (&keys, 3),
            (&keys, 4),
            (&keys, 5),
            (&keys, 6),
        ];
        for (i, (ks, how)) in runs.into_iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let (t, f) = best(1, lookups, || {
                let mut found = 0;
                // Measures 4 and 5: each lookup's key depends on the previous result, the last
                // byte of its record (the latency of one lookup, its record's miss included:
                // no overlap of consecutive lookups' misses). The difference between the
                // measures of a lookup and of the same lookup in a row of independent ones is
                // what the CPU overlaps of one lookup with the next: the record's miss of a
                // lookup that only copies its record, not of one that uses it.
                let mut dep = 0usize;
                for i in 0..ks.len() {
                    let k = &ks[i ^ dep];
                    out.clear();
                    found += usize::from(match how {
                        0 => reader.get(0, &k.to_words(), &mut out).unwrap().is_some(),
                        1 => ct.get(k, &mut out).unwrap().is_some(),
                        2 => view.ct_get(k, &mut out).unwrap().is_some(),
                        3 => reader.get(0, &k.to_words(), &mut out).unwrap().is_some(),
                        4 => ct.get(k, &mut out).unwrap().is_some(),
                        5 => reader
                            .get_first(&[0, 1], &k.to_words(), &mut out)
                            .unwrap()
                            .is_some(),
                        // What ct_get adds to CtReader::get: the table's reader, made per call.
                        _ => {
                            black_box(view.table(TableId::Conntrack).unwrap())
                                .layout()
                                .dirs()
                                == 3
                        }
                    });
                    if how == 3 || how == 4 {
                        dep = usize::from(out.last().copied().unwrap_or(0)) & zero;
                    }
                }
                found
            });
            ns[i] = ns[i].min(t);
            found[i] = f;
        }
        // Batched: groups of BATCH lookups (MapReader::get_batch in both directions, the packed
        // records; CtReader::get_many, original or reply tuple, the kernel's messages).
        if only.is_none_or(|o| o == 8) {
            let (t, f) = best(1, lookups, || {
                let mut found = 0;
                out.clear();
                reader.get_batch(&[0, 1], &key_words, &mut out, |_, r, buf| {
                    found += usize::from(r.unwrap().is_some());
                    buf.clear();
                });
                found
            });
            ns[8] = ns[8].min(t);
            found[8] = f;
        }
        if only.is_none_or(|o| o == 9) {
            let (t, f) = best(1, lookups, || {
                let mut found = 0;
                ct.get_many(&keys, &mut out, |_, r, msg| {
                    found += usize::from(r.unwrap().is_some());
                    black_box(msg.len());
                });
                found
            });
            ns[9] = ns[9].min(t);
            found[9] = f;
        }
        // The share's listing through the address index: the packed records
        // (MapReader::get_all_many over the address's lanes), and the kernel's messages
        // (MirrorView::ct_walk), per entry.
        let share_keys = ct_addr_keys(IpAddr::V4(SHARE_SRC));
        if only.is_none_or(|o| o == 11) {
            let (t, f) = best(1, share.max(1), || {
                let mut found = 0;
                out.clear();
                reader
                    .get_all_many(2, &share_keys, &mut out, |_, _, rec| {
                        found += 1;
                        black_box(&rec);
                        rec.clear();
                        true
                    })
                    .unwrap();
                found
            });
            ns[11] = ns[11].min(t);
            found[11] = f;
        }
        if only.is_none_or(|o| o == 12) {
            let filter = CtFilter {
                src: Some(IpAddr::V4(SHARE_SRC)),
                ..CtFilter::default()
            };
            let (t, f) = best(1, share.max(1), || {
                let mut found = 0;
                view.ct_walk(&filter, |_, msg| {
                    found += 1;
                    black_box(msg);
                    true
                })
                .unwrap();
                found
            });
            ns[12] = ns[12].min(t);
            found[12] = f;
        }
        if only.is_none_or(|o| o == 13) {
            let (t, f) = best(1, share_slots.len().max(1), || {
                let mut found = 0;
                for s in &share_slots {
                    out.clear();
                    found += usize::from(reader.read(*s, &mut out).unwrap().is_some());
                }
                found
            });
            ns[13] = ns[13].min(t);
            found[13] = f;
        }
        // The whole table: MapReader::walk (packed records) and MirrorView::ct_walk with no
        // filter (the kernel's messages), per entry.
        if only.is_none_or(|o| o == 14) {
            let (t, f) = best(1, n, || {
                let mut found = 0;
                reader
                    .walk(|_, rec| {
                        found += 1;
                        black_box(rec);
                        true
                    })
                    .unwrap();
                found
            });
            ns[14] = ns[14].min(t);
            found[14] = f;
        }
        if only.is_none_or(|o| o == 15) {
            let (t, f) = best(1, n, || {
                let mut found = 0;
                view.ct_walk(&CtFilter::default(), |_, msg| {
                    found += 1;
                    black_box(msg);
                    true
                })
                .unwrap();
                found
            });
            ns[15] = ns[15].min(t);
            found[15] = f;
        }
        let (t, _) = best(1, reps, || {
            let mut len = 0;
            for _ in 0..reps {
                out.clear();
                unpack_into(black_box(&rec), dropped, black_box(&o), &r, &mut out);
                len += out.len();
            }
            len
        });
        ns[10] = ns[10].min(t);
    }
    let [map_get, reader_get, view_get, view_reply, map_dep, reader_dep, first, table, batch, many, unpack, scan, listing, by_slot, walk, ct_walk] =
        ns;

    let [found_map, found_reader, found_view, found_reply, .., found_batch, found_many, _, found_scan, found_listing, found_by_slot, found_walk, found_ct_walk] =
        found;
    println!(
        "ct_get micro bench ({}): {n} entries, {lookups} random lookups of {distinct} tuples, best of {repeat} (ns per lookup)",
        if small { "4 KiB pages" } else { "tables in huge pages" }
    );
    println!(
        "  floor: dependent random load in {} MiB (slot array): {floor_slots:.1}; in {} MiB (bucket array): {floor_buckets:.1}",
        slot_bytes >> 20,
        bucket_bytes >> 20
    );
    println!("  MapReader::get (no unpack):         {map_get:.1}  ({found_map} found)");
    println!("  MapReader::get_first (both dirs):   {first:.1}");
    println!("  CtReader::get (lookup + unpack):    {reader_get:.1}  ({found_reader} found)");
    println!("  MirrorView::table (a reader made):  {table:.1}");
    println!("  MirrorView::ct_get, original tuple: {view_get:.1}  ({found_view} found)");
    println!("  MirrorView::ct_get, reply tuple:    {view_reply:.1}  ({found_reply} found)");
    println!(
        "  batched ({}): MapReader::get_batch (both dirs) {batch:.1} ({found_batch} found), CtReader::get_many {many:.1} ({found_many} found)",
        nlkit_shm::map::BATCH
    );
    println!(
        "  one at a time (each key depends on the previous record's bytes): MapReader::get {map_dep:.1}, CtReader::get {reader_dep:.1}"
    );
    println!(
        "  unpack alone (cached record, {} bytes): {unpack:.1}",
        rec.len()
    );
    println!(
        "  address listing, {share} entries of {SHARE_SRC} (ns per entry): index scan MapReader::get_all_many {scan:.1} ({found_scan} found), MirrorView::ct_walk {listing:.1} ({found_listing} found, {:.2} ms)",
        listing * share as f64 / 1e6
    );
    println!(
        "  the same entries read by slot number (MapReader::read, independent reads, no chain): {by_slot:.1} ({found_by_slot} found)"
    );
    println!(
        "  the whole table (ns per entry): MapReader::walk {walk:.1} ({found_walk} entries), MirrorView::ct_walk {ct_walk:.1} ({found_ct_walk} entries, {:.1} ms)",
        ct_walk * n as f64 / 1e6
    );
}
