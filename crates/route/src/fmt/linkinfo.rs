//! The details `ip -d link show` adds: generic device attributes, the kind line
//! (`IFLA_LINKINFO`) with the options of vxlan, macvlan, macvtap and bridge, and the slave
//! kind (with the options of bridge ports).
//! Bridges and bridge ports are in `linkinfo_bridge`. Other kinds print their kind word only (their options are in
//! [`LinkView::kind_info`](crate::LinkView::kind_info)).

use std::fmt;
use std::net::IpAddr;

use serde::ser::SerializeMap;

use super::LinkNames;
use crate::kind_names::{name, MACVLAN_MODES};
use crate::{KindInfo, LinkView, MacvlanInfo, VxlanInfo};

fn gen_mode(m: u8) -> String {
    match m {
        0 => "eui64".into(),
        1 => "none".into(),
        2 => "stable_secret".into(),
        3 => "random".into(),
        n => format!("{n:#04x}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the `-d` text that follows the `link/…` line's addresses.
pub(crate) fn details_text(
    l: &LinkView<'_>,
    names: &LinkNames,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    write!(f, " promiscuity {} ", l.promiscuity().unwrap_or(0))?;
    if let Some(v) = l.allmulti() {
        write!(f, " allmulti {v} ")?;
    }
    if let Some(v) = l.min_mtu() {
        write!(f, "minmtu {v} ")?;
    }
    if let Some(v) = l.max_mtu() {
        write!(f, "maxmtu {v} ")?;
    }
    if let Some(kind) = l.kind() {
        write!(f, "\n    {kind} ")?;
        match l.kind_info() {
            Ok(Some(KindInfo::Vxlan(x))) => vxlan_text(&x, names, f)?,
            Ok(Some(KindInfo::Macvlan(m))) => macvlan_text(&m, f)?,
            Ok(Some(KindInfo::Bridge(_))) => {
                super::linkinfo_bridge::bridge_text(l.info_data().unwrap_or(&[]), f)?
            }
            Ok(Some(KindInfo::Vlan(v))) => vlan_text(&v, f)?,
            Ok(Some(KindInfo::Vrf(v))) => {
                if let Some(t) = v.table {
                    write!(f, "table {t} ")?;
                }
            }
            Ok(Some(KindInfo::Ipvlan(v))) => {
                for w in ipvlan_words(&v) {
                    write!(f, "{w} ")?;
                }
            }
            _ => {}
        }
    }
    if let Some(sk) = l.slave_kind() {
        write!(f, "\n    {sk}_slave ")?;
        if let ("bridge", Some(d)) = (sk, l.slave_info_data()) {
            super::linkinfo_bridge::port_text(d, f)?;
        }
    }
    if let Some(m) = l.inet6_addr_gen_mode() {
        write!(f, "addrgenmode {} ", gen_mode(m))?;
    }
    let nums = [
        ("numtxqueues", l.num_tx_queues()),
        ("numrxqueues", l.num_rx_queues()),
        ("gso_max_size", l.gso_max_size()),
        ("gso_max_segs", l.gso_max_segs()),
        ("tso_max_size", l.tso_max_size()),
        ("tso_max_segs", l.tso_max_segs()),
        ("gro_max_size", l.gro_max_size()),
    ];
    for (k, v) in nums {
        if let Some(v) = v {
            write!(f, "{k} {v} ")?;
        }
    }
    if let Some(v) = l.phys_port_name() {
        write!(f, "portname {v} ")?;
    }
    if let Some(v) = l.phys_port_id() {
        write!(f, "portid {} ", hex(v))?;
    }
    if let Some(v) = l.phys_switch_id() {
        write!(f, "switchid {} ", hex(v))?;
    }
    if let Some(v) = l.parent_dev_bus_name() {
        write!(f, "parentbus {v} ")?;
    }
    if let Some(v) = l.parent_dev_name() {
        write!(f, "parentdev {v} ")?;
    }
    Ok(())
}

fn is_multicast(a: IpAddr) -> bool {
    a.is_multicast()
}

fn vxlan_text(x: &VxlanInfo, names: &LinkNames, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if x.collect_metadata == Some(true) {
        f.write_str("external ")?;
    }
    if x.vnifilter == Some(true) {
        f.write_str("vnifilter ")?;
    }
    if let Some(id) = x.id {
        write!(f, "id {id} ")?;
    }
    if let Some(g) = x.group.filter(|a| !a.is_unspecified()) {
        let w = if is_multicast(g) { "group" } else { "remote" };
        write!(f, "{w} {g} ")?;
    }
    if let Some(a) = x.local.filter(|a| !a.is_unspecified()) {
        write!(f, "local {a} ")?;
    }
    if let Some(d) = x.link.filter(|&d| d != 0) {
        match names.get(d) {
            Some(n) => write!(f, "dev {n} ")?,
            None => write!(f, "dev {d} ")?,
        }
    }
    if let Some((lo, hi)) = x.port_range {
        write!(f, "srcport {lo} {hi} ")?;
    }
    if let Some(p) = x.port {
        write!(f, "dstport {p} ")?;
    }
    if x.learning == Some(false) {
        f.write_str("nolearning ")?;
    }
    for (on, w) in [
        (x.proxy, "proxy"),
        (x.rsc, "rsc"),
        (x.l2miss, "l2miss"),
        (x.l3miss, "l3miss"),
    ] {
        if on == Some(true) {
            write!(f, "{w} ")?;
        }
    }
    match x.tos {
        Some(1) => f.write_str("tos inherit ")?,
        Some(t) if t != 0 => write!(f, "tos {t:#x} ")?,
        _ => {}
    }
    if x.ttl_inherit == Some(true) {
        f.write_str("ttl inherit ")?;
    } else if let Some(t) = x.ttl {
        if t == 0 {
            f.write_str("ttl auto ")?;
        } else {
            write!(f, "ttl {t} ")?;
        }
    }
    match x.df {
        Some(1) => f.write_str("df set ")?,
        Some(2) => f.write_str("df inherit ")?,
        _ => {}
    }
    if let Some(l) = x.label.filter(|&l| l != 0) {
        write!(f, "flowlabel {l:#x} ")?;
    }
    match x.ageing {
        Some(0) => f.write_str("ageing none ")?,
        Some(a) => write!(f, "ageing {a} ")?,
        None => {}
    }
    if let Some(m) = x.limit.filter(|&m| m != 0) {
        write!(f, "maxaddr {m} ")?;
    }
    for (v, w) in [
        (x.udp_csum, "udpcsum"),
        (x.udp_zero_csum6_tx, "udp6zerocsumtx"),
        (x.udp_zero_csum6_rx, "udp6zerocsumrx"),
    ] {
        match v {
            Some(true) => write!(f, "{w} ")?,
            Some(false) => write!(f, "no{w} ")?,
            None => {}
        }
    }
    if x.remcsum_tx == Some(true) {
        f.write_str("remcsumtx ")?;
    }
    if x.remcsum_rx == Some(true) {
        f.write_str("remcsumrx ")?;
    }
    if x.gbp {
        f.write_str("gbp ")?;
    }
    if x.gpe {
        f.write_str("gpe ")?;
    }
    Ok(())
}

const VLAN_FLAGS: [(u32, &str); 5] = [
    (1, "REORDER_HDR"),
    (2, "GVRP"),
    (4, "LOOSE_BINDING"),
    (8, "MVRP"),
    (16, "BRIDGE_BINDING"),
];

fn vlan_proto(p: Option<u16>) -> String {
    match p {
        Some(0x8100) => "802.1Q".into(),
        Some(0x88a8) => "802.1ad".into(),
        Some(n) => format!("{n:#06x}"),
        None => "802.1q".into(),
    }
}

fn vlan_text(v: &crate::VlanInfo, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some(id) = v.id else { return Ok(()) };
    write!(f, "protocol {} id {id} ", vlan_proto(v.protocol))?;
    if let Some(fl) = v.flags {
        f.write_str("<")?;
        let names: Vec<&str> = VLAN_FLAGS
            .iter()
            .filter(|e| fl & e.0 != 0)
            .map(|e| e.1)
            .collect();
        write!(f, "{}> ", names.join(","))?;
    }
    Ok(())
}

/// `mode l2|l3|l3s` and `bridge|private|vepa`, as `ip` prints them.
fn ipvlan_words(v: &crate::IpvlanInfo) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(m) = v.mode {
        let name = match m {
            0 => "l2",
            1 => "l3",
            2 => "l3s",
            _ => "unknown",
        };
        w.push(format!("mode {name}"));
    }
    if let Some(fl) = v.flags {
        w.push(ipvlan_flag(fl).to_owned());
    }
    w
}

fn ipvlan_flag(fl: u16) -> &'static str {
    if fl & nlkit_wire::consts::IPVLAN_F_PRIVATE != 0 {
        "private"
    } else if fl & nlkit_wire::consts::IPVLAN_F_VEPA != 0 {
        "vepa"
    } else {
        "bridge"
    }
}

fn macvlan_mode(m: u32) -> &'static str {
    name(MACVLAN_MODES, m).unwrap_or("unknown")
}

