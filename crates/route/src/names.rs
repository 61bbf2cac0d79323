//! The names iproute2 prints for numeric values (protocols, scopes, tables, route types, …)
//! and their parsers, for text output and for a command line that accepts the same words.
//!
//! ```
//! use nlkit_route::names;
//! assert_eq!(names::protocol(4), Some("static"));
//! assert_eq!(names::parse_protocol("static"), Some(4));
//! assert_eq!(names::parse_table("1000"), Some(1000));
//! assert_eq!(names::Table(255).to_string(), "local");
//! ```

use std::fmt;

use nlkit_wire::consts::*;

const PROTOCOLS: &[(u8, &str)] = &[
    (RTPROT_UNSPEC, "unspec"),
    (RTPROT_REDIRECT, "redirect"),
    (RTPROT_KERNEL, "kernel"),
    (RTPROT_BOOT, "boot"),
    (RTPROT_STATIC, "static"),
    (8, "gated"),
    (RTPROT_RA, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (RTPROT_DHCP, "dhcp"),
    (17, "mrouted"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

const SCOPES: &[(u8, &str)] = &[
    (RT_SCOPE_UNIVERSE, "global"),
    (RT_SCOPE_SITE, "site"),
    (RT_SCOPE_LINK, "link"),
    (RT_SCOPE_HOST, "host"),
    (RT_SCOPE_NOWHERE, "nowhere"),
];

const TABLES: &[(u32, &str)] = &[
    (RT_TABLE_DEFAULT as u32, "default"),
    (RT_TABLE_MAIN as u32, "main"),
    (RT_TABLE_LOCAL as u32, "local"),
];

const ROUTE_TYPES: &[(u8, &str)] = &[
    (RTN_UNSPEC, "none"),
    (RTN_UNICAST, "unicast"),
    (RTN_LOCAL, "local"),
    (RTN_BROADCAST, "broadcast"),
    (RTN_ANYCAST, "anycast"),
    (RTN_MULTICAST, "multicast"),
    (RTN_BLACKHOLE, "blackhole"),
    (RTN_UNREACHABLE, "unreachable"),
    (RTN_PROHIBIT, "prohibit"),
    (RTN_THROW, "throw"),
    (RTN_NAT, "nat"),
    (RTN_XRESOLVE, "xresolve"),
];

const OPERSTATES: &[&str] = &[
    "UNKNOWN",
    "NOTPRESENT",
    "DOWN",
    "LOWERLAYERDOWN",
    "TESTING",
    "DORMANT",
    "UP",
];

/// `NUD_*` bits and their names, in iproute2's order.
pub const NUD_STATES: &[(u16, &str)] = &[
    (NUD_INCOMPLETE, "INCOMPLETE"),
    (NUD_REACHABLE, "REACHABLE"),
    (NUD_STALE, "STALE"),
    (NUD_DELAY, "DELAY"),
    (NUD_PROBE, "PROBE"),
    (NUD_FAILED, "FAILED"),
    (NUD_NOARP, "NOARP"),
    (NUD_PERMANENT, "PERMANENT"),
];

/// `IFF_*` flags in the order `ip link` prints them.
pub const LINK_FLAGS: &[(u32, &str)] = &[
    (IFF_LOOPBACK, "LOOPBACK"),
    (IFF_BROADCAST, "BROADCAST"),
    (IFF_POINTOPOINT, "POINTOPOINT"),
    (IFF_MULTICAST, "MULTICAST"),
    (IFF_NOARP, "NOARP"),
    (IFF_ALLMULTI, "ALLMULTI"),
    (IFF_PROMISC, "PROMISC"),
    (IFF_NOTRAILERS, "NOTRAILERS"),
    (IFF_MASTER, "MASTER"),
    (IFF_SLAVE, "SLAVE"),
    (IFF_DEBUG, "DEBUG"),
    (IFF_DYNAMIC, "DYNAMIC"),
    (IFF_AUTOMEDIA, "AUTOMEDIA"),
    (IFF_PORTSEL, "PORTSEL"),
    (IFF_UP, "UP"),
    (IFF_LOWER_UP, "LOWER_UP"),
    (IFF_DORMANT, "DORMANT"),
    (IFF_ECHO, "ECHO"),
];

/// `IFA_F_*` flags in the order `ip addr` prints them (`IFA_F_PERMANENT` is shown as the
/// absence of `dynamic`). Bit 0 is `secondary` for IPv4 and `temporary` for IPv6.
pub const ADDR_FLAGS: &[(u32, &str)] = &[
    (IFA_F_SECONDARY, "secondary"),
    (IFA_F_NODAD, "nodad"),
    (IFA_F_OPTIMISTIC, "optimistic"),
    (IFA_F_DADFAILED, "dadfailed"),
    (IFA_F_HOMEADDRESS, "home"),
    (IFA_F_DEPRECATED, "deprecated"),
    (IFA_F_TENTATIVE, "tentative"),
    (IFA_F_MANAGETEMPADDR, "mngtmpaddr"),
    (IFA_F_NOPREFIXROUTE, "noprefixroute"),
    (IFA_F_MCAUTOJOIN, "autojoin"),
    (IFA_F_STABLE_PRIVACY, "stable-privacy"),
];

/// `RTNH_F_*` / `RTM_F_*` route flags as `ip route` prints them.
pub const ROUTE_FLAGS: &[(u32, &str)] = &[
    (RTNH_F_DEAD as u32, "dead"),
    (RTNH_F_ONLINK as u32, "onlink"),
    (RTNH_F_PERVASIVE as u32, "pervasive"),
    (RTNH_F_OFFLOAD as u32, "offload"),
    (RTNH_F_TRAP as u32, "trap"),
    (RTM_F_NOTIFY, "notify"),
    (RTNH_F_LINKDOWN as u32, "linkdown"),
    (RTNH_F_UNRESOLVED as u32, "unresolved"),
];

/// `RTAX_*` metric names as `ip route` prints them.
pub const METRICS: &[(u16, &str)] = &[
    (RTAX_MTU, "mtu"),
    (RTAX_WINDOW, "window"),
    (RTAX_RTT, "rtt"),
    (RTAX_RTTVAR, "rttvar"),
    (RTAX_SSTHRESH, "ssthresh"),
    (RTAX_CWND, "cwnd"),
    (RTAX_ADVMSS, "advmss"),
    (RTAX_REORDERING, "reordering"),
    (RTAX_HOPLIMIT, "hoplimit"),
    (RTAX_INITCWND, "initcwnd"),
    (RTAX_FEATURES, "features"),
    (RTAX_RTO_MIN, "rto_min"),
    (RTAX_INITRWND, "initrwnd"),
    (RTAX_QUICKACK, "quickack"),
    (RTAX_FASTOPEN_NO_COOKIE, "fastopen_no_cookie"),
];

fn lookup<K: PartialEq + Copy>(t: &[(K, &'static str)], k: K) -> Option<&'static str> {
    t.iter().find(|e| e.0 == k).map(|e| e.1)
}
fn rlookup<K: Copy>(t: &[(K, &'static str)], s: &str) -> Option<K> {
    t.iter().find(|e| e.1 == s).map(|e| e.0)
}

/// The name of a route protocol (`RTPROT_*`).
pub fn protocol(p: u8) -> Option<&'static str> {
    lookup(PROTOCOLS, p)
}
/// Parses a protocol name or number.
pub fn parse_protocol(s: &str) -> Option<u8> {
    rlookup(PROTOCOLS, s).or_else(|| s.parse().ok())
}
/// The name of a scope (`RT_SCOPE_*`).
pub fn scope(s: u8) -> Option<&'static str> {
    lookup(SCOPES, s)
}
/// Parses a scope name or number.
pub fn parse_scope(s: &str) -> Option<u8> {
    rlookup(SCOPES, s).or_else(|| s.parse().ok())
}
/// The name of a table (`main`, `local`, `default`).
pub fn table(t: u32) -> Option<&'static str> {
    lookup(TABLES, t)
}
/// Parses a table name or number.
pub fn parse_table(s: &str) -> Option<u32> {
    rlookup(TABLES, s).or_else(|| s.parse().ok())
}
/// The name of a route type (`RTN_*`).
pub fn route_type(t: u8) -> Option<&'static str> {
    lookup(ROUTE_TYPES, t)
}
/// Parses a route type name.
pub fn parse_route_type(s: &str) -> Option<u8> {
    rlookup(ROUTE_TYPES, s)
}
/// The name of an operational state (`IF_OPER_*`).
pub fn operstate(s: u8) -> &'static str {
    OPERSTATES.get(s as usize).copied().unwrap_or("UNKNOWN")
}
/// Parses a neighbour state name (`permanent`, `REACHABLE`, `noarp`, …).
pub fn parse_nud(s: &str) -> Option<u16> {
    let up = s.to_ascii_uppercase();
    if up == "NONE" {
        return Some(NUD_NONE);
    }
    rlookup(NUD_STATES, &up)
}
/// The `link/TYPE` word of `ip link` for an `ARPHRD_*` value.
pub fn link_type(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "ether",
        24 => "ieee1394",
        512 => "ppp",
        768 => "ipip",
        769 => "tunnel6",
        772 => "loopback",
        776 => "sit",
        778 => "gre",
        823 => "ip6gre",
        65534 => "none",
        _ => return None,
    })
}
/// The name of an IPv6 router preference (`RTA_PREF`).
pub fn pref(p: u8) -> &'static str {
    match p {
        0 => "medium",
        1 => "high",
        3 => "low",
        _ => "invalid",
    }
}
/// The name of a metric (`RTAX_*`).
pub fn metric(m: u16) -> Option<&'static str> {
    lookup(METRICS, m)
}

macro_rules! name_or_number {
    ($(#[$m:meta])* $name:ident, $t:ty, $f:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $t);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match $f(self.0) {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}", self.0),
                }
            }
        }
    };
}

name_or_number!(
    /// Displays a protocol by name, or its number.
    Protocol, u8, protocol);
name_or_number!(
    /// Displays a scope by name, or its number.
    Scope, u8, scope);
name_or_number!(
    /// Displays a table by name, or its number.
    Table, u32, table);
name_or_number!(
    /// Displays a route type by name, or its number.
    RouteType, u8, route_type);
