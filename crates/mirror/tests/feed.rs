//! The mirror's change feed against the real kernel: snapshot then follow under churn,
//! resume, resync required, a stalled subscriber's overrun, synthesized deletions, forged
//! events.
//!
//! Sizes are scaled for CI (2 cores): [`CHURN`] route changes by default, the 100,000
//! with `NLKIT_MIRROR_CHURN=100000`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::*;
use nlkit_mirror::{Mirror, TableId};
use nlkit_socket::feed::{FeedMark, MirrorStart, Subscribed};
use nlkit_socket::{Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::feed::{FEED_ATTR_LEN, FEED_OVERRUN};
use nlkit_wire::{ErrorMsg, IfInfoMsg, Message, MessageBuilder, Messages, NdMsg, NfGenMsg, RtMsg};

/// Route changes of the churn test by default (the 100,000 with `NLKIT_MIRROR_CHURN`).
const CHURN: u32 = 20_000;

const RTNL_GROUPS: [u32; 6] = [
    RTNLGRP_LINK,
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_NEIGH,
];
const CT_GROUPS: [u32; 3] = [
    NFNLGRP_CONNTRACK_NEW,
    NFNLGRP_CONNTRACK_UPDATE,
    NFNLGRP_CONNTRACK_DESTROY,
];

/// The table a (kernel-format) message belongs to.
fn table_of(m: &Message<'_>) -> Option<TableId> {
    let fam = |b: Option<&u8>| b.copied();
    let p = m.payload();
    Some(match m.ty() {
        RTM_NEWLINK | RTM_DELLINK => TableId::Links,
        RTM_NEWADDR | RTM_DELADDR => match fam(p.first())? {
            AF_INET => TableId::Addrs4,
            _ => TableId::Addrs6,
        },
        RTM_NEWROUTE | RTM_DELROUTE => match fam(p.first())? {
            AF_INET => TableId::Routes4,
            _ => TableId::Routes6,
        },
        RTM_NEWNEIGH | RTM_DELNEIGH => match fam(p.first())? {
            AF_INET => TableId::Neigh4,
            _ => TableId::Neigh6,
        },
        t if t >> 8 == u16::from(NFNL_SUBSYS_CTNETLINK) => TableId::Conntrack,
        _ => return None,
    })
}

fn is_del(m: &Message<'_>) -> bool {
    matches!(
        m.ty(),
        RTM_DELLINK | RTM_DELADDR | RTM_DELROUTE | RTM_DELNEIGH
    ) || m.ty() == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE)
}

/// `m` without its feed trailer (what the kernel sent).
fn strip(m: &Message<'_>) -> Vec<u8> {
    let mut b = m.bytes().to_vec();
    if FeedMark::of(&b).is_some() {
        b.truncate(b.len() - FEED_ATTR_LEN);
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_ne_bytes());
    }
    b
}

/// A client's copy of the mirror, built from a snapshot and the events after it.
#[derive(Default)]
struct Replica {
    /// Per table: identity → (the `entry` key, its compared content).
    tables: BTreeMap<TableId, BTreeMap<String, (String, Vec<u8>)>>,
    last: u64,
    epoch: u64,
    events: u64,
    synthesized_route_dels: u64,
    seen: BTreeSet<u64>,
}

impl Replica {
    fn apply(&mut self, m: &Message<'_>) {
        let Some(t) = table_of(m) else { return };
        let bytes = strip(m);
        let Ok((plain, _)) = Message::parse(&bytes) else {
            return;
        };
        let Some((k, v)) = entry(t, &plain) else {
            return;
        };
        let tab = self.tables.entry(t).or_default();
        // Keys of `entry` carry the content for routes: a route is its key and its device.
        let id = match t {
            TableId::Routes4 | TableId::Routes6 => {
                let oif = plain
                    .family_header::<RtMsg>()
                    .ok()
                    .and_then(|(_, a)| a.find(RTA_OIF).and_then(Result::ok))
                    .and_then(|a| a.u32().ok());
                format!("{:?} oif {oif:?}", nlkit_mirror::RouteKey::from_msg(&plain))
            }
            _ => k.clone(),
        };
        if is_del(m) {
            tab.remove(&id);
        } else if t == TableId::Conntrack && tab.contains_key(&id) {
            // An update of a known connection: identity only is compared.
        } else {
            tab.insert(id, (k, v));
        }
    }