fn macvlan_text(m: &MacvlanInfo, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some(mode) = m.mode else { return Ok(()) };
    write!(f, "mode {} ", macvlan_mode(mode))?;
    let flags = m.flags.unwrap_or(0);
    if flags & nlkit_wire::consts::MACVLAN_FLAG_NOPROMISC != 0 {
        f.write_str("nopromisc ")?;
    }
    if flags & nlkit_wire::consts::MACVLAN_FLAG_NODST != 0 {
        f.write_str("nodst ")?;
    }
    if let Some(v) = m.bc_queue_len {
        write!(f, "bcqueuelen {v} ")?;
    }
    if let Some(v) = m.bc_queue_len_used {
        write!(f, "usedbcqueuelen {v} ")?;
    }
    Ok(())
}

/// Writes the `-d` JSON fields (`promiscuity`, …, `linkinfo`, `inet6_addr_gen_mode`, …).
pub(crate) fn details_json<M: SerializeMap>(
    l: &LinkView<'_>,
    names: &LinkNames,
    m: &mut M,
) -> Result<(), M::Error> {
    m.serialize_entry("promiscuity", &l.promiscuity().unwrap_or(0))?;
    if let Some(v) = l.allmulti() {
        m.serialize_entry("allmulti", &v)?;
    }
    if let Some(v) = l.min_mtu() {
        m.serialize_entry("min_mtu", &v)?;
    }
    if let Some(v) = l.max_mtu() {
        m.serialize_entry("max_mtu", &v)?;
    }
    if l.kind().is_some() || l.slave_kind().is_some() {
        m.serialize_entry("linkinfo", &LinkInfoJson { link: l, names })?;
    }
    if let Some(g) = l.inet6_addr_gen_mode() {
        m.serialize_entry("inet6_addr_gen_mode", &gen_mode(g))?;
    }
    let nums = [
        ("num_tx_queues", l.num_tx_queues()),
        ("num_rx_queues", l.num_rx_queues()),
        ("gso_max_size", l.gso_max_size()),
        ("gso_max_segs", l.gso_max_segs()),
        ("tso_max_size", l.tso_max_size()),
        ("tso_max_segs", l.tso_max_segs()),
        ("gro_max_size", l.gro_max_size()),
    ];
    for (k, v) in nums {
        if let Some(v) = v {
            m.serialize_entry(k, &v)?;
        }
    }
    if let Some(v) = l.phys_port_name() {
        m.serialize_entry("phys_port_name", v)?;
    }
    if let Some(v) = l.phys_port_id() {
        m.serialize_entry("phys_port_id", &hex(v))?;
    }
    if let Some(v) = l.phys_switch_id() {
        m.serialize_entry("phys_switch_id", &hex(v))?;
    }
    if let Some(v) = l.parent_dev_bus_name() {
        m.serialize_entry("parentbus", v)?;
    }
    if let Some(v) = l.parent_dev_name() {
        m.serialize_entry("parentdev", v)?;
    }
    Ok(())
}

