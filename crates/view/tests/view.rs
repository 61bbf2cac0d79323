//! The view over a region laid out as the mirror lays it out (`nlkit_view::schema`), built
//! here directly with `nlkit-shm`: lookups, walks, conntrack unpacking and filters, the feed,
//! growth, and a region whose objects are garbage. No network namespace is needed: nothing
//! here touches Netlink (a memfd is all a region is).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use nlkit_shm::{FeedRing, Region, SharedMap};
use nlkit_table::{ConnKey, TableKey};
use nlkit_view::ct_pack::pack;
use nlkit_view::schema::{ct_addr_key, map_layout, table_object, CtAux, FEED_OBJECT};
use nlkit_view::{
    AddrKey, CtFilter, LinkKey, MirrorView, NeighKey, NexthopKey, Route4Key, RouteKey, StoreKey,
    TableId, ViewError,
};
use nlkit_wire::consts::*;
use nlkit_wire::{
    FibRuleHdr, IfAddrMsg, IfInfoMsg, Message, MessageBuilder, Messages, NdMsg, NhMsg, RtMsg,
};

/// The mirror's side, as far as the view sees it: a region with the tables and a feed.
struct Mirror {
    region: Arc<Region>,
    maps: Vec<(TableId, SharedMap)>,
    feed: FeedRing,
}

impl Mirror {
    fn new(capacity: u32, feed_bytes: u64) -> Mirror {
        let region = Arc::new(Region::create("view-test").unwrap());
        let mut maps = Vec::new();
        for t in TableId::ALL {
            let m = SharedMap::create(region.clone(), map_layout(t, capacity)).unwrap();
            region.publish(table_object(t), m.offset()).unwrap();
            maps.push((t, m));
        }
        let feed = FeedRing::create(region.clone(), feed_bytes).unwrap();
        region.publish(FEED_OBJECT, feed.offset()).unwrap();
        Mirror { region, maps, feed }
    }

    fn map(&self, t: TableId) -> &SharedMap {
        &self.maps.iter().find(|(x, _)| *x == t).unwrap().1
    }

    /// Files a message under the key the mirror gives it.
    fn put<K: StoreKey>(&self, t: TableId, msg: &[u8]) -> K
    where
        K::Words: AsRef<[u64]>,
    {
        let (m, _) = Message::parse(msg).unwrap();
        let k = K::of_message(&m).expect("a key");
        self.map(t)
            .lock()
            .insert(&[k.to_words().as_ref()], 0, msg)
            .unwrap();
        k
    }

    fn view(&self) -> MirrorView {
        MirrorView::from_fd(self.region.fd().try_clone_to_owned().unwrap()).unwrap()
    }
}

fn link(index: i32, name: &str) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWLINK, 0, 0);
    b.header(&IfInfoMsg {
        index,
        ..Default::default()
    });
    b.attr_str(IFLA_IFNAME, name);
    b.attr_u32(IFLA_MTU, 1500);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn addr(index: u32, local: IpAddr, len: u8) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWADDR, 0, 0);
    b.header(&IfAddrMsg {
        family: if local.is_ipv6() { AF_INET6 } else { AF_INET },
        prefixlen: len,
        index,
        ..Default::default()
    });
    b.attr_ip(IFA_ADDRESS, local);
    b.attr_ip(IFA_LOCAL, local);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn route(dst: IpAddr, len: u8, table: u32, oif: u32) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWROUTE, 0, 0);
    b.header(&RtMsg {
        family: if dst.is_ipv6() { AF_INET6 } else { AF_INET },
        dst_len: len,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_STATIC,
        ty: RTN_UNICAST,
        ..Default::default()
    });
    b.attr_u32(RTA_TABLE, table);
    b.attr_ip(RTA_DST, dst);
    b.attr_u32(RTA_OIF, oif);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn neigh(index: i32, dst: IpAddr) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWNEIGH, 0, 0);
    b.header(&NdMsg {
        family: if dst.is_ipv6() { AF_INET6 } else { AF_INET },
        ifindex: index,
        state: NUD_REACHABLE,
        ..Default::default()
    });
    b.attr_ip(NDA_DST, dst);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn nexthop(id: u32, oif: u32) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWNEXTHOP, 0, 0);
    b.header(&NhMsg {
        family: AF_INET,
        ..Default::default()
    });
    b.attr_u32(NHA_ID, id);
    b.attr_u32(NHA_OIF, oif);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn rule(pref: u32) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWRULE, 0, 0);
    b.header(&FibRuleHdr {
        family: AF_INET,
        table: RT_TABLE_MAIN,
        action: FR_ACT_TO_TBL,
        ..Default::default()
    });
    b.attr_u32(FRA_PRIORITY, pref);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn first(buf: &[u8]) -> Message<'_> {
    Messages::new(buf).next().unwrap().unwrap()
}