    /// Applies the events of one datagram; returns an overrun mark if one came.
    fn apply_events(&mut self, bytes: &[u8]) -> Option<FeedMark> {
        for m in Messages::new(bytes) {
            let m = m.expect("well-formed feed");
            let mark = FeedMark::of(m.bytes()).expect("every feed message has its position");
            if m.ty() == NLMSG_ERROR {
                let e = ErrorMsg::parse(&m).unwrap();
                assert_eq!(e.errno, libc::ENOBUFS, "feed error");
                assert_ne!(mark.flags & FEED_OVERRUN, 0);
                return Some(mark);
            }
            assert_eq!(mark.epoch, self.epoch, "one epoch");
            assert!(mark.position > self.last || self.seen.contains(&mark.position));
            if mark.position != self.last {
                assert!(
                    self.seen.insert(mark.position),
                    "event {} twice",
                    mark.position
                );
            }
            self.last = mark.position;
            self.events += 1;
            if mark.is_synthesized() && m.ty() == RTM_DELROUTE {
                self.synthesized_route_dels += 1;
            }
            self.apply(&m);
        }
        None
    }
}

/// Subscribes `sock` to `groups` with a snapshot; the replica starts from it.
fn snapshot_follow(sock: &mut Socket, groups: &[u32]) -> Replica {
    let mut r = Replica::default();
    let mut records = Vec::new();
    let sub = sock
        .mirror_subscribe(groups, MirrorStart::Snapshot, |m| {
            records.push(m.bytes().to_vec())
        })
        .expect("snapshot");
    let Subscribed::Following(at) = sub else {
        panic!("snapshot answered {sub:?}")
    };
    for rec in &records {
        for m in Messages::new(rec).flatten() {
            r.apply(&m);
        }
    }
    r.last = at.position;
    r.epoch = at.epoch;
    r
}

/// Reads events until `done(replica)` or `timeout`; returns an overrun mark if one came.
fn read_until(
    sock: &mut Socket,
    r: &mut Replica,
    timeout: Duration,
    mut done: impl FnMut(&Replica) -> bool,
) -> Option<FeedMark> {
    set_recv_timeout(sock, Duration::from_millis(200));
    let deadline = Instant::now() + timeout;
    let mut buf = RecvBuffer::new();
    while !done(r) && Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(()) => {
                if let Some(m) = r.apply_events(buf.unread()) {
                    return Some(m);
                }
            }
            Err(nlkit_socket::Error::Sys { .. }) => {} // the timeout: check again
            Err(e) => panic!("feed read: {e}"),
        }
    }
    None
}

/// Whether the replica's tables equal fresh kernel dumps of `tables`.
fn equals_kernel(r: &Replica, tables: &[TableId]) -> Result<(), String> {
    for &t in tables {
        let k = kernel_snapshot(t);
        let mine: Snapshot = r
            .tables
            .get(&t)
            .map(|tab| tab.values().cloned().collect())
            .unwrap_or_default();
        if k != mine {
            let first = k.iter().find(|(key, v)| mine.get(*key) != Some(*v));
            let detail = first.map(|(key, v)| format!("kernel {v:?} mine {:?}", mine.get(key)));
            return Err(format!("{t:?}: {} {detail:?}", diff(&k, &mine)));
        }
    }
    Ok(())
}

/// Reads until the replica equals the kernel in `tables` (bounded); panics with the diff.
#[track_caller]
fn converge(sock: &mut Socket, r: &mut Replica, tables: &[TableId], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut last_err = String::new();
        let overrun = read_until(sock, r, Duration::from_millis(500), |_| false);
        assert_eq!(overrun, None, "overrun while converging (last {})", r.last);
        let ok = match equals_kernel(r, tables) {
            Ok(()) => true,
            Err(e) => {
                last_err = e;
                false
            }
        };
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "subscriber differs: {last_err}");
    }
}