struct LinkInfoJson<'v, 'a, 'n> {
    link: &'v LinkView<'a>,
    names: &'n LinkNames,
}

impl serde::Serialize for LinkInfoJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.link;
        let mut m = s.serialize_map(None)?;
        if let Some(k) = l.kind() {
            m.serialize_entry("info_kind", k)?;
            match l.kind_info() {
                Ok(Some(KindInfo::Vxlan(x))) => m.serialize_entry(
                    "info_data",
                    &VxlanJson {
                        x,
                        names: self.names,
                    },
                )?,
                Ok(Some(KindInfo::Macvlan(x))) if x.mode.is_some() => {
                    m.serialize_entry("info_data", &MacvlanJson(x))?
                }
                Ok(Some(KindInfo::Vlan(v))) if v.id.is_some() => {
                    m.serialize_entry("info_data", &VlanJson(v))?
                }
                Ok(Some(KindInfo::Vrf(v))) => m.serialize_entry("info_data", &VrfJson(v))?,
                Ok(Some(KindInfo::Ipvlan(v))) => m.serialize_entry("info_data", &IpvlanJson(v))?,
                Ok(Some(KindInfo::Bridge(_))) => {
                    if let Some(data) = l.info_data() {
                        let j = super::linkinfo_bridge::BridgeJson { data, port: false };
                        m.serialize_entry("info_data", &j)?;
                    }
                }
                _ => {}
            }
        }
        if let Some(sk) = l.slave_kind() {
            m.serialize_entry("info_slave_kind", sk)?;
            if let ("bridge", Some(data)) = (sk, l.slave_info_data()) {
                let j = super::linkinfo_bridge::BridgeJson { data, port: true };
                m.serialize_entry("info_slave_data", &j)?;
            }
        }
        m.end()
    }
}

