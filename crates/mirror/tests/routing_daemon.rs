//! A routing daemon's use of nexthop objects: 10,000 routes over 100 nexthop groups, all
//! groups sharing their members. Replacing a group moves its routes, and replacing a member
//! moves all 10,000 routes, each in one write; the kernel sends no route notification for
//! them, and the mirror still ends equal to the kernel (routes and nexthops).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use nlkit_mirror::TableId;
use nlkit_route::nexthop::GroupMember;
use nlkit_route::request::{self, RouteOp};
use nlkit_route::{ops, NexthopObject, Route, RouteView};
use nlkit_socket::{Protocol, Socket};
use nlkit_testns::ip;
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

const ROUTES: u32 = 10_000;
const GROUPS: u32 = 100;
/// Group ids start here; member (single) nexthops are 1..=4.
const GROUP_BASE: u32 = 1000;
const TABLES: [TableId; 2] = [TableId::Routes4, TableId::Nexthops];

fn gw(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

/// Route `i`: 10.100.x.y/32 over group `GROUP_BASE + i % GROUPS`.
fn route(i: u32) -> Route {
    let dst = Ipv4Addr::from(0x0a64_0000 + i);
    Route::new(dst.into(), 32).nhid(GROUP_BASE + i % GROUPS)
}

/// Installs every route by `nhid`, in batches through `transact_batch`.
fn install(sock: &mut Socket) {
    for chunk in (0..ROUTES).collect::<Vec<_>>().chunks(500) {
        let mut b = MessageBuilder::new();
        for &i in chunk {
            request::add_route(&mut b, i, &route(i), RouteOp::Add).unwrap();
        }
        for r in sock.transact_batch(&mut b).unwrap() {
            r.unwrap();
        }
    }
}

/// How many main-table routes of the kernel go through gateway `g` (in their nexthops).
fn routes_via(sock: &mut Socket, g: IpAddr) -> usize {
    let mut n = 0;
    ops::dump_routes(
        sock,
        AF_INET,
        &request::RouteFilter::main(),
        |r: RouteView<'_>| {
            if r.nh_id().is_some() && r.nexthops().any(|h| h.gateway == Some(g)) {
                n += 1;
            }
            Ok(())
        },
    )
    .unwrap();
    n
}

nlkit_testns::netns_test! {
    fn group_replace_moves_every_route_in_one_write() {
        let v = nlkit_testns::veth_pair("ra", "rb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        let mut sock = Socket::open(Protocol::Route).unwrap();
        for id in 1..=4u8 {
            let nh = NexthopObject::via(u32::from(id), gw(id + 1)).dev(v.a_index);
            ops::add_nexthop(&mut sock, &nh, false).unwrap();
        }
        let pair = [GroupMember::new(1), GroupMember::new(2)];
        for g in 0..GROUPS {
            ops::add_nexthop(&mut sock, &NexthopObject::group(GROUP_BASE + g, &pair), false)
                .unwrap();
        }
        let m = start("daemon", |_| {});
        install(&mut sock);
        assert_converges(&m, &TABLES, Duration::from_secs(20));
        assert!(m.tables().len(TableId::Routes4) >= ROUTES as usize);
        assert_eq!(m.tables().len(TableId::Nexthops), 4 + GROUPS as usize);
        assert_eq!(routes_via(&mut sock, gw(2)), ROUTES as usize);

        // One write: group 1000 now uses members 3 and 4; its 100 routes follow.
        let moved = [GroupMember::new(3), GroupMember::new(4).weight(2)];
        ops::add_nexthop(&mut sock, &NexthopObject::group(GROUP_BASE, &moved), true).unwrap();
        assert_eq!(routes_via(&mut sock, gw(4)), (ROUTES / GROUPS) as usize);
        assert_converges(&m, &TABLES, Duration::from_secs(20));

        // One write: member 1 (in 99 groups) gets another gateway; 9,900 routes follow.
        let nh = NexthopObject::via(1, "10.0.0.9".parse().unwrap()).dev(v.a_index);
        ops::add_nexthop(&mut sock, &nh, true).unwrap();
        assert_eq!(routes_via(&mut sock, gw(9)), (ROUTES - ROUTES / GROUPS) as usize);
        assert_converges(&m, &TABLES, Duration::from_secs(20));

        // Every group over members 3/4: all 10,000 routes move, one write per group; then a
        // replace of member 3 moves all 10,000 in one write.
        for g in 1..GROUPS {
            ops::add_nexthop(&mut sock, &NexthopObject::group(GROUP_BASE + g, &moved), true)
                .unwrap();
        }
        let nh = NexthopObject::via(3, "10.0.0.7".parse().unwrap()).dev(v.a_index);
        ops::add_nexthop(&mut sock, &nh, true).unwrap();
        assert_eq!(routes_via(&mut sock, gw(7)), ROUTES as usize);
        assert_converges(&m, &TABLES, Duration::from_secs(20));

        // Deleting a group removes its routes, silently in the kernel.
        ops::del_nexthop(&mut sock, GROUP_BASE + 5).unwrap();
        assert_eq!(routes_via(&mut sock, gw(7)), (ROUTES - ROUTES / GROUPS) as usize);
        assert_converges(&m, &TABLES, Duration::from_secs(20));
        let gone = nlkit_mirror::NexthopKey { id: GROUP_BASE + 5 };
        assert!(m.tables().nexthops.get_bytes(&gone).is_none());
        assert!(!ip(&["nexthop", "show"]).contains("id 1005 "));
    }
}