/// Adds (or deletes) permanent IPv4 neighbours 10.0.x.y on `ifindex`.
fn neighbours(ifindex: u32, add: bool, range: std::ops::Range<u32>) {
    let mut k = kernel(Protocol::Route);
    let ids: Vec<u32> = range.collect();
    for chunk in ids.chunks(256) {
        let mut b = MessageBuilder::new();
        for (i, n) in chunk.iter().enumerate() {
            let (ty, flags) = if add {
                (RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE)
            } else {
                (RTM_DELNEIGH, NLM_F_REQUEST)
            };
            b.begin(ty, flags, 3_000_000 + i as u32);
            b.header(&NdMsg {
                family: AF_INET,
                ifindex: ifindex as i32,
                state: NUD_PERMANENT,
                ..Default::default()
            });
            let ip = Ipv4Addr::from(0x0a00_1000 + n);
            b.attr_bytes(NDA_DST, &ip.octets());
            if add {
                b.attr_bytes(NDA_LLADDR, &[2, 0, 0, 0, (n >> 8) as u8, *n as u8]);
            }
            b.finish().unwrap();
        }
        let _ = k.transact_batch(&mut b).expect("neighbour batch");
    }
}

/// The tables the subscribers' groups cover: links through IPv6 neighbours.
fn route_tables() -> Vec<TableId> {
    TableId::ALL[..=TableId::Neigh6 as usize].to_vec()
}

/// The feed log's byte bound in the stalled-subscriber test (the churn's events are several
/// times more).
const STALL_FEED_BYTES: usize = 2 << 20;
/// Allowance for the allocator's noise on top of that bound (arenas, retained free memory):
/// well under what buffering the stalled subscriber's missed events would cost.
const STALL_RSS_SLACK: usize = 2 << 20;

/// The resident set of this process (`VmRSS`), in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

fn dsts(base: u32, n: u32) -> Vec<IpAddr> {
    (base..base + n).map(|i| IpAddr::V4(v4(i))).collect()
}

