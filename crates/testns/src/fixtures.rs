//! Fixtures: veth pairs, addresses, many routes and many conntrack entries, loaded fast.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, IfInfoMsg, MessageBuilder, NfGenMsg, RtMsg};

use crate::channel::Channel;

/// Requests per `sendmsg` when loading in bulk (well under the default socket send buffer).
const BATCH: usize = 1024;

/// A veth pair created by [`veth_pair`].
#[derive(Debug, Clone)]
pub struct Veth {
    /// Name of the first end.
    pub a: String,
    /// Name of the peer.
    pub b: String,
    /// Interface index of `a`.
    pub a_index: u32,
    /// Interface index of `b`.
    pub b_index: u32,
}

fn route_channel() -> Channel {
    Channel::open(NETLINK_ROUTE).expect("open NETLINK_ROUTE socket")
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).expect("interface name");
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(i != 0, "no interface {name}");
    i
}

/// Brings interface `index` up.
pub fn set_link_up(index: u32) {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWLINK, NLM_F_REQUEST, 0);
    b.header(&IfInfoMsg {
        index: index as i32,
        flags: IFF_UP,
        change: IFF_UP,
        ..Default::default()
    });
    b.finish().expect("build link-up request");
    route_channel()
        .request(&mut b)
        .unwrap_or_else(|e| panic!("set link {index} up: {e}"));
}

/// Creates the veth pair `a`–`b` and brings both ends up.
pub fn veth_pair(a: &str, b: &str) -> Veth {
    let mut m = MessageBuilder::new();
    m.begin(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 0);
    m.header(&IfInfoMsg::default());
    m.attr_str(IFLA_IFNAME, a);
    let info = m.nest_begin(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, "veth");
    let data = m.nest_begin(IFLA_INFO_DATA);
    let peer = m.nest_begin(VETH_INFO_PEER);
    m.header(&IfInfoMsg::default());
    m.attr_str(IFLA_IFNAME, b);
    m.nest_end(peer);
    m.nest_end(data);
    m.nest_end(info);
    m.finish().expect("build veth request");
    route_channel()
        .request(&mut m)
        .unwrap_or_else(|e| panic!("create veth {a}/{b}: {e}"));
    let v = Veth {
        a: a.to_owned(),
        b: b.to_owned(),
        a_index: ifindex(a),
        b_index: ifindex(b),
    };
    set_link_up(v.a_index);
    set_link_up(v.b_index);
    wait_link_settled(a);
    wait_link_settled(b);
    v
}

/// Waits (at most 10 s, then panics) until the kernel has applied the last carrier change of
/// link `name`: an administratively up link reports operstate `UP` with carrier, or
/// `LOWERLAYERDOWN`/`DOWN` without. Returns at once for a link that is down.
///
/// The kernel applies carrier changes late, from its link-watch work queue (a veth end's
/// carrier follows its peer's up/down). That work updates the operstate and then sends
/// `NETDEV_CHANGE`, which for a link without carrier deletes the nexthops through it. Call
/// this after changing a veth end's state and before comparing anything that depends on it.
/// After it sees the new operstate it makes one request that takes the RTNL lock, so the
/// link-watch work that set the operstate (it holds that lock) has finished.
///
/// ```no_run
/// nlkit_testns::ip(&["link", "set", "vb", "down"]);
/// // The peer `va` loses its carrier; wait until the kernel has flushed its nexthops.
/// nlkit_testns::wait_link_settled("va");
/// ```
pub fn wait_link_settled(name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let line = crate::harness::ip(&["-o", "link", "show", "dev", name]);
        let flags = line
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map_or("", |(f, _)| f);
        let has = |f: &str| flags.split(',').any(|x| x == f);
        let state = line
            .split_once(" state ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("");
        let settled = !has("UP")
            || match has("LOWER_UP") {
                true => state == "UP",
                false => state == "LOWERLAYERDOWN" || state == "DOWN",
            };
        if settled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "link {name} did not settle: {line}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A request that changes nothing but runs under the RTNL lock.
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWLINK, NLM_F_REQUEST, 0);
    b.header(&IfInfoMsg {
        index: ifindex(name) as i32,
        ..Default::default()
    });
    b.finish().expect("build no-op link request");
    route_channel()
        .request(&mut b)
        .unwrap_or_else(|e| panic!("no-op request on link {name}: {e}"));
}

/// Deletes link `name` (deleting one end of a veth pair deletes both).
pub fn delete_link(name: &str) {
    let mut m = MessageBuilder::new();
    m.begin(RTM_DELLINK, NLM_F_REQUEST, 0);
    m.header(&IfInfoMsg::default());
    m.attr_str(IFLA_IFNAME, name);
    m.finish().expect("build delete request");
    route_channel()
        .request(&mut m)
        .unwrap_or_else(|e| panic!("delete link {name}: {e}"));
}

/// Adds `addr/prefix_len` to interface `ifindex` (IPv6 without duplicate detection).
pub fn add_addr(ifindex: u32, addr: IpAddr, prefix_len: u8) {
    let (family, flags) = match addr {
        IpAddr::V4(_) => (AF_INET, 0),
        IpAddr::V6(_) => (AF_INET6, IFA_F_NODAD as u8),
    };
    let mut m = MessageBuilder::new();
    m.begin(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 0);
    m.header(&IfAddrMsg {
        family,
        prefixlen: prefix_len,
        flags,
        scope: RT_SCOPE_UNIVERSE,
        index: ifindex,
    });
    m.attr_ip(IFA_LOCAL, addr);
    m.attr_ip(IFA_ADDRESS, addr);
    m.finish().expect("build address request");
    route_channel()
        .request(&mut m)
        .unwrap_or_else(|e| panic!("add address {addr}/{prefix_len}: {e}"));
}

