//! The cost of one `ip route show` line (`cargo bench -p nlkit-route --bench route_text`): no
//! kernel, messages built in memory the way the kernel sends them (`RTA_TABLE`, `RTA_DST`,
//! `RTA_OIF`, and for the second shape `RTA_PRIORITY`, `RTA_GATEWAY`), `NLKIT_BENCH_ROUTES`
//! of each (default 200,000); best of 5 passes, in nanoseconds per route:
//!
//! - `RouteView::parse` alone,
//! - `parse` + [`RouteText::write_to`](nlkit_route::fmt::RouteText::write_to) into one buffer
//!   (what listings do),
//! - `parse` + `RouteText`'s `Display` through `write!` into a `String`.
//!
//! `harness = false`: `main` prints the table.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use nlkit_route::fmt::{route_text, LinkNames, RouteFmt};
use nlkit_route::RouteView;
use nlkit_testns::{size_from_env, LineBench};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages, RtMsg};

/// `n` route messages back to back: host routes on a link (`via` is false) or /24s via a
/// gateway with a metric.
fn messages(n: usize, via: bool) -> MessageBuilder {
    let mut b = MessageBuilder::with_capacity(n * 80);
    for i in 0..n {
        let dst = Ipv4Addr::from(0x0a80_0001 + i as u32);
        b.begin(RTM_NEWROUTE, 0, 0);
        b.header(&RtMsg {
            family: AF_INET,
            dst_len: if via { 24 } else { 32 },
            src_len: 0,
            tos: 0,
            table: RT_TABLE_MAIN,
            protocol: if via { 186 } else { RTPROT_STATIC },
            scope: if via {
                RT_SCOPE_UNIVERSE
            } else {
                RT_SCOPE_LINK
            },
            ty: RTN_UNICAST,
            flags: 0,
        });
        b.attr_u32(RTA_TABLE, RT_TABLE_MAIN as u32);
        if via {
            b.attr_u32(RTA_PRIORITY, 20);
        }
        b.attr_ip(RTA_DST, IpAddr::V4(dst));
        if via {
            b.attr_ip(RTA_GATEWAY, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        }
        b.attr_u32(RTA_OIF, 2);
        b.finish().expect("a route message fits");
    }
    b
}

fn main() {
    let n = size_from_env("NLKIT_BENCH_ROUTES", 200_000);
    let mut names = LinkNames::new();
    names.insert(2, "nlk0");
    let opts = RouteFmt::default();
    let bench = LineBench::new(
        "ns per route",
        ["host/link", "/24 via gw"],
        n,
        [messages(n, false), messages(n, true)].map(|b| b.as_bytes().to_vec()),
    );
    bench.row("RouteView::parse", &mut |bytes| {
        for m in Messages::new(bytes) {
            black_box(RouteView::parse(&m.unwrap()).unwrap());
        }
    });
    let mut out = Vec::with_capacity(n * 64);
    bench.row("parse + RouteText::write_to", &mut |bytes| {
        out.clear();
        for m in Messages::new(bytes) {
            let r = RouteView::parse(&m.unwrap()).unwrap();
            route_text(&r, &names, opts).write_to(&mut out);
            out.push(b'\n');
        }
        black_box(&out);
    });
    let mut s = String::with_capacity(n * 64);
    bench.row("parse + RouteText's Display (write!)", &mut |bytes| {
        s.clear();
        for m in Messages::new(bytes) {
            let r = RouteView::parse(&m.unwrap()).unwrap();
            let _ = writeln!(s, "{}", route_text(&r, &names, opts));
        }
        black_box(&s);
    });
}
