//! The kernel socket API on the mirror: `nlkit_socket::Socket::connect_unix` and
//! `Pool::connect_unix`, with the typed layers of `nlkit-route` and `nlkit-conntrack`
//! unchanged, compared with the kernel's own answers.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::*;
use nlkit_conntrack::Tuple;
use nlkit_route::request::RouteFilter;
use nlkit_socket::{
    consistent_dump, DumpBuffer, Error, Pool, Protocol, Socket, SocketTransport, DEFAULT_ATTEMPTS,
};
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder, NfGenMsg, RtMsg};

/// Every route of both families, through the typed dump, as comparable text.
fn routes(sock: &mut Socket, filter: &RouteFilter) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for fam in nlkit_socket::dump::family_dumps() {
        nlkit_route::ops::dump_routes(sock, fam, filter, |r| {
            assert!(out.insert(format!("{:?}", r.to_owned())), "route twice");
            Ok(())
        })
        .unwrap();
    }
    out
}

/// Waits until the mirror's typed route dump equals the kernel's (addrconf may still add
/// IPv6 routes after the mirror's initial sync; the mirror follows by events).
fn assert_same_routes(kernel: &mut Socket, mirror: &mut Socket, filter: &RouteFilter) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (k, m) = (routes(kernel, filter), routes(mirror, filter));
        if k == m {
            return k.len();
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = k.difference(&m).take(5).collect();
            let stale: Vec<_> = m.difference(&k).take(5).collect();
            panic!("mirror routes differ: missing {missing:?}, stale {stale:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn route_dump_request(family: u8) -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETROUTE, NLM_F_DUMP, 0);
    req.header(&RtMsg {
        family,
        ..Default::default()
    });
    req.finish().unwrap();
    req
}

nlkit_testns::netns_test! {
    /// (a) the typed route dump on a mirror socket returns the kernel's routes, unfiltered and
    /// with a table filter; plus a batch of gets.
    fn typed_route_dump_matches_the_kernel() {
        let v = nlkit_testns::veth_pair("sa", "sb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        nlkit_testns::load_ipv4_routes(v.a_index, 1500, 254);
        nlkit_testns::load_ipv4_routes(v.a_index, 200, 1000);
        nlkit_testns::load_ipv6_routes(v.a_index, 300, 254);
        // Table 1000 in both families: the kernel refuses a filtered dump of a table that does
        // not exist (ENOENT), where the mirror answers with an empty dump.
        nlkit_testns::load_ipv6_routes(v.a_index, 100, 1000);
        let m = start("sock-routes", |_| {});
        let mut kernel = Socket::open(Protocol::Route).unwrap();
        let mut mirror = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        assert_eq!(mirror.transport(), SocketTransport::Unix);

        let all = assert_same_routes(&mut kernel, &mut mirror, &RouteFilter::default());
        assert!(all >= 2000, "only {all} routes");
        let table = RouteFilter { table: Some(1000), ..Default::default() };
        assert_eq!(assert_same_routes(&mut kernel, &mut mirror, &table), 300);
        let names = nlkit_route::ops::link_names(&mut mirror).unwrap();
        assert_eq!(names.index_of("sa"), Some(v.a_index));

        // A batch of gets: one reply each, matched by sequence number.
        let mut batch = MessageBuilder::new();
        for index in [1, v.a_index, v.b_index] {
            batch.begin(RTM_GETLINK, 0, 0);
            batch.header(&IfInfoMsg { index: index as i32, ..Default::default() });
            batch.finish().unwrap();
        }
        let replies = mirror.transact_batch(&mut batch).unwrap();
        assert_eq!(replies.len(), 3);
        for r in replies {
            assert_eq!(r.unwrap().len(), 1);
        }
        assert_eq!(mirror.stats().foreign_dropped, 0);
        assert!(mirror.is_clean());
    }

    /// (b) a conntrack get by tuple through `nlkit_conntrack::ops`, as from the kernel.
    fn conntrack_get_by_tuple() {
        nlkit_testns::load_conntrack(50, 7);
        let m = start("sock-ct", |_| {});
        assert!(m.mirrors_conntrack(), "ctnetlink works in test namespaces");
        let mut kernel = Socket::open(Protocol::Netfilter).unwrap();
        let mut mirror = Socket::connect_unix(m.socket_path(), Protocol::Netfilter).unwrap();
        // The 11th entry load_conntrack made: 10.200.0.1:1034 -> 10.201.0.1:53.
        let t = Tuple::udp(
            IpAddr::V4(Ipv4Addr::new(10, 200, 0, 1)),
            1034,
            IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
            53,
        );
        let from_kernel = nlkit_conntrack::ops::get(&mut kernel, &t, None).unwrap().unwrap();
        let from_mirror = nlkit_conntrack::ops::get(&mut mirror, &t, None).unwrap().unwrap();
        assert_eq!(from_mirror.orig, t);
        assert_eq!(from_mirror.orig, from_kernel.orig);
        assert_eq!(from_mirror.reply, from_kernel.reply);
        assert_eq!(from_mirror.mark, Some(7));
        // A tuple nobody created: ENOENT from the mirror, which ops::get reports as None.
        let absent = Tuple::udp(
            IpAddr::V4(Ipv4Addr::new(10, 200, 9, 9)),
            9,
            IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
            53,
        );
        assert_eq!(nlkit_conntrack::ops::get(&mut mirror, &absent, None).unwrap(), None);
        assert!(mirror.is_clean());
    }

    /// (c) a shared dump read by two threads over a pool of mirror connections returns every
    /// route exactly once, consistent, and the connection goes back to the pool.
    fn shared_dump_over_a_mirror_pool() {
        let v = nlkit_testns::veth_pair("pa", "pb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 5000, 254);
        let m = start("sock-pool", |_| {});
        let mut kernel = Socket::open(Protocol::Route).unwrap();
        let mut expected = BTreeSet::new();
        kernel
            .dump(&mut route_dump_request(AF_INET), |r| {
                expected.insert(r.bytes()[16..].to_vec());
                Ok::<(), Error>(())
            })
            .unwrap();
        assert!(expected.len() >= 5000);

        let pool = Pool::connect_unix(m.socket_path(), Protocol::Route);
        for _ in 0..2 {
            let got = consistent_dump(&pool, &route_dump_request(AF_INET), DEFAULT_ATTEMPTS, |dump, _| {
                let per_thread: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
                    let workers: Vec<_> = (0..2)
                        .map(|_| s.spawn(|| {
                            let mut buf = DumpBuffer::new();
                            let mut mine = Vec::new();
                            while let Some(r) = dump.next(&mut buf)? {
                                assert_eq!(r.ty(), RTM_NEWROUTE);
                                mine.push(r.bytes()[16..].to_vec());
                            }
                            Ok::<_, Error>(mine)
                        }))
                        .collect();
                    workers.into_iter().map(|w| w.join().unwrap()).collect::<Result<_, _>>()
                })?;
                Ok(per_thread)
            })
            .unwrap();
            assert!(got.consistent);
            let total: usize = got.value.iter().map(Vec::len).sum();
            let set: BTreeSet<Vec<u8>> = got.value.into_iter().flatten().collect();
            assert_eq!(total, set.len(), "a route was delivered twice");
            assert_eq!(set, expected);
            assert_eq!(pool.idle(), 1, "the clean connection is reused");
        }
    }

    /// (d) errors are typed `Error::Kernel`s carrying the mirror's extended-ack text (and a
    /// relayed kernel write error keeps the kernel's).
    fn errors_are_typed_with_the_mirror_text() {
        let v = nlkit_testns::veth_pair("ea", "eb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        let m = start("sock-errors", |_| {});
        let mut mirror = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();

        // A dump of a family the mirror does not keep.
        let err = mirror
            .dump(&mut route_dump_request(AF_PACKET), |_| Ok::<(), Error>(()))
            .unwrap_err();
        match &err {
            Error::Kernel(k) => {
                assert_eq!(k.errno, libc::EAFNOSUPPORT);
                assert_eq!(k.msg.as_deref(), Some("address family 17 is not mirrored"));
            }
            other => panic!("expected a kernel error, got {other:?}"),
        }
        assert_eq!(err.to_string(), "Error: address family 17 is not mirrored.");

        // A message type the mirror does not serve.
        let mut req = MessageBuilder::new();
        req.begin(0x7f0, 0, 0);
        req.header(&NfGenMsg::default());
        req.finish().unwrap();
        match mirror.transact(&mut req) {
            Err(Error::Kernel(k)) => {
                assert_eq!(k.errno, libc::EOPNOTSUPP);
                assert!(k.msg.as_deref().is_some_and(|t| t.contains("not supported by the mirror")), "{k:?}");
            }
            other => panic!("expected EOPNOTSUPP, got {other:?}"),
        }

        // A request larger than the mirror takes: EMSGSIZE, matched to the request.
        let mut huge = MessageBuilder::new();
        huge.begin(RTM_GETLINK, 0, 0);
        huge.header(&IfInfoMsg::default());
        for _ in 0..2 {
            huge.attr_bytes(IFLA_IFALIAS, &[b'x'; 40_000]);
        }
        huge.finish().unwrap();
        assert!(huge.len() > nlkit_socket::UNIX_MAX_REQUEST);
        match mirror.transact(&mut huge) {
            Err(Error::Kernel(k)) => assert_eq!(k.errno, libc::EMSGSIZE, "{k:?}"),
            other => panic!("expected EMSGSIZE, got {other:?}"),
        }

        // A missing link: the mirror's ENODEV.
        let missing = nlkit_route::ops::get_link(&mut mirror, nlkit_route::request::LinkRef::Index(9999));
        assert_eq!(missing.unwrap_err().errno(), Some(libc::ENODEV));

        // A write relayed to the kernel: the kernel's own error and text come back.
        let bad = nlkit_route::Route::new("10.99.0.2".parse().unwrap(), 32)
            .via("192.0.2.1".parse().unwrap());
        match nlkit_route::ops::add_route(&mut mirror, &bad, nlkit_route::request::RouteOp::Add) {
            Err(Error::Kernel(k)) => {
                assert_eq!(k.errno, libc::ENETUNREACH, "{k:?}");
                assert!(k.msg.is_some(), "ext-ack text expected: {k:?}");
            }
            other => panic!("expected ENETUNREACH, got {other:?}"),
        }
        assert!(mirror.is_clean());
        // Joining a group follows the mirror's change feed; a following socket is not pooled.
        mirror.join_group(RTNLGRP_LINK).expect("join the feed's link group");
        assert!(!mirror.is_clean());
    }
}
