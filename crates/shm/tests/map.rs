//! The map on a real [`Region`], read through the writer's own mapping and through a client's
//! read-only [`RegionView`].
#![cfg(not(loom))]

use std::sync::Arc;

use nlkit_shm::{InsertError, MapLayout, MapReader, Region, RegionView, SharedMap, ShmError};

const ID: u64 = 0x6d61_7001;

fn region() -> Arc<Region> {
    Arc::new(Region::create("map-test").expect("memfd region"))
}

#[test]
fn region_map_round_trip_through_a_view() {
    let r = region();
    let map = SharedMap::create(r.clone(), MapLayout::new(1000).key(3, true)).unwrap();
    r.publish(ID, map.offset()).unwrap();
    let view = RegionView::map(r.fd().try_clone_to_owned().unwrap()).unwrap();
    let off = view.find(ID).unwrap();
    let reader = MapReader::open(&view, off).unwrap();
    assert_eq!(reader.layout(), map.layout());

    let mut slots = Vec::new();
    for i in 0..1000u64 {
        let rec = vec![i as u8; 1 + (i as usize % 300)];
        slots.push(map.lock().insert(&[&[i, i * 7, 1]], i, &rec).unwrap());
    }
    assert!(matches!(
        map.lock().insert(&[&[1000, 0, 0]], 0, b""),
        Err(InsertError::Shm(ShmError::Full(_)))
    ));
    let mut out = Vec::new();
    for i in 0..1000u64 {
        out.clear();
        let e = reader.get(0, &[i, i * 7, 1], &mut out).unwrap().unwrap();
        assert_eq!(e.aux, i);
        assert_eq!(out, vec![i as u8; 1 + (i as usize % 300)]);
    }
    // Replace with records big enough to make the heap (and the file) grow.
    for i in (0..1000u64).step_by(10) {
        map.lock()
            .replace(slots[i as usize], i + 1, &vec![0xa5; 20_000])
            .unwrap();
    }
    for i in (0..1000u64).step_by(10) {
        out.clear();
        let e = reader.get(0, &[i, i * 7, 1], &mut out).unwrap().unwrap();
        assert_eq!((e.aux, out.len()), (i + 1, 20_000));
    }
    for i in (0..1000u64).step_by(2) {
        map.lock().remove(slots[i as usize]);
    }
    assert!(reader.get(0, &[0, 0, 1], &mut out).unwrap().is_none());
    let mut n = 0;
    let walk = reader
        .walk(|e, rec| {
            assert_eq!(e.keys[0][0] % 2, 1);
            assert!(!rec.is_empty());
            n += 1;
            true
        })
        .unwrap();
    assert!(walk.consistent);
    assert_eq!((walk.visited, n), (500, 500));
    assert_eq!(reader.count().unwrap(), 500);
    assert_eq!(map.len(), 500);
    assert!(map.memory_bytes() > 50 * 20_000);
}

#[test]
fn two_maps_in_one_region() {
    let r = region();
    let a = SharedMap::create(r.clone(), MapLayout::new(64).key(1, true)).unwrap();
    let b = SharedMap::create(
        r.clone(),
        MapLayout::new(64).key(5, true).key(5, true).key(3, false),
    )
    .unwrap();
    a.lock().insert(&[&[1]], 0, b"a").unwrap();
    b.lock()
        .insert(&[&[1, 2, 3, 4, 5], &[5, 4, 3, 2, 1], &[9, 9, 4]], 0, b"b")
        .unwrap();
    let mut out = Vec::new();
    let e = b
        .reader()
        .get(1, &[5, 4, 3, 2, 1], &mut out)
        .unwrap()
        .unwrap();
    assert_eq!((e.dir, out.as_slice()), (1, &b"b"[..]));
    assert_eq!(e.key(2, b.layout()), &[9, 9, 4]);
    out.clear();
    assert!(a.reader().get(0, &[1], &mut out).unwrap().is_some());
    assert_eq!(out, b"a");
    // Each header opens as what it is.
    assert_eq!(MapReader::open(&*r, a.offset()).unwrap().layout().dirs(), 1);
    assert_eq!(MapReader::open(&*r, b.offset()).unwrap().layout().dirs(), 3);
}

/// The slot array costs memory only up to the high-water mark: a map with room for 200,000
/// 256-byte slots (51 MB) holding 1,000 entries, all of them inline, has fewer than 2 MB of
/// the memfd allocated (tmpfs allocates a page when it is first written; the writer never
/// touches a slot above the mark, readers never follow an offset to one).
#[test]
fn untouched_slots_cost_no_memory() {
    let r = region();
    let allocated = || rustix::fs::fstat(r.fd()).unwrap().st_blocks as u64 * 512;
    let before = allocated();
    let l = MapLayout::new(200_000)
        .key(5, true)
        .key(5, true)
        .key(3, false)
        .fill_slot(256);
    assert_eq!(l.slot_bytes(), 256);
    let map = SharedMap::create(r.clone(), l).unwrap();
    for i in 0..1000u64 {
        map.lock()
            .insert(
                &[&[i, 1, 2, 3, 4], &[4, 3, 2, 1, i], &[i % 7, 0, 4]],
                i,
                &[i as u8; 90],
            )
            .unwrap();
    }
    let walk = map.reader().walk(|_, rec| rec.len() == 90).unwrap();
    assert_eq!(walk.visited, 1000);
    let used = allocated() - before;
    // 1,000 slots (256 KB) and at most every page of the three bucket arrays of 256 Ki
    // heads (1 MiB each); no heap, and none of the 50 MB of slots above the mark.
    eprintln!(
        "{used} bytes of the memfd allocated, {} accounted",
        map.memory_bytes()
    );
    assert!(used < 4 << 20, "{used} bytes allocated");
    assert!(
        (map.memory_bytes() as u64) < 4 << 20,
        "{} bytes accounted",
        map.memory_bytes()
    );
}