#[test]
fn lookups_and_walks_return_the_stored_messages() {
    let m = Mirror::new(256, 1 << 16);
    let lo = link(1, "lo");
    let eth = link(2, "eth0");
    m.put::<LinkKey>(TableId::Links, &lo);
    m.put::<LinkKey>(TableId::Links, &eth);
    let a4 = addr(2, ip("10.0.0.1"), 24);
    let a6 = addr(2, ip("fd00::1"), 64);
    let k4: AddrKey = m.put(TableId::Addrs4, &a4);
    let k6: AddrKey = m.put(TableId::Addrs6, &a6);
    let r4 = route(ip("10.9.0.0"), 16, 254, 2);
    let r4b = route(ip("10.8.0.0"), 16, 1000, 2);
    let r6 = route(ip("fd01::"), 64, 254, 2);
    let rk4: Route4Key = m.put(TableId::Routes4, &r4);
    m.put::<Route4Key>(TableId::Routes4, &r4b);
    let rk6: RouteKey = m.put(TableId::Routes6, &r6);
    let n = neigh(2, ip("10.0.0.5"));
    let nk: NeighKey = m.put(TableId::Neigh4, &n);
    for id in [30, 10, 20] {
        m.put::<NexthopKey>(TableId::Nexthops, &nexthop(id, 2));
    }
    // Rules are filed by rank; a walk in rank order is the kernel's order.
    for (rank, pref) in [(2u64, 32766), (0, 0), (1, 100)] {
        m.map(TableId::Rules4)
            .lock()
            .insert(&[&[rank]], 0, &rule(pref))
            .unwrap();
    }

    let v = m.view();
    let mut out = Vec::new();
    assert!(v.link(2, &mut out).unwrap());
    assert_eq!(out, eth);
    out.clear();
    assert!(!v.link(9, &mut out).unwrap());
    assert!(out.is_empty());
    assert!(v.link_by_name("lo", &mut out).unwrap());
    assert_eq!(out, lo);
    out.clear();
    assert!(!v.link_by_name("nope", &mut out).unwrap());
    for (k, want) in [(k4, &a4), (k6, &a6)] {
        out.clear();
        assert!(v.addr(&k, &mut out).unwrap());
        assert_eq!(&out, want);
    }
    out.clear();
    assert!(v.route(&rk4.key(), &mut out).unwrap());
    assert_eq!(out, r4);
    out.clear();
    assert!(v.route(&rk6, &mut out).unwrap());
    assert_eq!(out, r6);
    out.clear();
    assert!(v.neigh(&nk, &mut out).unwrap());
    assert_eq!(out, n);
    out.clear();
    assert!(v.nexthop(20, &mut out).unwrap());
    assert_eq!(out, nexthop(20, 2));

    // The typed views of nlkit-route parse what the view returns.
    out.clear();
    v.link(2, &mut out).unwrap();
    assert_eq!(
        nlkit_route::LinkView::parse(&first(&out)).unwrap().index(),
        2
    );

    let mut dsts = Vec::new();
    let w = v
        .routes(AF_INET, |r| {
            dsts.push(nlkit_route::RouteView::parse(r).unwrap().dst());
            true
        })
        .unwrap();
    assert!(w.consistent);
    dsts.sort();
    assert_eq!(dsts, vec![Some(ip("10.8.0.0")), Some(ip("10.9.0.0"))]);
    let mut n6 = 0;
    v.routes(AF_INET6, |_| {
        n6 += 1;
        true
    })
    .unwrap();
    assert_eq!(n6, 1);
    let mut ids = Vec::new();
    v.nexthops(|m| {
        ids.push(
            nlkit_route::NexthopObjectView::parse(m)
                .unwrap()
                .id()
                .unwrap(),
        );
        true
    })
    .unwrap();
    assert_eq!(ids, vec![10, 20, 30], "nexthops by id");
    let mut prefs = Vec::new();
    v.rules(AF_INET, |m| {
        prefs.push(nlkit_route::RuleView::parse(m).unwrap().priority());
        true
    })
    .unwrap();
    assert_eq!(prefs, vec![0, 100, 32766], "rules by rank");
    // A walk stops when asked to.
    let mut seen = 0;
    v.links(|_| {
        seen += 1;
        false
    })
    .unwrap();
    assert_eq!(seen, 1);
    let mut addrs = 0;
    for fam in [AF_INET, AF_INET6] {
        v.addrs(fam, |_| {
            addrs += 1;
            true
        })
        .unwrap();
    }
    assert_eq!(addrs, 2);
    let mut neighs = 0;
    v.neighs(AF_INET, |_| {
        neighs += 1;
        true
    })
    .unwrap();
    assert_eq!(neighs, 1);
}

