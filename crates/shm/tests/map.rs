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
