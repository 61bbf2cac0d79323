//! Requests run on a socket: streaming dumps with typed views, gets, and changes.
//!
//! Dumps call a closure once per object with a view borrowing the receive buffer: nothing
//! is collected, so memory stays flat however large the table. Each dump also re-checks its
//! filter in user space, so the result is the same on a socket without
//! `NETLINK_GET_STRICT_CHK` (where the kernel ignores the filter). Route and address dumps
//! take one family (`AF_INET` or `AF_INET6`) so that they run without RTNL; see
//! [`request`].
//!
//! Change requests go through [`Socket::transact`], which sets `NLM_F_ACK` and a fresh
//! sequence number; kernel errors carry the extended-ack text.
//!
//! ```no_run
//! use nlkit_socket::{Protocol, Socket};
//! use nlkit_route::{ops, request::RouteFilter};
//! let mut sock = Socket::open(Protocol::Route)?;
//! let names = ops::link_names(&mut sock)?;
//! ops::dump_routes(&mut sock, nlkit_wire::consts::AF_INET, &RouteFilter::main(), |r| {
//!     println!("{}", nlkit_route::fmt::route_text(&r, &names, Default::default()));
//!     Ok(())
//! })?;
//! # Ok::<(), nlkit_socket::Error>(())
//! ```

use std::net::IpAddr;

use nlkit_socket::{Error, Result, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder};

use crate::fmt::LinkNames;
use crate::request::{
    self, AddrFilter, LinkFilter, LinkRef, NeighFilter, NexthopFilter, RouteFilter, RouteLookup,
    RouteOp, RuleFilter,
};
use crate::{
    AddrView, Address, Link, LinkView, NeighView, Neighbour, NexthopObject, NexthopObjectView,
    Route, RouteView, Rule, RuleView,
};

pub use nlkit_socket::DumpSummary;