/// A conntrack message laid out as the kernel lays it out (tuples first).
fn ct_msg(orig: &nlkit_conntrack::Tuple, mark: u32, zone: Option<u16>) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    nlkit_conntrack::request::begin(&mut b, IPCTNL_MSG_CT_NEW, 0, 0, orig.family());
    orig.write(&mut b, CTA_TUPLE_ORIG);
    orig.reversed().write(&mut b, CTA_TUPLE_REPLY);
    if let Some(z) = zone {
        b.attr_be16(CTA_ZONE, z);
    }
    b.attr_be32(CTA_STATUS, 8);
    b.attr_be32(CTA_TIMEOUT, 120);
    b.attr_be32(CTA_MARK, mark);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

/// Stores a conntrack message as the mirror does: packed, under both tuples and the
/// address index, with what was dropped in the aux word.
fn put_ct(m: &Mirror, msg: &[u8]) -> (ConnKey, ConnKey) {
    let (mm, _) = Message::parse(msg).unwrap();
    let info = nlkit_view::keys::ct_info(&mm).unwrap();
    let (o, r) = (info.original, info.reply.unwrap());
    let (stored, dropped) = pack(msg.to_vec(), &o, &r);
    let aux = CtAux {
        dropped,
        ..Default::default()
    };
    m.map(TableId::Conntrack)
        .lock()
        .insert(
            &[&o.to_words(), &r.to_words(), &ct_addr_key(&o)],
            aux.to_word(),
            &stored,
        )
        .unwrap();
    (o, r)
}