nlkit_testns::netns_test! {
    /// Eight subscribers take snapshot+follow at different moments of a churn of routes,
    /// neighbours, link flaps and conntrack entries; each ends equal to fresh kernel dumps.
    fn subscribers_snapshot_during_churn_end_equal() {
        let v = nlkit_testns::veth_pair("fa", "fb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 16);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        let m = start("feed-churn", |_| {});
        let n = churn_size(CHURN);
        // Neighbour changes: 1.5 · n / 20 per round, 30,000 in all at the size.
        let nn = n / 20;
        let ct_on = m.mirrors_conntrack();
        let mut subs: Vec<(Socket, Replica, bool)> = Vec::new();
        let subscribe = |subs: &mut Vec<(Socket, Replica, bool)>, ct: bool| {
            let (proto, groups) = if ct {
                (Protocol::Netfilter, &CT_GROUPS[..])
            } else {
                (Protocol::Route, &RTNL_GROUPS[..])
            };
            let mut s = Socket::connect_unix(m.socket_path(), proto).unwrap();
            let r = snapshot_follow(&mut s, groups);
            subs.push((s, r, ct));
        };
        subscribe(&mut subs, false);
        if ct_on {
            subscribe(&mut subs, true);
        }
        std::thread::scope(|s| {
            let churn = s.spawn(|| {
                let mut k = kernel(Protocol::Route);
                for round in 0..4 {
                    let d = dsts(round * n / 4, n / 4);
                    assert_eq!(routes(&mut k, true, &d, v.a_index, 254), 0);
                    neighbours(v.a_index, true, 0..nn);
                    set_link(v.b_index, false);
                    set_link(v.b_index, true);
                    assert_eq!(routes(&mut k, false, &d[..d.len() / 2], v.a_index, 254), 0);
                    neighbours(v.a_index, false, 0..nn / 2);
                }
            });
            let ct = s.spawn(|| {
                if ct_on {
                    let mut ct = kernel(Protocol::Netfilter);
                    assert_eq!(conntrack(&mut ct, true, 0..n, 5), 0);
                    assert_eq!(conntrack(&mut ct, false, 0..n / 2, 5), 0);
                }
            });
            // Subscribe at different moments while both churn.
            while subs.len() < 8 && !(churn.is_finished() && ct.is_finished()) {
                let want_ct = ct_on && subs.len() % 3 == 2;
                subscribe(&mut subs, want_ct);
                // Keep the early subscribers reading meanwhile.
                for (sock, r, _) in subs.iter_mut() {
                    read_until(sock, r, Duration::from_millis(20), |_| false);
                }
            }
        });
        while subs.len() < 8 {
            let want_ct = ct_on && subs.len() % 3 == 2;
            subscribe(&mut subs, want_ct);
        }
        let mut all = route_tables();
        if ct_on {
            all.push(TableId::Conntrack);
        }
        assert_converges(&m, &all, Duration::from_secs(40));
        for (sock, r, ct) in subs.iter_mut() {
            let tables = if *ct { vec![TableId::Conntrack] } else { route_tables() };
            converge(sock, r, &tables, Duration::from_secs(20));
        }
    }

    /// A subscriber that goes away resumes from its last position: no event twice, and it
    /// ends equal; a position that has left the log (or another epoch) is told to resync.
    fn resume_and_resync_required() {
        let v = nlkit_testns::veth_pair("ra", "rb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 16);
        let m = start("feed-resume", |c| c.feed_max_events = 20_000);
        let mut k = kernel(Protocol::Route);
        let mut s = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let mut r = snapshot_follow(&mut s, &RTNL_GROUPS);
        assert_eq!(routes(&mut k, true, &dsts(0, 3000), v.a_index, 254), 0);
        // Read part of the stream, then "crash".
        read_until(&mut s, &mut r, Duration::from_secs(20), |r| r.events >= 1000);
        assert!(r.events >= 1000);
        drop(s);
        assert_eq!(routes(&mut k, true, &dsts(3000, 3000), v.a_index, 254), 0);
        assert_eq!(routes(&mut k, false, &dsts(0, 1000), v.a_index, 254), 0);
        let mut s = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let resumed = s
            .mirror_subscribe(
                &RTNL_GROUPS,
                MirrorStart::Resume { epoch: r.epoch, position: r.last },
                |_| {},
            )
            .unwrap();
        assert_eq!(resumed, Subscribed::Following(FeedMark {
            position: r.last,
            epoch: r.epoch,
            flags: nlkit_wire::feed::FEED_SUBSCRIBED,
        }));
        converge(&mut s, &mut r, &route_tables(), Duration::from_secs(30));
        // Another epoch: resync.
        let mut s2 = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let other = s2
            .mirror_subscribe(
                &RTNL_GROUPS,
                MirrorStart::Resume { epoch: r.epoch ^ 1, position: r.last },
                |_| {},
            )
            .unwrap();
        assert!(matches!(other, Subscribed::ResyncRequired(_)), "{other:?}");
        // Push the first positions out of the 20,000-event log: resync.
        assert_eq!(routes(&mut k, true, &dsts(10_000, 25_000), v.a_index, 254), 0);
        assert!(wait_until(Duration::from_secs(30), || {
            m.tables().len(TableId::Routes4) >= 30_000
        }));
        let gone = s2
            .mirror_subscribe(
                &RTNL_GROUPS,
                MirrorStart::Resume { epoch: r.epoch, position: 1 },
                |_| {},
            )
            .unwrap();
        let Subscribed::ResyncRequired(head) = gone else {
            panic!("old position answered {gone:?}")
        };
        assert_eq!(head.epoch, r.epoch);
        assert!(head.position > 20_000);
        // The resynced client takes a new snapshot and is equal.
        let mut r2 = snapshot_follow(&mut s2, &RTNL_GROUPS);
        converge(&mut s2, &mut r2, &route_tables(), Duration::from_secs(30));
    }

    /// A subscriber that never reads: the others finish and are equal; the mirror's memory
    /// stays within the feed log's configured bound; the stalled one gets an overrun notice
    /// at the exact position of the last event it was sent, then resumes (or, its position
    /// gone from the small log, is told to resync) and ends equal.
    fn stalled_subscriber_overruns_exactly() {
        let v = nlkit_testns::veth_pair("sa", "sb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 16);
        // The stalled one must miss more than the lag bound while its socket is full; a big
        // event buffer keeps the mirror from resyncing (whose changes land all at once).
        let m = start("feed-stall", |c| {
            c.feed_max_lag = 10_000;
            c.feed_max_bytes = STALL_FEED_BYTES;
            c.event_rcvbuf = 32 << 20;
            // A feed ring the warm-up fills: its pages count in the RSS once written.
            c.feed_ring_bytes = 1 << 20;
        });
        let mut s = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let mut r = snapshot_follow(&mut s, &RTNL_GROUPS);
        let n = churn_size(CHURN);
        // Adds then deletes `n` routes while `s` reads; `s` ends with every event.
        let churn = |s: &mut Socket, r: &mut Replica| {
            for add in [true, false] {
                let want = r.events + u64::from(n);
                std::thread::scope(|sc| {
                    sc.spawn(|| {
                        let mut k = kernel(Protocol::Route);
                        assert_eq!(routes(&mut k, add, &dsts(0, n), v.a_index, 254), 0);
                    });
                    read_until(s, r, Duration::from_secs(30), |r| r.events >= want);
                });
            }
            assert_converges(&m, &route_tables(), Duration::from_secs(20));
            converge(s, r, &route_tables(), Duration::from_secs(30));
        };
        // Warm-up without the stalled one: the tables, the reader's replica and the log (2n
        // events, more than its bound) reach their working size, so what the stalled
        // subscriber costs shows as growth of the process's RSS (the mirror runs here).
        churn(&mut s, &mut r);
        let before = rss();
        let mut stalled = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let mut rs = snapshot_follow(&mut stalled, &RTNL_GROUPS);
        let sent = r.events;
        churn(&mut s, &mut r);
        let growth = rss().saturating_sub(before);
        eprintln!(
            "RSS growth with a stalled subscriber: {growth} bytes ({} events in the churn; log bound {STALL_FEED_BYTES})",
            r.events - sent
        );
        assert!(
            growth <= STALL_FEED_BYTES + STALL_RSS_SLACK,
            "the mirror's RSS grew by {growth} bytes with a stalled subscriber (bound {STALL_FEED_BYTES} + slack {STALL_RSS_SLACK})"
        );
        // Now the stalled one reads: what its socket held, then the overrun at its position.
        let mark = read_until(&mut stalled, &mut rs, Duration::from_secs(30), |_| false);
        let mark = mark.unwrap_or_else(|| panic!("no overrun notice: {} events, last {}", rs.events, rs.last));
        assert_eq!(mark.position, rs.last, "overrun at the last event sent");
        assert!(rs.events < u64::from(n));
        let again = stalled
            .mirror_subscribe(
                &RTNL_GROUPS,
                MirrorStart::Resume { epoch: mark.epoch, position: mark.position },
                |_| {},
            )
            .unwrap();
        match again {
            Subscribed::Following(_) => {}
            Subscribed::ResyncRequired(head) => {
                assert!(head.position > mark.position, "{head:?}");
                rs = snapshot_follow(&mut stalled, &RTNL_GROUPS);
            }
        }
        converge(&mut stalled, &mut rs, &route_tables(), Duration::from_secs(30));
    }

    /// Link down, then link delete, with 10,000 routes through that link: the kernel removes
    /// them silently; subscribers receive 10,000 synthesized deletions each time and end equal.
    fn link_down_and_delete_synthesize_route_deletions() {
        let v = nlkit_testns::veth_pair("la", "lb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 16);
        let m = start("feed-link", |_| {});
        let mut k = kernel(Protocol::Route);
        assert_eq!(routes(&mut k, true, &dsts(0, 10_000), v.a_index, 254), 0);
        assert!(wait_until(Duration::from_secs(20), || {
            m.tables().len(TableId::Routes4) >= 10_000
        }));
        let mut s = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let mut r = snapshot_follow(&mut s, &RTNL_GROUPS);
        let t0 = Instant::now();
        set_link(v.a_index, false);
        read_until(&mut s, &mut r, Duration::from_secs(20), |r| r.synthesized_route_dels >= 10_000);
        assert!(r.synthesized_route_dels >= 10_000, "{}", r.synthesized_route_dels);
        eprintln!("link down: {:?}", t0.elapsed());
        converge(&mut s, &mut r, &route_tables(), Duration::from_secs(20));
        set_link(v.a_index, true);
        assert_eq!(routes(&mut k, true, &dsts(0, 10_000), v.a_index, 254), 0);
        assert_converges(&m, &route_tables(), Duration::from_secs(20));
        converge(&mut s, &mut r, &route_tables(), Duration::from_secs(20));
        let before = r.synthesized_route_dels;
        nlkit_testns::delete_link(&v.a);
        read_until(&mut s, &mut r, Duration::from_secs(20), |r| {
            r.synthesized_route_dels >= before + 10_000
        });
        assert!(r.synthesized_route_dels >= before + 10_000);
        converge(&mut s, &mut r, &route_tables(), Duration::from_secs(20));
    }

    /// A userspace process sending Netlink messages to the mirror's event sockets' port ids:
    /// never applied (the sender's port id is not the kernel's).
    fn forged_events_are_not_applied() {
        let v = nlkit_testns::veth_pair("ga", "gb");
        let m = start("feed-forged", |_| {});
        // The mirror's event sockets are this namespace's route sockets with groups.
        let table = std::fs::read_to_string("/proc/net/netlink").unwrap();
        let ports: Vec<u32> = table
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(1) == Some(&"0") && f.get(3).is_some_and(|g| *g != "00000000"))
                    .then(|| f[2].parse().ok())
                    .flatten()
            })
            .collect();
        assert!(!ports.is_empty(), "no event socket found:\n{table}");
        let forger = kernel(Protocol::Route);
        let forged: Ipv4Addr = "10.99.0.1".parse().unwrap();
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWROUTE, NLM_F_CREATE, 1);
        b.header(&RtMsg {
            family: AF_INET,
            dst_len: 32,
            table: RT_TABLE_MAIN,
            protocol: RTPROT_STATIC,
            scope: RT_SCOPE_LINK,
            ty: RTN_UNICAST,
            ..Default::default()
        });
        b.attr_bytes(RTA_DST, &forged.octets());
        b.attr_u32(RTA_OIF, v.a_index);
        b.finish().unwrap();
        for p in &ports {
            let addr = rustix::net::netlink::SocketAddrNetlink::new(*p, 0);
            rustix::net::sendto(&forger, b.as_bytes(), rustix::net::SendFlags::empty(), &addr)
                .expect("send to the mirror's event socket");
        }
        // A real change after the forged ones: once it is mirrored, the forged would be too.
        let mut k = kernel(Protocol::Route);
        nlkit_testns::set_link_up(v.a_index);
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 16);
        assert_eq!(routes(&mut k, true, &dsts(0, 1), v.a_index, 254), 0);
        assert!(wait_until(Duration::from_secs(10), || {
            m.tables().routes[0].get_bytes(&route_key(v4(0))).is_some()
        }));
        assert!(m.tables().routes[0].get_bytes(&route_key(forged)).is_none());
        let _ = (IfInfoMsg::default(), NfGenMsg::default());
    }
}

fn route_key(dst: Ipv4Addr) -> nlkit_mirror::RouteKey {
    nlkit_mirror::RouteKey {
        table: 254,
        dst: dst.into(),
        dst_len: 32,
        src: Ipv4Addr::UNSPECIFIED.into(),
        src_len: 0,
        tos: 0,
        priority: 0,
    }
}

#[allow(dead_code)]
fn mirror_is(_: &Mirror) {}
