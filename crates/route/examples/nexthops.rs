//! Nexthop objects as a routing daemon uses them: two gateways, a group, routes pointing at the
//! group by `nhid`, then one write that moves every route to the other gateway. Run it in a
//! namespace you own, e.g. `unshare -Urn cargo run -p nlkit-route --example nexthops`.

use nlkit_route::fmt::{nexthop_text, route_text};
use nlkit_route::nexthop::GroupMember;
use nlkit_route::request::{NexthopFilter, RouteFilter, RouteOp};
use nlkit_route::{ops, Address, NexthopObject, Route};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::{AF_INET, AF_UNSPEC};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sock = Socket::open(Protocol::Route)?;
    let (a, b) = ops::add_veth(&mut sock, "nh0", "nh1")?;
    for (dev, addr) in [(a, "192.0.2.1"), (b, "198.51.100.1")] {
        ops::set_link_up(&mut sock, dev, true)?;
        ops::add_addr(&mut sock, &Address::new(dev, addr.parse()?, 24), false)?;
    }
    ops::add_nexthop(
        &mut sock,
        &NexthopObject::via(1, "192.0.2.2".parse()?).dev(a),
        false,
    )?;
    ops::add_nexthop(
        &mut sock,
        &NexthopObject::via(2, "198.51.100.2".parse()?).dev(b),
        false,
    )?;
    ops::add_nexthop(
        &mut sock,
        &NexthopObject::group(100, &[GroupMember::new(1)]),
        false,
    )?;
    for i in 0..4u8 {
        let r = Route::new(std::net::Ipv4Addr::new(203, 0, 113, i * 64).into(), 26).nhid(100);
        ops::add_route(&mut sock, &r, RouteOp::Add)?;
    }
    // One replace moves every route that uses group 100.
    let moved = NexthopObject::group(100, &[GroupMember::new(1), GroupMember::new(2).weight(3)]);
    ops::add_nexthop(&mut sock, &moved, true)?;

    let names = ops::link_names(&mut sock)?;
    ops::dump_nexthops(&mut sock, AF_UNSPEC, &NexthopFilter::default(), |nh| {
        println!("{}", nexthop_text(&nh, &names));
        Ok(())
    })?;
    ops::dump_routes(&mut sock, AF_INET, &RouteFilter::main(), |r| {
        if r.nh_id().is_some() {
            println!("{}", route_text(&r, &names, Default::default()));
        }
        Ok(())
    })?;
    Ok(())
}