struct VxlanJson<'n> {
    x: VxlanInfo,
    names: &'n LinkNames,
}

impl serde::Serialize for VxlanJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = &self.x;
        let mut m = s.serialize_map(None)?;
        if x.collect_metadata == Some(true) {
            m.serialize_entry("external", &true)?;
        }
        if x.vnifilter == Some(true) {
            m.serialize_entry("vnifilter", &true)?;
        }
        if let Some(id) = x.id {
            m.serialize_entry("id", &id)?;
        }
        if let Some(g) = x.group.filter(|a| !a.is_unspecified()) {
            let k = match (is_multicast(g), g.is_ipv6()) {
                (true, false) => "group",
                (false, false) => "remote",
                (true, true) => "group6",
                (false, true) => "remote6",
            };
            m.serialize_entry(k, &g)?;
        }
        if let Some(a) = x.local.filter(|a| !a.is_unspecified()) {
            m.serialize_entry(if a.is_ipv6() { "local6" } else { "local" }, &a)?;
        }
        if let Some(d) = x.link.filter(|&d| d != 0) {
            match self.names.get(d) {
                Some(n) => m.serialize_entry("link", n)?,
                None => m.serialize_entry("link_index", &d)?,
            }
        }
        if let Some((low, high)) = x.port_range {
            m.serialize_entry("port_range", &PortRange { low, high })?;
        }
        if let Some(p) = x.port {
            m.serialize_entry("port", &p)?;
        }
        if let Some(l) = x.learning {
            m.serialize_entry("learning", &l)?;
        }
        for (on, w) in [
            (x.proxy, "proxy"),
            (x.rsc, "rsc"),
            (x.l2miss, "l2miss"),
            (x.l3miss, "l3miss"),
        ] {
            if on == Some(true) {
                m.serialize_entry(w, &true)?;
            }
        }
        if let Some(t) = x.tos.filter(|&t| t != 0) {
            m.serialize_entry("tos", &format!("{t:#x}"))?;
        }
        if x.ttl_inherit != Some(true) {
            if let Some(t) = x.ttl {
                m.serialize_entry("ttl", &t)?;
            }
        }
        match x.df {
            Some(0) => m.serialize_entry("df", "unset")?,
            Some(1) => m.serialize_entry("df", "set")?,
            Some(2) => m.serialize_entry("df", "inherit")?,
            _ => {}
        }
        if let Some(l) = x.label.filter(|&l| l != 0) {
            m.serialize_entry("label", &format!("{l:#x}"))?;
        }
        if let Some(a) = x.ageing {
            m.serialize_entry("ageing", &a)?;
        }
        if let Some(v) = x.limit.filter(|&v| v != 0) {
            m.serialize_entry("limit", &v)?;
        }
        for (v, w) in [
            (x.udp_csum, "udp_csum"),
            (x.udp_zero_csum6_tx, "udp_zero_csum6_tx"),
            (x.udp_zero_csum6_rx, "udp_zero_csum6_rx"),
        ] {
            if let Some(v) = v {
                m.serialize_entry(w, &v)?;
            }
        }
        if x.remcsum_tx == Some(true) {
            m.serialize_entry("remcsum_tx", &true)?;
        }
        if x.remcsum_rx == Some(true) {
            m.serialize_entry("remcsum_rx", &true)?;
        }
        if x.gbp {
            m.serialize_entry("gbp", &true)?;
        }
        if x.gpe {
            m.serialize_entry("gpe", &true)?;
        }
        m.end()
    }
}

#[derive(serde::Serialize)]
struct PortRange {
    low: u16,
    high: u16,
}

struct MacvlanJson(MacvlanInfo);

impl serde::Serialize for MacvlanJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = &self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("mode", macvlan_mode(x.mode.unwrap_or(0)))?;
        let flags = x.flags.unwrap_or(0);
        if flags & nlkit_wire::consts::MACVLAN_FLAG_NOPROMISC != 0 {
            m.serialize_entry("nopromisc", &true)?;
        }
        if flags & nlkit_wire::consts::MACVLAN_FLAG_NODST != 0 {
            m.serialize_entry("nodst", &true)?;
        }
        if let Some(v) = x.bc_queue_len {
            m.serialize_entry("bcqueuelen", &v)?;
        }
        if let Some(v) = x.bc_queue_len_used {
            m.serialize_entry("usedbcqueuelen", &v)?;
        }
        m.end()
    }
}

