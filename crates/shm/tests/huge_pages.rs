//! Huge pages for a map in use ([`SharedMap::collapse`], [`Region::collapse`]): the contents
//! never change, nothing that was not in use is allocated, and readers and the writer keep
//! working while pages are collapsed under them.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nlkit_shm::{MapLayout, Memory, Region, RegionView, SharedMap, ShmError, HUGE_PAGE};

const ID: u64 = 0x6875_6765;

fn region() -> Arc<Region> {
    Arc::new(Region::create("huge-test").expect("memfd region"))
}

/// Bytes of the memfd allocated (tmpfs counts whole pages, huge or not).
fn allocated(r: &Region) -> u64 {
    rustix::fs::fstat(r.fd()).unwrap().st_blocks as u64 * 512
}

/// kB of this process's shared memory mapped by huge-page table entries.
fn pmd_mapped_kb() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("ShmemPmdMapped:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn record(i: u64) -> Vec<u8> {
    (0..40 + i % 50).map(|j| (i + j) as u8).collect()
}

#[test]
fn a_collapsed_map_reads_the_same_and_costs_no_more_memory() {
    let r = region();
    let n = 65_536u64;
    let map = SharedMap::create(
        r.clone(),
        MapLayout::new(n as u32).key(2, true).fill_slot(256),
    )
    .unwrap();
    {
        let mut w = map.lock();
        for i in 0..n {
            w.insert(&[&[i, !i]], i, &record(i)).unwrap();
        }
    }
    r.publish(ID, map.offset()).unwrap();
    let before = allocated(&r);
    let c = map.collapse();
    // 16 MiB of slots (7 or 8 whole huge pages) and 512 KiB of buckets (none whole).
    assert!(
        c.bytes + c.failed * HUGE_PAGE >= 7 * HUGE_PAGE,
        "{c:?} for 16 MiB of slots"
    );
    let after = allocated(&r);
    assert!(
        after <= before,
        "collapse allocated {} bytes",
        after - before
    );
    // Asked again: nothing more to do.
    if c.failed == 0 {
        assert_eq!(map.collapse().bytes, 0);
    }

    let view = RegionView::map(r.fd().try_clone_to_owned().unwrap()).unwrap();
    let reader = nlkit_shm::MapReader::open(&view, view.find(ID).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        out.clear();
        let e = reader.get(0, &[i, !i], &mut out).unwrap().expect("entry");
        assert_eq!((e.aux, &out[..]), (i, &record(i)[..]));
    }
    let walk = reader.walk(|e, rec| rec == record(e.aux)).unwrap();
    assert!(walk.consistent && walk.visited == n);
    if c.failed == 0 {
        // The client's mapping starts on a huge-page boundary, so what it touched of the
        // collapsed pages is mapped whole (the writer's mapping too).
        assert!(
            pmd_mapped_kb() >= 2 * (c.bytes >> 10),
            "{} kB huge-mapped for {} kB collapsed",
            pmd_mapped_kb(),
            c.bytes >> 10
        );
    } else {
        eprintln!("huge pages not made here: {c:?}");
    }
}

/// A sparse map (1,000 entries in room for 200,000) has no whole huge page in use: a
/// collapse asks for nothing, and allocates nothing.
#[test]
fn a_sparse_map_is_left_alone() {
    let r = region();
    let map = SharedMap::create(
        r.clone(),
        MapLayout::new(200_000)
            .key(5, true)
            .key(5, true)
            .key(3, false)
            .fill_slot(256),
    )
    .unwrap();
    for i in 0..1000u64 {
        map.lock()
            .insert(
                &[&[i, 1, 2, 3, 4], &[4, 3, 2, 1, i], &[i % 7, 0, 4]],
                i,
                &[1; 90],
            )
            .unwrap();
    }
    let before = allocated(&r);
    let c = map.collapse();
    assert_eq!((c.bytes, c.failed), (0, 0), "{c:?}");
    assert_eq!(allocated(&r), before);
}

/// Whole pages only, and only below the file's end.
#[test]
fn region_collapse_takes_whole_pages_inside_the_file() {
    let r = region();
    let off = r.alloc(3 * HUGE_PAGE).unwrap();
    for i in 0..3 * HUGE_PAGE / 4096 {
        r.word(off + i * 4096).unwrap().store(i, Ordering::Relaxed);
    }
    let c = r.collapse(off, HUGE_PAGE - 8);
    assert_eq!((c.bytes, c.failed), (0, 0));
    let c = r.collapse(off, 3 * HUGE_PAGE);
    assert_eq!(c.bytes + c.failed * HUGE_PAGE, 2 * HUGE_PAGE, "{c:?}");
    let c = r.collapse(r.len(), 64 * HUGE_PAGE);
    assert_eq!((c.bytes, c.failed), (0, 0));
    for i in 0..3 * HUGE_PAGE / 4096 {
        assert_eq!(r.word(off + i * 4096).unwrap().load(Ordering::Relaxed), i);
    }
}

/// Pages collapsed while the writer changes the map and a client reads it: every lookup
/// returns a record the writer wrote for that key, every walk ends.
#[test]
fn collapse_while_the_map_changes() {
    let r = region();
    let n = 32_768u64;
    let map = Arc::new(
        SharedMap::create(
            r.clone(),
            MapLayout::new(n as u32).key(1, true).fill_slot(256),
        )
        .unwrap(),
    );
    {
        let mut w = map.lock();
        for i in 0..n {
            w.insert(&[&[i]], i, &record(i)).unwrap();
        }
    }
    r.publish(ID, map.offset()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (map, stop) = (map.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut w = map.lock();
                for i in (round % 7..n).step_by(7) {
                    if let Some(s) = w.find(0, &[i]) {
                        w.replace(s, i, &record(i + round % 3 * n)).unwrap();
                    }
                }
                drop(w);
                round += 1;
            }
        })
    };
    let view = RegionView::map(r.fd().try_clone_to_owned().unwrap()).unwrap();
    let reader = nlkit_shm::MapReader::open(&view, view.find(ID).unwrap()).unwrap();
    let mut out = Vec::new();
    for round in 0..4 {
        let c = map.collapse();
        if round == 0 {
            eprintln!("{c:?}");
        }
        for i in (0..n).step_by(3) {
            out.clear();
            // A writer replacing the same slots in a tight loop may keep a lookup restarting
            // until it gives up (`Contended`, the documented answer); anything else is a bug.
            match reader.get(0, &[i], &mut out) {
                Ok(found) => {
                    found.expect("entry");
                    assert!(
                        (0..3).any(|k| out == record(i + k * n)),
                        "a torn record for key {i}"
                    );
                }
                Err(ShmError::Contended) => {}
                Err(e) => panic!("key {i}: {e}"),
            }
        }
        let walk = reader
            .walk(|e, rec| (0..3).any(|k| rec == record(e.aux + k * n)))
            .unwrap();
        assert_eq!(walk.visited + walk.skipped, n);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}