#[test]
fn conntrack_gets_unpack_the_kernels_bytes_and_filters_select() {
    let m = Mirror::new(1024, 1 << 16);
    let mut all = Vec::new();
    for i in 0..40u16 {
        let src = if i % 2 == 0 {
            ip("10.0.0.1")
        } else {
            ip("10.0.0.2")
        };
        let t = if i == 39 {
            nlkit_conntrack::Tuple::with_ports(
                IPPROTO_TCP,
                ip("fd00::1"),
                1000 + i,
                ip("fd00::9"),
                80,
            )
        } else {
            nlkit_conntrack::Tuple::with_ports(IPPROTO_UDP, src, 1000 + i, ip("10.0.9.9"), 53)
        };
        // A few in zone 3 (stored whole: a zone does not re-encode), the rest packed.
        let zone = (i % 10 == 0).then_some(3);
        let msg = ct_msg(&t, u32::from(i % 4), zone);
        let keys = put_ct(&m, &msg);
        all.push((keys, msg));
    }
    let v = m.view();
    for ((o, r), msg) in &all {
        for (t, dir) in [(o, 0), (r, 1)] {
            let mut out = Vec::new();
            let f = v.ct_get(t, &mut out).unwrap().expect("found");
            assert_eq!(&out, msg, "byte-identical by tuple {dir}");
            assert_eq!((f.dir, f.original, f.reply), (dir, *o, *r));
            let e = nlkit_conntrack::CtEntryView::parse(&first(&out)).unwrap();
            assert!(e.orig().is_some());
        }
    }
    let missing = ConnKey::new(ip("10.1.1.1"), 1, ip("10.1.1.2"), 2, IPPROTO_UDP);
    assert!(v.ct_get(&missing, &mut Vec::new()).unwrap().is_none());
    // Many at once (more than a batch; originals, replies and absent tuples mixed): each
    // answer is what ct_get gives for that tuple.
    let mut tuples = Vec::new();
    for (i, ((o, r), _)) in all.iter().enumerate() {
        tuples.push(if i % 3 == 0 { *r } else { *o });
        if i % 5 == 0 {
            tuples.push(missing);
        }
    }
    let mut n = 0;
    let mut buf = Vec::new();
    v.ct_get_many(&tuples, &mut buf, |i, found, msg| {
        assert_eq!(i, n);
        n += 1;
        let mut out = Vec::new();
        let want = v.ct_get(&tuples[i], &mut out).unwrap();
        assert_eq!(found.unwrap(), want, "tuple {i}");
        assert_eq!(msg, &out[..], "tuple {i}");
    })
    .unwrap();
    assert_eq!(n, tuples.len());
    assert_eq!(v.ct_count().unwrap(), 40);

    let count = |f: CtFilter| {
        let mut n = 0;
        v.ct_walk(&f, |found, msg| {
            let (mm, _) = Message::parse(msg).unwrap();
            let info = nlkit_view::keys::ct_info(&mm).unwrap();
            assert_eq!(info.original, found.original);
            if let Some(a) = f.src {
                assert_eq!(found.original.src, a);
            }
            n += 1;
            true
        })
        .unwrap();
        n
    };
    assert_eq!(count(CtFilter::default()), 40);
    // By source address (the index): 20 even ones from .1, 19 odd ones from .2.
    assert_eq!(
        count(CtFilter {
            src: Some(ip("10.0.0.1")),
            ..Default::default()
        }),
        20
    );
    assert_eq!(
        count(CtFilter {
            src: Some(ip("10.0.0.2")),
            ..Default::default()
        }),
        19
    );
    assert_eq!(
        count(CtFilter {
            src: Some(ip("10.7.7.7")),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        count(CtFilter {
            zone: Some(3),
            ..Default::default()
        }),
        4
    );
    assert_eq!(
        count(CtFilter {
            mark: Some((1, u32::MAX)),
            ..Default::default()
        }),
        10
    );
    assert_eq!(
        count(CtFilter {
            mark: Some((0, 0)),
            ..Default::default()
        }),
        40
    );
    assert_eq!(
        count(CtFilter {
            family: Some(AF_INET6),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(CtFilter {
            src: Some(ip("10.0.0.1")),
            zone: Some(3),
            mark: Some((0, 3)),
            family: Some(AF_INET),
        }),
        2
    );
}

#[test]
fn the_feed_is_followed_and_an_overrun_asks_for_a_resync() {
    let m = Mirror::new(16, 4096);
    let v = m.view();
    let mut f = v.follow_now().unwrap();
    let mut buf = Vec::new();
    assert!(f.next(&mut buf).unwrap().is_none());
    assert!(!f.wait(Some(Duration::from_millis(10))).unwrap());
    let p = m.feed.append(7, b"first").unwrap();
    m.feed.publish();
    assert!(f.wait(Some(Duration::from_secs(5))).unwrap());
    let e = f.next(&mut buf).unwrap().unwrap();
    assert_eq!((e.pos, e.raw_tag, &buf[..]), (p, 7, &b"first"[..]));
    assert_eq!(f.position(), p + 1);
    // A waiter in another thread is woken by a publish.
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut f = v.follow_from(p + 1).unwrap();
            let mut b = Vec::new();
            f.next_wait(&mut b, Some(Duration::from_secs(10)))
                .unwrap()
                .map(|e| e.raw_tag)
        });
        std::thread::sleep(Duration::from_millis(20));
        m.feed.append(8, b"second").unwrap();
        m.feed.publish();
        assert_eq!(h.join().unwrap(), Some(8));
    });
    // Fall far behind a small ring: resync required, not torn bytes.
    let mut slow = v.follow_from(p).unwrap();
    for i in 0..2000u64 {
        m.feed.append(i, &[0xab; 100]).unwrap();
        if i % 10 == 0 {
            m.feed.publish();
        }
    }
    m.feed.publish();
    buf.clear();
    assert!(matches!(
        slow.next(&mut buf),
        Err(ViewError::ResyncRequired { .. })
    ));
    assert!(buf.is_empty());
    // From now on it reads again.
    let mut again = v.follow_now().unwrap();
    m.feed.append(99, b"after").unwrap();
    m.feed.publish();
    assert_eq!(again.next(&mut buf).unwrap().unwrap().raw_tag, 99);
}

/// A link message with an 8 KiB alias (records large enough to make the region grow).
fn big_link(index: i32) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWLINK, 0, 0);
    b.header(&IfInfoMsg {
        index,
        ..Default::default()
    });
    b.attr_str(IFLA_IFNAME, &format!("if{index}"));
    b.attr_bytes(IFLA_IFALIAS, &[b'x'; 8192]);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

#[test]
fn a_view_follows_a_growing_region() {
    use nlkit_shm::Memory;
    let m = Mirror::new(8_000, 1 << 12);
    let v = m.view();
    let before = m.region.len();
    let links = m.map(TableId::Links);
    for i in 1..=6000 {
        links
            .lock()
            .insert(&[&[i as u64]], 0, &big_link(i))
            .unwrap();
    }
    assert!(
        m.region.len() > before,
        "the region grew: {before} -> {}",
        m.region.len()
    );
    let mut out = Vec::new();
    assert!(v.link(5999, &mut out).unwrap());
    assert_eq!(out, big_link(5999));
    assert!(v.region().len() > before, "the view saw the growth");
    let mut n = 0;
    v.links(|_| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 6000);
}

