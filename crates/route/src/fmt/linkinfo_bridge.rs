//! `ip -d link show` details of bridges (`IFLA_BR_*`) and bridge ports (`IFLA_BRPORT_*`,
//! the `bridge_slave` line), table-driven: each row is one attribute in iproute2's print
//! order with its text word, its JSON key and how the value is printed. Attributes absent from
//! the message are skipped, as `ip` does; integers of any width are accepted.

use std::fmt;

use nlkit_wire::{Attr, Attrs};
use serde::ser::SerializeMap;

/// How a value prints.
#[derive(Clone, Copy)]
enum Fmt {
    /// `%u`.
    Uint,
    /// `%#x` (text and JSON string; `0` for zero).
    Hex,
    /// `0x%x` (text and JSON string).
    Hex0x,
    /// `on`/`off` (JSON bool).
    OnOff,
    /// A timer in centiseconds: `%4i.%.2i` (JSON float seconds).
    Timer,
    /// `struct ifla_bridge_id`: `PPPP.a:b:c:d:e:f`.
    BridgeId,
    /// A MAC address.
    Mac,
    /// A big-endian ethertype: `802.1Q`, `802.1ad` or hex.
    VlanProto,
    /// The port state word.
    PortState,
    /// `struct br_boolopt_multi`: `no_linklocal_learn` and `mcast_vlan_snooping`.
    MultiBool,
}

/// `(attribute, text word, JSON key (None: text only), format)`.
type Row = (u16, &'static str, Option<&'static str>, Fmt);

const BRIDGE: &[Row] = &[
    (1, "forward_delay", Some("forward_delay"), Fmt::Uint),
    (2, "hello_time", Some("hello_time"), Fmt::Uint),
    (3, "max_age", Some("max_age"), Fmt::Uint),
    (4, "ageing_time", Some("ageing_time"), Fmt::Uint),
    (5, "stp_state", Some("stp_state"), Fmt::Uint),
    (6, "priority", Some("priority"), Fmt::Uint),
    (7, "vlan_filtering", Some("vlan_filtering"), Fmt::Uint),
    (8, "vlan_protocol", Some("vlan_protocol"), Fmt::VlanProto),
    (11, "bridge_id", Some("bridge_id"), Fmt::BridgeId),
    (10, "designated_root", Some("root_id"), Fmt::BridgeId),
    (12, "root_port", Some("root_port"), Fmt::Uint),
    (13, "root_path_cost", Some("root_path_cost"), Fmt::Uint),
    (14, "topology_change", Some("topology_change"), Fmt::Uint),
    (
        15,
        "topology_change_detected",
        Some("topology_change_detected"),
        Fmt::Uint,
    ),
    (16, "hello_timer", Some("hello_timer"), Fmt::Timer),
    (17, "tcn_timer", Some("tcn_timer"), Fmt::Timer),
    (
        18,
        "topology_change_timer",
        Some("topology_change_timer"),
        Fmt::Timer,
    ),
    (19, "gc_timer", Some("gc_timer"), Fmt::Timer),
    (
        39,
        "vlan_default_pvid",
        Some("vlan_default_pvid"),
        Fmt::Uint,
    ),
    (
        41,
        "vlan_stats_enabled",
        Some("vlan_stats_enabled"),
        Fmt::Uint,
    ),
    (
        45,
        "vlan_stats_per_port",
        Some("vlan_stats_per_port"),
        Fmt::Uint,
    ),
    (9, "group_fwd_mask", Some("group_fwd_mask"), Fmt::Hex),
    (20, "group_address", Some("group_addr"), Fmt::Mac),
    (23, "mcast_snooping", Some("mcast_snooping"), Fmt::Uint),
    (46, "", None, Fmt::MultiBool),
    (22, "mcast_router", Some("mcast_router"), Fmt::Uint),
    (
        24,
        "mcast_query_use_ifaddr",
        Some("mcast_query_use_ifaddr"),
        Fmt::Uint,
    ),
    (25, "mcast_querier", Some("mcast_querier"), Fmt::Uint),
    (
        26,
        "mcast_hash_elasticity",
        Some("mcast_hash_elasticity"),
        Fmt::Uint,
    ),
    (27, "mcast_hash_max", Some("mcast_hash_max"), Fmt::Uint),
    (
        28,
        "mcast_last_member_count",
        Some("mcast_last_member_cnt"),
        Fmt::Uint,
    ),
    (
        29,
        "mcast_startup_query_count",
        Some("mcast_startup_query_cnt"),
        Fmt::Uint,
    ),
    (
        30,
        "mcast_last_member_interval",
        Some("mcast_last_member_intvl"),
        Fmt::Uint,
    ),
    (
        31,
        "mcast_membership_interval",
        Some("mcast_membership_intvl"),
        Fmt::Uint,
    ),
    (
        32,
        "mcast_querier_interval",
        Some("mcast_querier_intvl"),
        Fmt::Uint,
    ),
    (
        33,
        "mcast_query_interval",
        Some("mcast_query_intvl"),
        Fmt::Uint,
    ),
    (
        34,
        "mcast_query_response_interval",
        Some("mcast_query_response_intvl"),
        Fmt::Uint,
    ),
    (
        35,
        "mcast_startup_query_interval",
        Some("mcast_startup_query_intvl"),
        Fmt::Uint,
    ),
    (
        42,
        "mcast_stats_enabled",
        Some("mcast_stats_enabled"),
        Fmt::Uint,
    ),
    (
        43,
        "mcast_igmp_version",
        Some("mcast_igmp_version"),
        Fmt::Uint,
    ),
    (
        44,
        "mcast_mld_version",
        Some("mcast_mld_version"),
        Fmt::Uint,
    ),
    (36, "nf_call_iptables", Some("nf_call_iptables"), Fmt::Uint),
    (
        37,
        "nf_call_ip6tables",
        Some("nf_call_ip6tables"),
        Fmt::Uint,
    ),
    (
        38,
        "nf_call_arptables",
        Some("nf_call_arptables"),
        Fmt::Uint,
    ),
];

