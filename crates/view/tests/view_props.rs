//! A view over a region whose bytes another process scribbled on: a real region in the
//! schema's layout (tables with entries, a feed), with random words overwritten anywhere in
//! what it uses, mapped and read every way the view reads. Errors are fine; a panic (or a
//! hang: every walk is bounded) fails the test.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nlkit_shm::{FeedRing, Region, SharedMap};
use nlkit_table::{ConnKey, TableKey};
use nlkit_view::schema::{ct_addr_key, map_layout, table_object, CtAux, FEED_OBJECT};
use nlkit_view::{AddrKey, CtFilter, MirrorView, NeighKey, RouteKey, TableId};
use proptest::prelude::*;
use rustix::fs::{MemfdFlags, SealFlags};

/// The bytes of a small, valid region: every table with a few entries, and a feed.
fn region_bytes() -> (Vec<u8>, u64) {
    let region = Arc::new(Region::create("view-props").unwrap());
    let mut maps = Vec::new();
    for t in TableId::ALL {
        let m = SharedMap::create(region.clone(), map_layout(t, 32)).unwrap();
        region.publish(table_object(t), m.offset()).unwrap();
        maps.push((t, m));
    }
    for (t, m) in &maps {
        let mut w = m.lock();
        for i in 0..8u64 {
            let rec = vec![i as u8; 20 + 12 * i as usize];
            let k = |n: usize| vec![i + 1; n];
            let kw = usize::from(nlkit_view::schema::key_words(*t));
            if *t == TableId::Conntrack {
                let o = ConnKey::new(
                    "10.0.0.1".parse().unwrap(),
                    1000 + i as u16,
                    "10.0.0.2".parse().unwrap(),
                    53,
                    17,
                );
                let aux = CtAux {
                    dropped: (i * 13) as u16,
                    ..Default::default()
                };
                w.insert(
                    &[&o.to_words(), &o.reverse().to_words(), &ct_addr_key(&o)],
                    aux.to_word(),
                    &rec,
                )
                .unwrap();
            } else {
                w.insert(&[&k(kw)], i, &rec).unwrap();
            }
        }
    }
    let feed = FeedRing::create(region.clone(), 4096).unwrap();
    region.publish(FEED_OBJECT, feed.offset()).unwrap();
    for i in 0..20u64 {
        feed.append(i, &[i as u8; 40]).unwrap();
    }
    feed.publish();
    let len = rustix::fs::fstat(region.fd()).unwrap().st_size as u64;
    // The used prefix: up to the last non-zero byte (the rest of the file is sparse zeros).
    let mut bytes = Vec::new();
    let mut off = 0u64;
    let mut chunk = vec![0u8; 1 << 16];
    while off < len {
        let n = rustix::io::pread(region.fd(), &mut chunk, off).unwrap();
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        off += n as u64;
    }
    let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    bytes.truncate(used.next_multiple_of(8));
    (bytes, len)
}

/// A memfd of `len` bytes starting with `bytes`, sealed as a region is.
fn sealed(bytes: &[u8], len: u64) -> OwnedFd {
    let fd = rustix::fs::memfd_create(
        "view-props",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    let mut done = 0;
    while done < bytes.len() {
        done += rustix::io::write(&fd, &bytes[done..]).unwrap();
    }
    rustix::fs::ftruncate(&fd, len.max(bytes.len() as u64)).unwrap();
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::SHRINK | SealFlags::FUTURE_WRITE | SealFlags::SEAL,
    )
    .unwrap();
    fd
}

/// Every read the view offers; results are ignored, only panics matter.
fn read_everything(v: &MirrorView) {
    let mut out = Vec::new();
    for i in 0..10 {
        let _ = v.link(i, &mut out);
        let _ = v.nexthop(i, &mut out);
    }
    let _ = v.link_by_name("lo", &mut out);
    let a = "10.0.0.1".parse().unwrap();
    let _ = v.addr(
        &AddrKey {
            ifindex: 1,
            prefix_len: 8,
            local: a,
        },
        &mut out,
    );
    let _ = v.neigh(&NeighKey { ifindex: 1, dst: a }, &mut out);
    let _ = v.route(
        &RouteKey {
            table: 254,
            dst: a,
            dst_len: 8,
            src: a,
            src_len: 0,
            tos: 0,
            priority: 0,
        },
        &mut out,
    );
    for t in TableId::ALL {
        let _ = v.walk(t, |_, _| true);
        let _ = v.walk_messages(t, |_| true);
        let _ = v.get_words(t, &[1; 6], &mut out);
    }
    for fam in [2, 10, 0] {
        let _ = v.routes(fam, |_| true);
        let _ = v.rules(fam, |_| true);
    }
    let o = ConnKey::new(a, 1003, "10.0.0.2".parse().unwrap(), 53, 17);
    let _ = v.ct_get(&o, &mut out);
    let _ = v.ct_get(&o.reverse(), &mut out);
    let _ = v.ct_get_many(&[o, o.reverse(), o], &mut out, |_, _, _| {});
    for f in [
        CtFilter::default(),
        CtFilter {
            src: Some(a),
            ..Default::default()
        },
        CtFilter {
            mark: Some((1, 1)),
            zone: Some(0),
            ..Default::default()
        },
    ] {
        let _ = v.ct_walk(&f, |_, _| true);
    }
    let _ = v.ct_count();
    if let Ok(mut f) = v.follow_from(1) {
        for _ in 0..30 {
            if f.next(&mut out).is_err() {
                break;
            }
        }
    }
    if let Ok(f) = v.follow_now() {
        let _ = f.wait(Some(std::time::Duration::ZERO));
    }
}

#[test]
fn the_untouched_region_reads() {
    let (bytes, len) = region_bytes();
    let v = MirrorView::from_fd(sealed(&bytes, len)).unwrap();
    let mut n = 0;
    v.walk(TableId::Links, |_, _| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 8);
    read_everything(&v);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random words written over the used part of a valid region.
    #[test]
    fn scribbled_regions_give_errors_not_panics(
        patches in proptest::collection::vec((any::<u32>(), prop_oneof![
            any::<u64>(),
            Just(0u64),
            Just(u64::MAX),
            (0u32..64).prop_map(|b| 1u64 << b),
            (0u64..1 << 20),
        ], any::<bool>()), 1..24)
    ) {
        thread_local! {
            static BASE: (Vec<u8>, u64) = region_bytes();
        }
        BASE.with(|(base, len)| {
            let mut bytes = base.clone();
            let words = bytes.len() / 8;
            for (at, value, flip) in &patches {
                let i = (*at as usize % words) * 8;
                let old = u64::from_ne_bytes(bytes[i..i + 8].try_into().unwrap());
                let new = if *flip { old ^ value } else { *value };
                bytes[i..i + 8].copy_from_slice(&new.to_ne_bytes());
            }
            if let Ok(v) = MirrorView::from_fd(sealed(&bytes, *len)) {
                read_everything(&v);
            }
        });
    }
}
