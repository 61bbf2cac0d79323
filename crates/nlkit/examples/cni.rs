//! A CNI-style setup entirely through the library: a bridge with an address, a veth pair
//! with one end enslaved to the bridge and the other moved into a new network namespace,
//! that end renamed, addressed and given a default route via the bridge, and a static FDB
//! entry for the container's MAC.
//!
//! ```sh
//! unshare -Urn cargo run -p nlkit --example cni
//! bridge cni0 (index 2), host end veth-c1 (index 4), container eth0 32:65:3e:05:3e:82
//! ```
//!
//! The calling thread never changes namespace: the new namespace is created by a helper
//! thread (`nlkit::socket::netns::create`), and its socket is opened there the same way.

use std::os::fd::{AsFd, OwnedFd};

use nlkit::prelude::*;
use nlkit::route::request::{LinkRef, RouteOp};
use nlkit::route::{ops, BridgeOpts, Fdb, FdbOp, LinkKind, LinkSpec};
use nlkit::socket::netns;
use nlkit::wire::consts::{NUD_NOARP, NUD_REACHABLE};

/// What [`setup`] made.
#[allow(dead_code)]
pub struct Cni {
    /// The container's namespace (it lives while this is open).
    pub netns: OwnedFd,
    /// The bridge's index.
    pub bridge: u32,
    /// The host end's index.
    pub host_if: u32,
    /// The container end's MAC address.
    pub mac: Vec<u8>,
}

/// Sets up the bridge `cni0` (10.22.0.1/24), the pair `veth-c1` (host) / `eth0` (container,
/// 10.22.0.2/24, default via 10.22.0.1) and the FDB entry.
pub fn setup() -> Result<Cni> {
    let mut host = Socket::open(Protocol::Route)?;
    let bridge = ops::add_link(
        &mut host,
        &LinkSpec::new("cni0", LinkKind::Bridge(BridgeOpts::default())).up(true),
    )?;
    let gw = "10.22.0.1".parse().expect("address");
    ops::add_addr(&mut host, &Address::new(bridge, gw, 24), false)?;

    let (host_if, peer) = ops::add_veth(&mut host, "veth-c1", "eth0-c1")?;
    ops::set_link(
        &mut host,
        host_if,
        &LinkSpec::default().master(bridge).up(true),
    )?;
    let ns = netns::create()?;
    ops::move_link_to_netns(&mut host, peer, ns.as_fd())?;

    let mut cont = netns::open_socket(&ns, Protocol::Route, &SocketOptions::default())?;
    let eth0 = ops::get_link(&mut cont, LinkRef::Name("eth0-c1"))?.index;
    let rename = LinkSpec {
        name: Some("eth0".into()),
        ..Default::default()
    };
    ops::set_link(&mut cont, eth0, &rename)?;
    ops::set_link_up(&mut cont, 1, true)?;
    ops::set_link_up(&mut cont, eth0, true)?;
    let ip = "10.22.0.2".parse().expect("address");
    ops::add_addr(&mut cont, &Address::new(eth0, ip, 24), false)?;
    let default = Route::new("0.0.0.0".parse().expect("address"), 0)
        .via(gw)
        .dev(eth0);
    ops::add_route(&mut cont, &default, RouteOp::Add)?;

    let mac = ops::get_link(&mut cont, LinkRef::Index(eth0))?
        .address
        .unwrap_or_default();
    let entry = Fdb::new(host_if, &mac)
        .master()
        .state(NUD_NOARP | NUD_REACHABLE);
    ops::add_fdb(&mut host, &entry, FdbOp::Replace)?;
    Ok(Cni {
        netns: ns,
        bridge,
        host_if,
        mac,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cni = setup()?;
    println!(
        "bridge cni0 (index {}), host end veth-c1 (index {}), container eth0 {}",
        cni.bridge,
        cni.host_if,
        nlkit::route::fmt::Mac(&cni.mac)
    );
    Ok(())
}
