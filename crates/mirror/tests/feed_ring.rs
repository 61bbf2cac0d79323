//! The mirror's change feed in shared memory: a client maps the region read-only, follows the
//! feed ring with `FUTEX_WAIT`, and sees every change in order, with the same positions and
//! bytes as a socket subscriber.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::*;
use nlkit_mirror::TableId;
use nlkit_shm::{FeedReader, RegionView, ShmError};
use nlkit_socket::feed::{FeedMark, MirrorStart, Subscribed};
use nlkit_socket::{Protocol, RecvBuffer, Socket};
use nlkit_view::schema::{FeedKind, FeedTag, FEED_OBJECT};
use nlkit_wire::consts::*;
use nlkit_wire::feed::FEED_ATTR_LEN;
use nlkit_wire::{Message, Messages};

const GROUPS: [u32; 7] = [
    RTNLGRP_LINK,
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_NEIGH,
    RTNLGRP_NEXTHOP,
];

/// The tables `GROUPS` deliver: links through nexthops.
const TABLES: &[TableId] = TableId::ALL.split_at(TableId::Nexthops as usize + 1).0;

/// One change as a reader saw it: its tag (ring only) and its messages, feed trailers removed.
#[derive(Debug, Default)]
struct Change {
    tag: Option<FeedTag>,
    msgs: Vec<u8>,
}

/// `m` without its feed trailer (what the ring holds).
fn strip(m: &Message<'_>) -> Vec<u8> {
    let mut b = m.bytes().to_vec();
    if FeedMark::of(&b).is_some() {
        b.truncate(b.len() - FEED_ATTR_LEN);
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_ne_bytes());
    }
    b
}

/// The message types of table `t`'s changes (new, del).
fn types(t: TableId) -> (u16, u16) {
    match t {
        TableId::Links => (RTM_NEWLINK, RTM_DELLINK),
        TableId::Addrs4 | TableId::Addrs6 => (RTM_NEWADDR, RTM_DELADDR),
        TableId::Routes4 | TableId::Routes6 => (RTM_NEWROUTE, RTM_DELROUTE),
        TableId::Neigh4 | TableId::Neigh6 => (RTM_NEWNEIGH, RTM_DELNEIGH),
        TableId::Nexthops => (RTM_NEWNEXTHOP, RTM_DELNEXTHOP),
        TableId::Rules4 | TableId::Rules6 => (RTM_NEWRULE, RTM_DELRULE),
        TableId::Conntrack => (
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE),
        ),
    }
}

/// Follows the ring from `from` until `done` or `timeout`; every entry read is checked and
/// kept.
fn follow_ring(
    r: &FeedReader<'_, RegionView>,
    epoch: u64,
    from: u64,
    ring: &mut BTreeMap<u64, Change>,
    timeout: Duration,
    mut done: impl FnMut(&BTreeMap<u64, Change>) -> bool,
) {
    let deadline = Instant::now() + timeout;
    let mut pos = ring.keys().next_back().map_or(from, |p| p + 1);
    let mut out = Vec::new();
    while !done(ring) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if !r.wait(pos, Some(left)).unwrap() {
            continue;
        }
        out.clear();
        let e = match r.read(pos, &mut out) {
            Ok(Some(e)) => e,
            Ok(None) => panic!("position {pos} waited for, not published"),
            Err(e @ ShmError::Overrun { .. }) => panic!("the ring is large enough: {e}"),
            Err(e) => panic!("ring entry {pos}: {e}"),
        };
        let tag = FeedTag::from_word(e.tag).expect("a valid tag");
        assert_eq!(tag.epoch, epoch as u32, "entry {pos}'s epoch bits");
        assert!(!tag.truncated);
        let first = Message::parse(&out).expect("kernel-format messages").0;
        let (new, del) = types(tag.table);
        let want = if tag.kind == FeedKind::Del { del } else { new };
        assert_eq!(first.ty(), want, "entry {pos}: {tag:?}");
        for m in Messages::new(&out) {
            let m = m.unwrap();
            assert_eq!((m.header().seq, m.header().pid), (0, 0), "normalised");
        }
        ring.insert(
            pos,
            Change {
                tag: Some(tag),
                msgs: out.clone(),
            },
        );
        pos += 1;
    }
}

/// Reads the socket subscription until its last position reaches `until` or `timeout`.
fn follow_socket(
    s: &mut Socket,
    epoch: u64,
    changes: &mut BTreeMap<u64, Change>,
    until: u64,
    timeout: Duration,
) {
    set_recv_timeout(s, Duration::from_millis(200));
    let deadline = Instant::now() + timeout;
    let mut buf = RecvBuffer::new();
    let mut last = changes.keys().next_back().copied().unwrap_or(0);
    while last < until && Instant::now() < deadline {
        match s.recv(&mut buf) {
            Ok(()) => {
                for m in Messages::new(buf.unread()) {
                    let m = m.expect("well-formed feed");
                    let mark = FeedMark::of(m.bytes()).expect("a feed position");
                    assert_eq!(mark.epoch, epoch);
                    assert!(mark.position >= last, "in order");
                    last = mark.position;
                    changes
                        .entry(mark.position)
                        .or_default()
                        .msgs
                        .extend(strip(&m));
                }
            }
            Err(nlkit_socket::Error::Sys { .. }) => {} // the timeout: check again
            Err(e) => panic!("feed read: {e}"),
        }
    }
}

