//! Route installation with nexthop objects (`cargo bench -p nlkit-route --bench nexthops`), in
//! a private network namespace: `NLKIT_BENCH_ROUTES` (default 100,000) IPv4 host routes
//! installed
//!
//! - by `nhid` (a two-gateway group, and a single nexthop) through `transact_batch`,
//! - with the same gateways inline (`RTA_MULTIPATH`, and `RTA_GATEWAY`) through
//!   `transact_batch`,
//! - and both ways with `ip -batch` (iproute2),
//!
//! each case into an empty table of its own, all in one run; the table prints each rate and
//! its ratio to the `nhid` group through `transact_batch`.
//!
//! `harness = false`: `main` sets up the namespace and prints the table.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use nlkit_route::nexthop::GroupMember;
use nlkit_route::request::{self, RouteOp};
use nlkit_route::{ops, NextHop, NexthopObject, Route};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::MessageBuilder;

/// Requests per `transact_batch` call.
const BATCH: usize = 1024;
const GROUP: u32 = 10;
const SINGLE: u32 = 1;

fn routes_wanted() -> u32 {
    std::env::var("NLKIT_BENCH_ROUTES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000)
}

fn dst(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0000 + i)
}

fn gw(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

/// How a case's routes reach their gateways.
#[derive(Clone, Copy)]
enum Shape {
    Group,
    Multipath,
    Single,
    Gateway,
}

impl Shape {
    fn route(self, i: u32, table: u32, dev: u32) -> Route {
        let r = Route::new(dst(i).into(), 32).table(table);
        match self {
            Shape::Group => r.nhid(GROUP),
            Shape::Single => r.nhid(SINGLE),
            Shape::Multipath => r
                .nexthop(NextHop::via(gw(2)).dev(dev))
                .nexthop(NextHop::via(gw(3)).dev(dev)),
            Shape::Gateway => r.via(gw(2)).dev(dev),
        }
    }

    /// The same route as an `ip -batch` line.
    fn ip_line(self, i: u32, table: u32) -> String {
        let d = dst(i);
        match self {
            Shape::Group => format!("route add {d}/32 table {table} nhid {GROUP}\n"),
            Shape::Single => format!("route add {d}/32 table {table} nhid {SINGLE}\n"),
            Shape::Multipath => format!(
                "route add {d}/32 table {table} nexthop via 10.0.0.2 dev va nexthop via 10.0.0.3 dev va\n"
            ),
            Shape::Gateway => format!("route add {d}/32 table {table} via 10.0.0.2 dev va\n"),
        }
    }
}

/// Installs `n` routes through `transact_batch`; the requests are built beforehand (untimed).
fn through_batch(sock: &mut Socket, shape: Shape, n: u32, table: u32, dev: u32) -> Duration {
    let ids: Vec<u32> = (0..n).collect();
    let mut batches: Vec<MessageBuilder> = ids
        .chunks(BATCH)
        .map(|c| {
            let mut b = MessageBuilder::with_capacity(c.len() * 80);
            for &i in c {
                request::add_route(&mut b, i, &shape.route(i, table, dev), RouteOp::Add)
                    .expect("route request");
            }
            b
        })
        .collect();
    let t0 = Instant::now();
    for b in &mut batches {
        for r in sock.transact_batch(b).expect("batch") {
            r.expect("route added");
        }
    }
    t0.elapsed()
}

/// Installs `n` routes with `ip -batch` (the file is written beforehand, untimed).
fn through_ip(shape: Shape, n: u32, table: u32) -> Duration {
    let file = std::env::temp_dir().join(format!("nlkit-bench-nh-{}-{table}", std::process::id()));
    let text: String = (0..n).map(|i| shape.ip_line(i, table)).collect();
    std::fs::write(&file, text).expect("batch file");
    let t0 = Instant::now();
    nlkit_testns::ip(&["-batch", file.to_str().expect("path")]);
    let d = t0.elapsed();
    let _ = std::fs::remove_file(&file);
    d
}

fn run() {
    let n = routes_wanted();
    let v = nlkit_testns::veth_pair("va", "vb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    let mut sock = Socket::open(Protocol::Route).expect("socket");
    for (id, g) in [(1, 2), (2, 3)] {
        let nh = NexthopObject::via(id, gw(g)).dev(v.a_index);
        ops::add_nexthop(&mut sock, &nh, false).expect("nexthop");
    }
    let group = NexthopObject::group(GROUP, &[GroupMember::new(1), GroupMember::new(2)]);
    ops::add_nexthop(&mut sock, &group, false).expect("group");

    println!("nlkit-route nexthop bench: {n} IPv4 host routes per case (netns; each case into an empty table)");
    println!("| case | time | routes/s | vs nhid group, transact_batch |");
    println!("|---|---|---|---|");
    let cases: [(&str, Shape, bool); 8] = [
        (
            "nhid (2-gateway group), transact_batch",
            Shape::Group,
            false,
        ),
        (
            "inline 2-gateway multipath, transact_batch",
            Shape::Multipath,
            false,
        ),
        ("nhid (2-gateway group), ip -batch", Shape::Group, true),
        (
            "inline 2-gateway multipath, ip -batch",
            Shape::Multipath,
            true,
        ),
        (
            "nhid (single nexthop), transact_batch",
            Shape::Single,
            false,
        ),
        ("inline gateway, transact_batch", Shape::Gateway, false),
        ("nhid (single nexthop), ip -batch", Shape::Single, true),
        ("inline gateway, ip -batch", Shape::Gateway, true),
    ];
    let mut base = None;
    for (k, (name, shape, ip)) in cases.into_iter().enumerate() {
        let table = 101 + k as u32;
        let d = if ip {
            through_ip(shape, n, table)
        } else {
            through_batch(&mut sock, shape, n, table, v.a_index)
        };
        let rate = f64::from(n) / d.as_secs_f64();
        let base = *base.get_or_insert(rate);
        println!(
            "| {name} | {:.2} s | {rate:.0} | {:.2} |",
            d.as_secs_f64(),
            rate / base
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    let in_child = std::env::var(nlkit_testns::CHILD_ENV).is_ok();
    if !in_child && !std::env::args().any(|a| a == "--bench") {
        return;
    }
    nlkit_testns::run_in_netns(module_path!(), "bench", || {
        run();
        // The namespace harness checks for a libtest-style summary from its child.
        println!("test result: ok. 1 passed");
    });
}