const PORT: &[Row] = &[
    (1, "state", Some("state"), Fmt::PortState),
    (2, "priority", Some("priority"), Fmt::Uint),
    (3, "cost", Some("cost"), Fmt::Uint),
    (4, "hairpin", Some("hairpin"), Fmt::OnOff),
    (5, "guard", Some("guard"), Fmt::OnOff),
    (6, "root_block", Some("root_block"), Fmt::OnOff),
    (7, "fastleave", Some("fastleave"), Fmt::OnOff),
    (8, "learning", Some("learning"), Fmt::OnOff),
    (9, "flood", Some("flood"), Fmt::OnOff),
    (17, "port_id", Some("id"), Fmt::Hex),
    (18, "port_no", Some("no"), Fmt::Hex),
    (15, "designated_port", Some("designated_port"), Fmt::Uint),
    (16, "designated_cost", Some("designated_cost"), Fmt::Uint),
    (14, "designated_bridge", Some("bridge_id"), Fmt::BridgeId),
    (13, "designated_root", Some("root_id"), Fmt::BridgeId),
    (23, "hold_timer", Some("hold_timer"), Fmt::Timer),
    (
        21,
        "message_age_timer",
        Some("message_age_timer"),
        Fmt::Timer,
    ),
    (
        22,
        "forward_delay_timer",
        Some("forward_delay_timer"),
        Fmt::Timer,
    ),
    (
        19,
        "topology_change_ack",
        Some("topology_change_ack"),
        Fmt::Uint,
    ),
    (20, "config_pending", Some("config_pending"), Fmt::Uint),
    (10, "proxy_arp", Some("proxy_arp"), Fmt::OnOff),
    (12, "proxy_arp_wifi", Some("proxy_arp_wifi"), Fmt::OnOff),
    (25, "mcast_router", Some("multicast_router"), Fmt::Uint),
    (7, "mcast_fast_leave", None, Fmt::OnOff),
    (27, "mcast_flood", Some("mcast_flood"), Fmt::OnOff),
    (30, "bcast_flood", Some("bcast_flood"), Fmt::OnOff),
    (28, "mcast_to_unicast", Some("mcast_to_unicast"), Fmt::OnOff),
    (32, "neigh_suppress", Some("neigh_suppress"), Fmt::OnOff),
    (31, "group_fwd_mask", Some("group_fwd_mask"), Fmt::Hex),
    (
        31,
        "group_fwd_mask_str",
        Some("group_fwd_mask_str"),
        Fmt::Hex0x,
    ),
    (29, "vlan_tunnel", Some("vlan_tunnel"), Fmt::OnOff),
    (33, "isolated", Some("isolated"), Fmt::OnOff),
    (39, "locked", Some("locked"), Fmt::OnOff),
];

/// The attributes of `data` by type (the last of each type wins; types above 63 ignored).
fn index(data: &[u8]) -> [Option<Attr<'_>>; 64] {
    let mut t = [None; 64];
    for a in Attrs::new(data).flatten() {
        if let Some(slot) = t.get_mut(a.ty() as usize) {
            *slot = Some(a);
        }
    }
    t
}