#[test]
fn a_region_without_tables_or_with_garbage_gives_errors() {
    // No table, no feed published.
    let region = Region::create("view-empty").unwrap();
    let v = MirrorView::from_fd(region.fd().try_clone_to_owned().unwrap()).unwrap();
    assert!(!v.has_table(TableId::Links));
    assert!(matches!(
        v.link(1, &mut Vec::new()),
        Err(ViewError::NoTable(TableId::Links))
    ));
    assert!(matches!(
        v.ct_get(
            &ConnKey::new(ip("1.1.1.1"), 1, ip("2.2.2.2"), 2, 17),
            &mut Vec::new()
        ),
        Err(ViewError::NoTable(TableId::Conntrack))
    ));
    assert!(matches!(v.follow_now(), Err(ViewError::NoFeed)));
    // Objects whose offsets point at garbage: errors, never a panic.
    let junk = region.alloc(4096).unwrap();
    let words = nlkit_shm::Memory::words(&region, junk, 512).unwrap();
    for (i, w) in words.iter().enumerate() {
        w.store(
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    for t in TableId::ALL {
        region.publish(table_object(t), junk).unwrap();
    }
    region.publish(FEED_OBJECT, junk + 8).unwrap();
    let v = MirrorView::from_fd(region.fd().try_clone_to_owned().unwrap()).unwrap();
    let mut out = Vec::new();
    assert!(v.link(1, &mut out).is_err());
    assert!(v.links(|_| true).is_err());
    assert!(v.ct_walk(&CtFilter::default(), |_, _| true).is_err());
    assert!(v.follow_now().is_err());
    // A file that is no region at all.
    let fd = rustix::fs::memfd_create("not-a-region", rustix::fs::MemfdFlags::empty()).unwrap();
    assert!(MirrorView::from_fd(fd).is_err());
}

/// A record that carries its own checksum: `[key, version, len, bytes…, sum]`.
fn checked_record(key: u64, version: u64) -> Vec<u8> {
    let n = 8 + (key * 7 + version * 13) % 200;
    let mut r = Vec::new();
    r.extend_from_slice(&key.to_ne_bytes());
    r.extend_from_slice(&version.to_ne_bytes());
    r.extend_from_slice(&n.to_ne_bytes());
    r.extend((0..n).map(|i| (key ^ version ^ i) as u8));
    let sum: u64 = r.iter().map(|b| u64::from(*b)).sum();
    r.extend_from_slice(&sum.to_ne_bytes());
    r
}

/// Whether `r` is a whole record of key `key` (never a torn or mixed one).
fn record_ok(r: &[u8], key: u64) -> bool {
    let w = |i: usize| {
        r.get(i * 8..i * 8 + 8)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
    };
    let (Some(k), Some(v), Some(n)) = (w(0), w(1), w(2)) else {
        return false;
    };
    k == key && r.len() as u64 == 24 + n + 8 && r == checked_record(k, v)
}

#[test]
fn readers_see_whole_entries_while_the_writer_churns() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MirrorView>();
    let m = Mirror::new(512, 1 << 12);
    let v = m.view();
    let map = m.map(TableId::Links);
    const KEYS: u64 = 64;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut out = Vec::new();
                let (mut hits, mut walks) = (0u64, 0u64);
                while !done.load(std::sync::atomic::Ordering::Relaxed) || walks == 0 {
                    for k in 1..=KEYS {
                        out.clear();
                        match v.get_words(TableId::Links, &[k], &mut out) {
                            Ok(Some(_)) => {
                                assert!(record_ok(&out, k), "torn record for {k}");
                                hits += 1;
                            }
                            Ok(None) | Err(ViewError::Shm(nlkit_shm::ShmError::Contended)) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                    let mut seen = 0;
                    let w = v
                        .walk(TableId::Links, |e, rec| {
                            assert!(record_ok(rec, e.keys[0][0]), "torn record in a walk");
                            seen += 1;
                            true
                        })
                        .unwrap();
                    assert!(w.visited <= 512 && seen <= 512);
                    walks += 1;
                }
                assert!(hits > 0);
            });
        }
        let mut slots = vec![None; KEYS as usize + 1];
        for round in 0..20_000u64 {
            let k = 1 + round * 31 % KEYS;
            let mut w = map.lock();
            match slots[k as usize] {
                None => {
                    slots[k as usize] =
                        Some(w.insert(&[&[k]], 0, &checked_record(k, round)).unwrap())
                }
                Some(slot) if round % 3 == 0 => {
                    w.remove(slot);
                    slots[k as usize] = None;
                }
                Some(slot) => w.replace(slot, round, &checked_record(k, round)).unwrap(),
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}
