//! Nexthop objects as a routing daemon uses them: two gateways, a group, routes pointing at the
//! group by `nhid`, then one write that moves every route to the other gateway.
//!
//! ```sh
//! unshare -Urn cargo run -p nlkit --example nexthops
//! id 1 via 192.0.2.2 dev nh0 scope link
//! id 2 via 198.51.100.2 dev nh1 scope link
//! id 100 group 1/2,3
//! 203.0.113.0/26 nhid 100
//!     nexthop via 192.0.2.2 dev nh0 weight 1
//!     nexthop via 198.51.100.2 dev nh1 weight 3
//! … (the same for 203.0.113.64/26, .128/26 and .192/26)
//! ```
//!
//! Run it in a namespace of your own (it creates the veth pair `nh0`/`nh1`).

use std::io::Write;
use std::net::Ipv4Addr;

use nlkit::prelude::*;
use nlkit::route::fmt::{nexthop_text, route_text};
use nlkit::route::nexthop::GroupMember;
use nlkit::route::request::{NexthopFilter, RouteFilter, RouteOp};
use nlkit::route::{Address, NexthopObject};

/// Routes the example points at the group.
pub const ROUTES: u8 = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&mut std::io::stdout().lock())
}

/// Sets up the veths, nexthops 1 and 2, group 100 and [`ROUTES`] routes by `nhid 100`, moves
/// them all with one replace of the group, and prints the nexthops and those routes like
/// `ip nexthop` and `ip route`.
pub fn run(out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    let mut sock = Socket::open(Protocol::Route)?;
    let (a, b) = route::ops::add_veth(&mut sock, "nh0", "nh1")?;
    for (dev, addr) in [(a, "192.0.2.1"), (b, "198.51.100.1")] {
        route::ops::set_link_up(&mut sock, dev, true)?;
        route::ops::add_addr(&mut sock, &Address::new(dev, addr.parse()?, 24), false)?;
    }
    let gw1 = NexthopObject::via(1, "192.0.2.2".parse()?).dev(a);
    let gw2 = NexthopObject::via(2, "198.51.100.2".parse()?).dev(b);
    for nh in [&gw1, &gw2] {
        route::ops::add_nexthop(&mut sock, nh, false)?;
    }
    let group = NexthopObject::group(100, &[GroupMember::new(1)]);
    route::ops::add_nexthop(&mut sock, &group, false)?;
    for i in 0..ROUTES {
        let r = Route::new(Ipv4Addr::new(203, 0, 113, i * 64).into(), 26).nhid(100);
        route::ops::add_route(&mut sock, &r, RouteOp::Add)?;
    }
    // One replace moves every route that uses group 100.
    let moved = NexthopObject::group(100, &[GroupMember::new(1), GroupMember::new(2).weight(3)]);
    route::ops::add_nexthop(&mut sock, &moved, true)?;

    let names = route::ops::link_names(&mut sock)?;
    let mut lines: Vec<String> = Vec::new();
    route::ops::dump_nexthops(
        &mut sock,
        consts::AF_UNSPEC,
        &NexthopFilter::default(),
        |nh| {
            lines.push(nexthop_text(&nh, &names).to_string());
            Ok(())
        },
    )?;
    route::ops::dump_routes(&mut sock, consts::AF_INET, &RouteFilter::main(), |r| {
        if r.nh_id().is_some() {
            lines.push(route_text(&r, &names, Default::default()).to_string());
        }
        Ok(())
    })?;
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(())
}