fn bridge_id(p: &[u8]) -> Option<String> {
    let p = p.get(..8)?;
    let mac: Vec<String> = p[2..].iter().map(|b| format!("{b:x}")).collect();
    Some(format!("{:02x}{:02x}.{}", p[0], p[1], mac.join(":")))
}

fn hash_x(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

const PORT_STATES: [&str; 5] = [
    "disabled",
    "listening",
    "learning",
    "forwarding",
    "blocking",
];

/// One printed value.
enum Val {
    Uint(u64),
    Str(String),
    Bool(bool),
    Timer(u64),
}

fn value(a: &Attr<'_>, f: Fmt) -> Option<Val> {
    Some(match f {
        Fmt::Uint => Val::Uint(a.uint().ok()?),
        Fmt::Hex => Val::Str(hash_x(a.uint().ok()?)),
        Fmt::Hex0x => Val::Str(format!("0x{:x}", a.uint().ok()?)),
        Fmt::OnOff => Val::Bool(a.uint().ok()? != 0),
        Fmt::Timer => Val::Timer(a.uint().ok()?),
        Fmt::BridgeId => Val::Str(bridge_id(a.payload())?),
        Fmt::Mac => Val::Str(super::Mac(a.payload()).to_string()),
        Fmt::VlanProto => Val::Str(match a.be16().ok()? {
            0x8100 => "802.1Q".into(),
            0x88a8 => "802.1ad".into(),
            n => format!("{n:#06x}"),
        }),
        Fmt::PortState => {
            let s = a.uint().ok()?;
            Val::Str(
                PORT_STATES
                    .get(s as usize)
                    .map_or_else(|| s.to_string(), |w| (*w).to_owned()),
            )
        }
        Fmt::MultiBool => return None,
    })
}

/// `(no_linklocal_learn, mcast_vlan_snooping)` from `struct br_boolopt_multi`, each when
/// its mask bit is set.
fn multi_bool(a: &Attr<'_>) -> [(&'static str, Option<bool>); 2] {
    let p = a.payload();
    let (val, mask) = match (p.get(0..4), p.get(4..8)) {
        (Some(v), Some(m)) => (
            u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]),
        ),
        _ => (0, 0),
    };
    let bit = |b: u32| (mask & (1 << b) != 0).then_some(val & (1 << b) != 0);
    [
        ("no_linklocal_learn", bit(0)),
        ("mcast_vlan_snooping", bit(1)),
    ]
}

fn text(rows: &[Row], data: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let t = index(data);
    for &(ty, word, _, fm) in rows {
        let Some(a) = t[ty as usize] else { continue };
        if let Fmt::MultiBool = fm {
            for (w, v) in multi_bool(&a) {
                if let Some(v) = v {
                    write!(f, "{w} {} ", u8::from(v))?;
                }
            }
            continue;
        }
        match value(&a, fm) {
            Some(Val::Uint(v)) => write!(f, "{word} {v} ")?,
            Some(Val::Str(s)) => write!(f, "{word} {s} ")?,
            Some(Val::Bool(b)) => write!(f, "{word} {} ", if b { "on" } else { "off" })?,
            Some(Val::Timer(cs)) => write!(f, "{word} {:4}.{:02} ", cs / 100, cs % 100)?,
            None => {}
        }
    }
    Ok(())
}

fn json<M: SerializeMap>(rows: &[Row], data: &[u8], m: &mut M) -> Result<(), M::Error> {
    let t = index(data);
    for &(ty, _, key, fm) in rows {
        let Some(a) = t[ty as usize] else { continue };
        if let Fmt::MultiBool = fm {
            for (w, v) in multi_bool(&a) {
                if let Some(v) = v {
                    m.serialize_entry(w, &u8::from(v))?;
                }
            }
            continue;
        }
        let Some(key) = key else { continue };
        match value(&a, fm) {
            Some(Val::Uint(v)) => m.serialize_entry(key, &v)?,
            Some(Val::Str(s)) => m.serialize_entry(key, &s)?,
            Some(Val::Bool(b)) => m.serialize_entry(key, &b)?,
            Some(Val::Timer(cs)) => m.serialize_entry(key, &(cs as f64 / 100.0))?,
            None => {}
        }
    }
    Ok(())
}

/// The options of a bridge's kind line.
pub(crate) fn bridge_text(data: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    text(BRIDGE, data, f)
}

/// The options of a bridge port's `bridge_slave` line.
pub(crate) fn port_text(data: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    text(PORT, data, f)
}

/// A bridge's `info_data` / a port's `info_slave_data` JSON object.
pub(crate) struct BridgeJson<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) port: bool,
}

impl serde::Serialize for BridgeJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        json(if self.port { PORT } else { BRIDGE }, self.data, &mut m)?;
        m.end()
    }
}