fn count(ring: &BTreeMap<u64, Change>, t: TableId, kind: FeedKind) -> usize {
    ring.values()
        .filter(|c| c.tag.is_some_and(|g| g.table == t && g.kind == kind))
        .count()
}

nlkit_testns::netns_test! {
    /// Addresses, 300 routes added and 100 deleted, a link taken down (its routes go with
    /// synthesized deletions): the ring, read through a read-only mapping of the region,
    /// holds every change once, in order, at the positions and with the bytes the socket
    /// subscriber receives.
    fn ring_matches_the_socket_feed() {
        let v = nlkit_testns::veth_pair("ra", "rb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 16);
        let m = start("feed-ring", |c| c.feed_ring_bytes = 4 << 20);
        let mut s = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let sub = s.mirror_subscribe(&GROUPS, MirrorStart::Now, |_| {}).unwrap();
        let Subscribed::Following(at) = sub else { panic!("subscribe answered {sub:?}") };

        let view = RegionView::map(m.region_fd().try_clone_to_owned().unwrap()).unwrap();
        let r = FeedReader::open(&view, view.find(FEED_OBJECT).unwrap()).unwrap();
        assert_eq!(r.stamp().unwrap(), at.epoch, "the ring's stamp is the feed's epoch");
        assert!(r.next_pos().unwrap() <= at.position + 1);

        let mut k = kernel(Protocol::Route);
        nlkit_testns::add_addr(v.a_index, "10.1.0.1".parse().unwrap(), 16);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        let dsts: Vec<IpAddr> = (0..300u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + i)))
            .collect();
        assert_eq!(routes(&mut k, true, &dsts, v.a_index, 254), 0);
        assert_eq!(routes(&mut k, false, &dsts[..100], v.a_index, 254), 0);

        let mut ring = BTreeMap::new();
        let from = at.position + 1;
        follow_ring(&r, at.epoch, from, &mut ring, Duration::from_secs(30), |ring| {
            count(ring, TableId::Routes4, FeedKind::New) >= 300
                && count(ring, TableId::Routes4, FeedKind::Del) >= 100
                && count(ring, TableId::Addrs6, FeedKind::New) >= 1
        });
        assert!(count(&ring, TableId::Routes4, FeedKind::Del) >= 100, "ring: {} entries", ring.len());
        assert!(count(&ring, TableId::Addrs6, FeedKind::New) >= 1);
        // The link goes down: the kernel drops its remaining routes silently; the mirror
        // synthesizes their deletions.
        nlkit_testns::ip(&["link", "set", &v.a, "down"]);
        follow_ring(&r, at.epoch, from, &mut ring, Duration::from_secs(30), |ring| {
            ring.values()
                .filter(|c| c.tag.is_some_and(|g| {
                    g.table == TableId::Routes4 && g.kind == FeedKind::Del && g.synthesized
                }))
                .count()
                >= 200
        });
        let last = *ring.keys().next_back().unwrap();
        assert_eq!(
            ring.keys().copied().collect::<Vec<_>>(),
            (from..=last).collect::<Vec<_>>(),
            "every position once, in order"
        );

        let mut sock = BTreeMap::new();
        follow_socket(&mut s, at.epoch, &mut sock, last, Duration::from_secs(30));
        let mut compared = 0;
        for (pos, c) in &ring {
            let tag = c.tag.unwrap();
            match sock.get(pos) {
                Some(sc) => {
                    assert_eq!(sc.msgs, c.msgs, "position {pos} ({tag:?}): same bytes");
                    compared += 1;
                }
                None => assert!(!TABLES.contains(&tag.table), "position {pos} ({tag:?}) not on the socket"),
            }
        }
        for pos in sock.keys() {
            assert!(*pos > last || ring.contains_key(pos), "socket position {pos} not in the ring");
        }
        eprintln!("ring: {} entries from {from}, {compared} compared with the socket", ring.len());
        assert!(compared >= 600, "{compared} changes compared");
    }

    /// A client that maps the ring after changes reads the oldest entries the ring still
    /// holds; a tiny ring reports what it overwrote as overrun, never wrong bytes.
    fn small_ring_reports_overrun() {
        let v = nlkit_testns::veth_pair("oa", "ob");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 16);
        let m = start("feed-ring-small", |c| c.feed_ring_bytes = 16 << 10);
        let view = RegionView::map(m.region_fd().try_clone_to_owned().unwrap()).unwrap();
        let r = FeedReader::open(&view, view.find(FEED_OBJECT).unwrap()).unwrap();
        let first = r.next_pos().unwrap();
        let mut k = kernel(Protocol::Route);
        let dsts: Vec<IpAddr> = (0..500u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + i)))
            .collect();
        assert_eq!(routes(&mut k, true, &dsts, v.a_index, 254), 0);
        assert!(wait_until(Duration::from_secs(30), || {
            r.next_pos().unwrap() >= first + 500
        }));
        let mut out = Vec::new();
        assert!(matches!(r.read(first, &mut out), Err(ShmError::Overrun { .. })));
        let newest = r.next_pos().unwrap() - 1;
        let e = r.read(newest, &mut out).unwrap().unwrap();
        let tag = FeedTag::from_word(e.tag).unwrap();
        assert_eq!((tag.table, tag.kind), (TableId::Routes4, FeedKind::New));
        assert_eq!(Message::parse(&out).unwrap().0.ty(), RTM_NEWROUTE);
    }
}