/// Runs the dump request in `req` (one message) on `sock` and calls `f` for each reply
/// message. If `f` fails, the rest of the dump is read and discarded (so the socket stays
/// usable) and `f`'s error is returned.
///
/// ```no_run
/// use nlkit_wire::{consts::AF_INET, MessageBuilder};
/// let mut sock = nlkit_socket::Socket::open(nlkit_socket::Protocol::Route)?;
/// let mut req = MessageBuilder::new();
/// nlkit_route::request::dump_routes(&mut req, 0, AF_INET, &Default::default()).unwrap();
/// let s = nlkit_route::ops::dump_raw(&mut sock, &mut req, |_m| Ok(()))?;
/// println!("{} messages", s.received);
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn dump_raw(
    sock: &mut Socket,
    req: &mut MessageBuilder,
    f: impl FnMut(&Message<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    sock.dump(req, f)
}

/// Builds one change request with `build` and runs it (ack or kernel error).
fn change(
    sock: &mut Socket,
    build: impl FnOnce(&mut MessageBuilder) -> request::Built,
) -> Result<()> {
    let mut req = MessageBuilder::new();
    built(build(&mut req))?;
    sock.transact(&mut req).map(|_| ())
}

fn built(r: request::Built) -> Result<()> {
    r.map(|_| ()).map_err(Error::Protocol)
}

/// Runs the dump in `req`, parses each message as `$view`, and passes those `$keep` accepts
/// to `$f`, counting them. (A macro rather than a function: the views borrow each message,
/// which a generic function could only express with higher-ranked bounds over the view type.)
macro_rules! typed_dump {
    ($sock:expr, $req:expr, $view:ident, $keep:expr, $f:expr) => {{
        let keep = $keep;
        let mut f = $f;
        let mut n = 0;
        let mut s = dump_raw($sock, &mut $req, |m| {
            let v = $view::parse(m)?;
            if keep(&v) {
                n += 1;
                f(v)?;
            }
            Ok(())
        })?;
        s.delivered = n;
        Ok(s)
    }};
}

/// Streams a link dump; `f` gets each link matching `filter`.
pub fn dump_links(
    sock: &mut Socket,
    filter: &LinkFilter<'_>,
    f: impl FnMut(LinkView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_links(&mut req, 0, filter))?;
    typed_dump!(sock, req, LinkView, |v: &LinkView<'_>| filter.matches(v), f)
}

/// Dumps the links and returns their index → name map.
pub fn link_names(sock: &mut Socket) -> Result<LinkNames> {
    let mut names = LinkNames::new();
    dump_links(sock, &LinkFilter::default(), |l| {
        names.insert_link(&l);
        Ok(())
    })?;
    Ok(names)
}

/// Streams an address dump of one family (`AF_INET` or `AF_INET6`).
pub fn dump_addrs(
    sock: &mut Socket,
    family: u8,
    filter: &AddrFilter,
    f: impl FnMut(AddrView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_addrs(&mut req, 0, family, filter))?;
    typed_dump!(
        sock,
        req,
        AddrView,
        |v: &AddrView<'_>| filter.matches(v) && (family == AF_UNSPEC || v.family() == family),
        f
    )
}

/// Streams a route dump of one family (`AF_INET` or `AF_INET6`) with kernel-side filters.
pub fn dump_routes(
    sock: &mut Socket,
    family: u8,
    filter: &RouteFilter,
    f: impl FnMut(RouteView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_routes(&mut req, 0, family, filter))?;
    typed_dump!(
        sock,
        req,
        RouteView,
        |v: &RouteView<'_>| filter.matches(v) && (family == AF_UNSPEC || v.family() == family),
        f
    )
}

/// Streams a neighbour dump (`AF_INET`, `AF_INET6`, or `AF_UNSPEC` for both).
pub fn dump_neighs(
    sock: &mut Socket,
    family: u8,
    filter: &NeighFilter,
    f: impl FnMut(NeighView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_neighs(&mut req, 0, family, filter))?;
    typed_dump!(
        sock,
        req,
        NeighView,
        |v: &NeighView<'_>| filter.matches(v) && (family == AF_UNSPEC || v.family() == family),
        f
    )
}

fn single<T>(
    sock: &mut Socket,
    req: &mut MessageBuilder,
    parse: impl Fn(&Message<'_>) -> Result<Option<T>>,
) -> Result<T> {
    let reply = sock.transact(req)?;
    for m in reply.messages() {
        if let Some(v) = parse(&m?)? {
            return Ok(v);
        }
    }
    Err(Error::Unexpected("the kernel sent no object in its reply"))
}

/// Gets one link (`RTM_GETLINK`).
pub fn get_link(sock: &mut Socket, link: LinkRef<'_>) -> Result<Link> {
    let mut req = MessageBuilder::new();
    built(request::get_link(&mut req, 0, link))?;
    single(sock, &mut req, |m| Ok(Some(LinkView::parse(m)?.to_owned())))
}

/// Resolves a route (`ip route get`).
pub fn get_route(sock: &mut Socket, q: &RouteLookup) -> Result<Route> {
    let mut req = MessageBuilder::new();
    built(request::get_route(&mut req, 0, q))?;
    single(sock, &mut req, |m| {
        Ok(Some(RouteView::parse(m)?.to_owned()))
    })
}

/// Gets one neighbour entry (`ip neigh get`).
pub fn get_neigh(sock: &mut Socket, ifindex: u32, dst: IpAddr) -> Result<Neighbour> {
    let mut req = MessageBuilder::new();
    built(request::get_neigh(&mut req, 0, ifindex, dst))?;
    single(sock, &mut req, |m| Ok(NeighView::parse(m)?.to_owned()))
}

/// Finds one address on an interface. The kernel has no IPv4 "get address" request, so this
/// is a dump filtered (kernel-side) to the interface.
pub fn get_addr(sock: &mut Socket, ifindex: u32, local: IpAddr) -> Result<Option<Address>> {
    let mut found = None;
    let fam = crate::family_of(local);
    let filter = AddrFilter {
        ifindex: Some(ifindex),
    };
    dump_addrs(sock, fam, &filter, |a| {
        if found.is_none() && a.local() == Some(local) {
            found = a.to_owned();
        }
        Ok(())
    })?;
    Ok(found)
}

/// Adds, replaces or appends a route.
pub fn add_route(sock: &mut Socket, r: &Route, op: RouteOp) -> Result<()> {
    change(sock, |b| request::add_route(b, 0, r, op))
}

/// Deletes a route (see [`request::del_route`] for what is matched).
pub fn del_route(sock: &mut Socket, r: &Route) -> Result<()> {
    change(sock, |b| request::del_route(b, 0, r))
}

/// Adds (or replaces) an address.
pub fn add_addr(sock: &mut Socket, a: &Address, replace: bool) -> Result<()> {
    change(sock, |b| request::add_addr(b, 0, a, replace))
}

/// Deletes an address.
pub fn del_addr(sock: &mut Socket, a: &Address) -> Result<()> {
    change(sock, |b| request::del_addr(b, 0, a))
}

/// Adds (or replaces) a neighbour entry.
pub fn add_neigh(sock: &mut Socket, n: &Neighbour, replace: bool) -> Result<()> {
    change(sock, |b| request::add_neigh(b, 0, n, replace))
}

/// Deletes a neighbour entry.
pub fn del_neigh(sock: &mut Socket, n: &Neighbour) -> Result<()> {
    change(sock, |b| request::del_neigh(b, 0, n))
}

/// Sets a link up or down.
pub fn set_link_up(sock: &mut Socket, index: u32, up: bool) -> Result<()> {
    change(sock, |b| request::set_link_up(b, 0, index, up))
}

/// Sets a link's MTU.
pub fn set_link_mtu(sock: &mut Socket, index: u32, mtu: u32) -> Result<()> {
    change(sock, |b| request::set_link_mtu(b, 0, index, mtu))
}

/// Creates a veth pair and returns the indexes of `(name, peer)`.
pub fn add_veth(sock: &mut Socket, name: &str, peer: &str) -> Result<(u32, u32)> {
    change(sock, |b| request::add_veth(b, 0, name, peer))?;
    let a = get_link(sock, LinkRef::Name(name))?.index;
    let b = get_link(sock, LinkRef::Name(peer))?.index;
    Ok((a, b))
}

/// Deletes a link (both ends of a veth pair).
pub fn del_link(sock: &mut Socket, link: LinkRef<'_>) -> Result<()> {
    change(sock, |b| request::del_link(b, 0, link))
}

/// Streams a nexthop object dump of `family` (`AF_UNSPEC`: all) with kernel-side filters.
pub fn dump_nexthops(
    sock: &mut Socket,
    family: u8,
    filter: &NexthopFilter,
    f: impl FnMut(NexthopObjectView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_nexthops(&mut req, 0, family, filter))?;
    typed_dump!(
        sock,
        req,
        NexthopObjectView,
        |v: &NexthopObjectView<'_>| filter.matches(v),
        f
    )
}

/// Gets one nexthop object by id (`ip nexthop get id ID`).
pub fn get_nexthop(sock: &mut Socket, id: u32) -> Result<NexthopObject> {
    let mut req = MessageBuilder::new();
    built(request::get_nexthop(&mut req, 0, id))?;
    single(sock, &mut req, |m| {
        Ok(Some(NexthopObjectView::parse(m)?.to_owned()))
    })
}

/// Adds (or replaces) a nexthop object.
pub fn add_nexthop(sock: &mut Socket, nh: &NexthopObject, replace: bool) -> Result<()> {
    change(sock, |b| request::add_nexthop(b, 0, nh, replace))
}

/// Deletes a nexthop object (the kernel also removes the routes using it).
pub fn del_nexthop(sock: &mut Socket, id: u32) -> Result<()> {
    change(sock, |b| request::del_nexthop(b, 0, id))
}

/// Deletes the nexthop objects a dump with `filter` finds, groups first (as
/// `ip nexthop flush` does, so that no group is left pointing at a deleted member), and
/// returns how many were deleted. Objects that vanish meanwhile (`ENOENT`) are not counted.
pub fn flush_nexthops(sock: &mut Socket, family: u8, filter: &NexthopFilter) -> Result<usize> {
    let mut groups = Vec::new();
    let mut singles = Vec::new();
    dump_nexthops(sock, family, filter, |v| {
        if let Some(id) = v.id() {
            if v.is_group() {
                groups.push(id);
            } else {
                singles.push(id);
            }
        }
        Ok(())
    })?;
    let mut n = 0;
    for id in groups.into_iter().chain(singles) {
        match del_nexthop(sock, id) {
            Ok(()) => n += 1,
            Err(e) if e.errno() == Some(ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `ENOENT` (the same on every Linux architecture), without a libc dependency here.
const ENOENT: i32 = 2;

/// Streams a rule dump of one family (`AF_INET` or `AF_INET6`), filtered in user space (the
/// kernel has no rule dump filters).
pub fn dump_rules(
    sock: &mut Socket,
    family: u8,
    filter: &RuleFilter,
    f: impl FnMut(RuleView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_rules(&mut req, 0, family))?;
    typed_dump!(
        sock,
        req,
        RuleView,
        |v: &RuleView<'_>| filter.matches(v) && v.family() == family,
        f
    )
}

// ---------------------------------------------------------------------------------------------
// Link kinds, namespaces, bridge FDB and VLANs

/// Creates a link of any kind (`ip link add`) and returns its index (looked up by name
/// after the create; the spec needs a name and a kind).
///
/// ```no_run
/// use nlkit_route::{ops, BridgeOpts, LinkKind, LinkSpec};
/// let mut sock = nlkit_socket::Socket::open(nlkit_socket::Protocol::Route)?;
/// let br = ops::add_link(&mut sock, &LinkSpec::new("br0", LinkKind::Bridge(BridgeOpts::default())))?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn add_link(sock: &mut Socket, spec: &crate::LinkSpec) -> Result<u32> {
    change(sock, |b| request::add_link(b, 0, spec))?;
    let name = spec
        .name
        .as_deref()
        .ok_or(Error::InvalidRequest("add_link needs a name"))?;
    // A link created directly in another namespace is not visible here.
    if spec.netns.is_some() {
        return Ok(0);
    }
    Ok(get_link(sock, LinkRef::Name(name))?.index)
}

/// Changes link `index` (`ip link set`): only the fields set in `spec` are sent.
pub fn set_link(sock: &mut Socket, index: u32, spec: &crate::LinkSpec) -> Result<()> {
    change(sock, |b| request::set_link(b, 0, index, spec))
}

/// Enslaves link `index` to `master` (a bridge, bond or VRF), or releases it with `None`
/// (`ip link set DEV master M | nomaster`).
pub fn set_link_master(sock: &mut Socket, index: u32, master: Option<u32>) -> Result<()> {
    let spec = crate::LinkSpec {
        master: Some(master.unwrap_or(0)),
        ..Default::default()
    };
    set_link(sock, index, &spec)
}

/// Moves link `index` into the namespace open as `ns` (`IFLA_NET_NS_FD`; `ip link set DEV
/// netns NAME`). The link disappears from this namespace.
///
/// ```no_run
/// use std::os::fd::AsFd;
/// let mut sock = nlkit_socket::Socket::open(nlkit_socket::Protocol::Route)?;
/// let ns = nlkit_socket::netns::open_named("blue")?;
/// nlkit_route::ops::move_link_to_netns(&mut sock, 5, ns.as_fd())?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn move_link_to_netns(
    sock: &mut Socket,
    index: u32,
    ns: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    let spec = crate::LinkSpec {
        netns: Some(crate::NetnsRef::Fd(ns.as_raw_fd())),
        ..Default::default()
    };
    set_link(sock, index, &spec)
}

/// Moves link `index` into the named namespace `/run/netns/NAME` (`ip link set DEV netns
/// NAME`).
///
/// ```no_run
/// let mut sock = nlkit_socket::Socket::open(nlkit_socket::Protocol::Route)?;
/// nlkit_route::ops::move_link_to_named_netns(&mut sock, 5, "blue")?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn move_link_to_named_netns(sock: &mut Socket, index: u32, name: &str) -> Result<()> {
    use std::os::fd::AsFd;
    let ns = nlkit_socket::netns::open_named(name)?;
    move_link_to_netns(sock, index, ns.as_fd())
}

/// Moves link `index` into the namespace of process `pid` (`IFLA_NET_NS_PID`; `ip link set
/// DEV netns PID`).
pub fn move_link_to_pid(sock: &mut Socket, index: u32, pid: u32) -> Result<()> {
    let spec = crate::LinkSpec {
        netns: Some(crate::NetnsRef::Pid(pid)),
        ..Default::default()
    };
    set_link(sock, index, &spec)
}

/// The id this namespace has for the namespace open as `ns` (`None` when none is assigned).
pub fn get_nsid_fd(sock: &mut Socket, ns: std::os::fd::BorrowedFd<'_>) -> Result<Option<u32>> {
    use std::os::fd::AsRawFd;
    get_nsid(sock, crate::NetnsRef::Fd(ns.as_raw_fd()))
}

/// The id this namespace has for `ns` (`None` when none is assigned). With
/// [`NetnsRef::Fd`](crate::NetnsRef::Fd) the descriptor must stay open during the call.
pub fn get_nsid(sock: &mut Socket, ns: crate::NetnsRef) -> Result<Option<u32>> {
    let mut req = MessageBuilder::new();
    built(request::get_nsid(&mut req, 0, ns))?;
    single(sock, &mut req, |m| {
        Ok(Some(crate::NsidView::parse(m)?.assigned()))
    })
}

/// Assigns id `nsid` to the namespace open as `ns` (`ip netns set NAME ID`).
pub fn set_nsid(sock: &mut Socket, ns: std::os::fd::BorrowedFd<'_>, nsid: u32) -> Result<()> {
    use std::os::fd::AsRawFd;
    let id = i32::try_from(nsid).map_err(|_| Error::InvalidRequest("nsid out of range"))?;
    change(sock, |b| {
        request::set_nsid(b, 0, crate::NetnsRef::Fd(ns.as_raw_fd()), id)
    })
}

/// Streams the namespace ids assigned in this namespace (`ip netns list-id`).
pub fn dump_nsids(
    sock: &mut Socket,
    mut f: impl FnMut(crate::NsidView) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_nsids(&mut req, 0))?;
    let mut n = 0;
    let mut s = dump_raw(sock, &mut req, |m| {
        n += 1;
        f(crate::NsidView::parse(m)?)
    })?;
    s.delivered = n;
    Ok(s)
}

/// Streams the bridge FDB (`AF_BRIDGE` neighbours) matching `filter`.
pub fn dump_fdb(
    sock: &mut Socket,
    filter: &request::FdbFilter,
    f: impl FnMut(NeighView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_fdb(&mut req, 0, filter))?;
    typed_dump!(
        sock,
        req,
        NeighView,
        |v: &NeighView<'_>| filter.matches(v),
        f
    )
}

/// Adds a rule.
pub fn add_rule(sock: &mut Socket, r: &Rule) -> Result<()> {
    change(sock, |b| request::add_rule(b, 0, r))
}

/// Deletes the first rule matching `r` (see [`request::del_rule`]).
pub fn del_rule(sock: &mut Socket, r: &Rule) -> Result<()> {
    change(sock, |b| request::del_rule(b, 0, r))
}

/// Deletes every rule of `family` that `filter` matches, except priority 0 (the kernel's
/// `local` rule), as `ip rule flush` does; returns how many were deleted.
pub fn flush_rules(sock: &mut Socket, family: u8, filter: &RuleFilter) -> Result<usize> {
    let mut victims = Vec::new();
    dump_rules(sock, family, filter, |v| {
        if v.priority() != 0 {
            victims.push(v.to_owned());
        }
        Ok(())
    })?;
    let mut n = 0;
    for r in &victims {
        match del_rule(sock, r) {
            Ok(()) => n += 1,
            Err(e) if e.errno() == Some(ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Adds, appends or replaces an FDB entry.
pub fn add_fdb(sock: &mut Socket, e: &crate::Fdb, op: crate::FdbOp) -> Result<()> {
    change(sock, |b| request::add_fdb(b, 0, e, op))
}

/// Deletes an FDB entry.
pub fn del_fdb(sock: &mut Socket, e: &crate::Fdb) -> Result<()> {
    change(sock, |b| request::del_fdb(b, 0, e))
}

/// Streams the bridge ports (and bridges) with their VLANs: `f` gets each `AF_BRIDGE` link
/// message; read its VLANs with [`bridge_vlans`](crate::bridge_vlans) on
/// [`LinkView::af_spec`].
pub fn dump_bridge_vlans(
    sock: &mut Socket,
    f: impl FnMut(LinkView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    built(request::dump_bridge_vlans(&mut req, 0))?;
    typed_dump!(sock, req, LinkView, |_: &LinkView<'_>| true, f)
}

/// Adds a VLAN (or range) to a bridge port.
pub fn add_bridge_vlan(sock: &mut Socket, v: &crate::BridgeVlanSpec) -> Result<()> {
    change(sock, |b| request::add_bridge_vlan(b, 0, v))
}

/// Removes a VLAN (or range) from a bridge port.
pub fn del_bridge_vlan(sock: &mut Socket, v: &crate::BridgeVlanSpec) -> Result<()> {
    change(sock, |b| request::del_bridge_vlan(b, 0, v))
}