fn load_routes(oif: u32, table: u32, dsts: &[IpAddr], prefix: u8) {
    let mut ch = route_channel();
    let mut m = MessageBuilder::with_capacity(BATCH * 64);
    for chunk in dsts.chunks(BATCH) {
        m.clear();
        for dst in chunk {
            let family = if dst.is_ipv4() { AF_INET } else { AF_INET6 };
            m.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 0);
            m.header(&RtMsg {
                family,
                dst_len: prefix,
                table: if table < 256 {
                    table as u8
                } else {
                    RT_TABLE_UNSPEC
                },
                protocol: RTPROT_STATIC,
                scope: RT_SCOPE_LINK,
                ty: RTN_UNICAST,
                ..Default::default()
            });
            m.attr_ip(RTA_DST, *dst);
            m.attr_u32(RTA_OIF, oif);
            m.attr_u32(RTA_TABLE, table);
            m.finish().expect("build route request");
        }
        ch.request(&mut m)
            .unwrap_or_else(|e| panic!("load routes via ifindex {oif}: {e}"));
    }
}

/// Loads `count` IPv4 /32 routes 10.128.0.1, 10.128.0.2, … via `oif` into `table`, many per
/// `sendmsg`. The interface must be up. Returns the destinations.
pub fn load_ipv4_routes(oif: u32, count: usize, table: u32) -> Vec<(Ipv4Addr, u8)> {
    let base = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let dsts: Vec<Ipv4Addr> = (0..count as u32)
        .map(|i| Ipv4Addr::from(base + 1 + i))
        .collect();
    let ips: Vec<IpAddr> = dsts.iter().copied().map(IpAddr::V4).collect();
    load_routes(oif, table, &ips, 32);
    dsts.into_iter().map(|d| (d, 32)).collect()
}

/// Loads `count` IPv6 /128 routes fd00:1::1, fd00:1::2, … via `oif` into `table`.
pub fn load_ipv6_routes(oif: u32, count: usize, table: u32) -> Vec<(Ipv6Addr, u8)> {
    let base = u128::from("fd00:1::".parse::<Ipv6Addr>().expect("literal"));
    let dsts: Vec<Ipv6Addr> = (0..count as u128)
        .map(|i| Ipv6Addr::from(base + 1 + i))
        .collect();
    let ips: Vec<IpAddr> = dsts.iter().copied().map(IpAddr::V6).collect();
    load_routes(oif, table, &ips, 128);
    dsts.into_iter().map(|d| (d, 128)).collect()
}

fn put_tuple(
    m: &mut MessageBuilder,
    ty: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) {
    let t = m.nest_begin(ty);
    let ip = m.nest_begin(CTA_TUPLE_IP);
    m.attr_bytes(CTA_IP_V4_SRC, &src.octets());
    m.attr_bytes(CTA_IP_V4_DST, &dst.octets());
    m.nest_end(ip);
    let proto = m.nest_begin(CTA_TUPLE_PROTO);
    m.attr_u8(CTA_PROTO_NUM, IPPROTO_UDP);
    m.attr_be16(CTA_PROTO_SRC_PORT, sport);
    m.attr_be16(CTA_PROTO_DST_PORT, dport);
    m.nest_end(proto);
    m.nest_end(t);
}

/// The `i`-th fixture connection: 10.200.x.y:sport → 10.201.0.1:53 (unique for any `i`
/// below 50,000 × 65,000).
pub(crate) fn conntrack_tuple(i: usize) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 1)) + (i / 50_000) as u32);
    let sport = 1024 + (i % 50_000) as u16;
    (src, Ipv4Addr::new(10, 201, 0, 1), sport, 53)
}

/// Creates `count` UDP conntrack entries (original 10.200.x.y:sport → 10.201.0.1:53, reply
/// reversed) with a 600 s timeout and `mark`, many per `sendmsg`. Returns `count`.
pub fn load_conntrack(count: usize, mark: u32) -> usize {
    let mut ch = Channel::open(NETLINK_NETFILTER).expect("open NETLINK_NETFILTER socket");
    let mut m = MessageBuilder::with_capacity(BATCH * 128);
    let ty = nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW);
    let idx: Vec<usize> = (0..count).collect();
    for chunk in idx.chunks(BATCH) {
        m.clear();
        for &i in chunk {
            let (src, dst, sport, dport) = conntrack_tuple(i);
            m.begin(ty, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 0);
            m.header(&NfGenMsg {
                family: AF_INET,
                version: NFNETLINK_V0,
                res_id: 0,
            });
            put_tuple(&mut m, CTA_TUPLE_ORIG, src, dst, sport, dport);
            put_tuple(&mut m, CTA_TUPLE_REPLY, dst, src, dport, sport);
            m.attr_be32(CTA_TIMEOUT, 600);
            m.attr_be32(CTA_MARK, mark);
            m.finish().expect("build conntrack request");
        }
        ch.request(&mut m)
            .unwrap_or_else(|e| panic!("load conntrack entries: {e}"));
    }
    count
}