struct VlanJson(crate::VlanInfo);

impl serde::Serialize for VlanJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = &self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("protocol", &vlan_proto(v.protocol))?;
        m.serialize_entry("id", &v.id.unwrap_or(0))?;
        if let Some(fl) = v.flags {
            let names: Vec<&str> = VLAN_FLAGS
                .iter()
                .filter(|e| fl & e.0 != 0)
                .map(|e| e.1)
                .collect();
            m.serialize_entry("flags", &names)?;
        }
        m.end()
    }
}

struct VrfJson(crate::VrfInfo);

impl serde::Serialize for VrfJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(t) = self.0.table {
            m.serialize_entry("table", &t)?;
        }
        m.end()
    }
}

struct IpvlanJson(crate::IpvlanInfo);

impl serde::Serialize for IpvlanJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = &self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(mode) = v.mode {
            let name = match mode {
                0 => "l2",
                1 => "l3",
                2 => "l3s",
                _ => "unknown",
            };
            m.serialize_entry("mode", name)?;
        }
        if let Some(fl) = v.flags {
            m.serialize_entry(ipvlan_flag(fl), &true)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use nlkit_wire::consts::*;
    use nlkit_wire::{IfInfoMsg, MessageBuilder, Messages};

    use crate::fmt::{link_json, link_text, LinkNames};
    use crate::LinkView;

    /// A link message of `kind` with `data` as `IFLA_INFO_DATA`.
    fn with_kind(kind: &str, data: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWLINK, 0, 0);
        b.header(&IfInfoMsg {
            index: 5,
            ty: 1,
            ..Default::default()
        });
        b.attr_str(IFLA_IFNAME, "x0").attr_u32(IFLA_PROMISCUITY, 0);
        let info = b.nest_begin(IFLA_LINKINFO);
        b.attr_str(IFLA_INFO_KIND, kind);
        let d = b.nest_begin(IFLA_INFO_DATA);
        data(&mut b);
        b.nest_end(d);
        b.nest_end(info);
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    fn details(bytes: &[u8]) -> (String, serde_json::Value) {
        let m = Messages::new(bytes).next().unwrap().unwrap();
        let l = LinkView::parse(&m).unwrap();
        let names = LinkNames::new();
        let text = link_text(&l, &names, true).details(true).to_string();
        let json = serde_json::to_value(link_json(&l, &names, None).details(true)).unwrap();
        (text, json)
    }

    #[test]
    fn vlan_vrf_ipvlan_details() {
        let vlan = with_kind("vlan", |b| {
            b.attr_u16(IFLA_VLAN_ID, 10)
                .attr_be16(IFLA_VLAN_PROTOCOL, 0x8100);
            let mut fl = [0u8; 8];
            fl[..4].copy_from_slice(&1u32.to_ne_bytes());
            fl[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
            b.attr_bytes(IFLA_VLAN_FLAGS, &fl);
        });
        let (t, j) = details(&vlan);
        assert!(
            t.ends_with("\n    vlan protocol 802.1Q id 10 <REORDER_HDR> "),
            "{t:?}"
        );
        assert_eq!(
            j["linkinfo"]["info_data"],
            serde_json::json!({"protocol": "802.1Q", "id": 10, "flags": ["REORDER_HDR"]})
        );
        let (t, j) = details(&with_kind("vrf", |b| {
            b.attr_u32(IFLA_VRF_TABLE, 10);
        }));
        assert!(t.ends_with("\n    vrf table 10 "), "{t:?}");
        assert_eq!(j["linkinfo"]["info_data"]["table"], 10);
        let (t, j) = details(&with_kind("ipvlan", |b| {
            b.attr_u16(IFLA_IPVLAN_MODE, IPVLAN_MODE_L3)
                .attr_u16(IFLA_IPVLAN_FLAGS, 0);
        }));
        assert!(t.ends_with("\n    ipvlan mode l3 bridge "), "{t:?}");
        assert_eq!(
            j["linkinfo"]["info_data"],
            serde_json::json!({"mode": "l3", "bridge": true})
        );
    }

    /// Garbage kind data prints the kind word and no options, never panics.
    #[test]
    fn malformed_kind_data() {
        for kind in ["vlan", "vxlan", "bridge", "macvlan", "vrf", "ipvlan"] {
            let (t, _) = details(&with_kind(kind, |b| {
                b.attr_bytes(1, &[1]).attr_bytes(2, &[]);
            }));
            assert!(t.contains(&format!("\n    {kind} ")), "{t:?}");
        }
    }
}
