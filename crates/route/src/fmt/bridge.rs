//! `bridge fdb show` and `bridge vlan show` text and `bridge -j` JSON.

use std::fmt;

use nlkit_wire::consts::*;
use serde::ser::SerializeMap;

use super::{LinkNames, Mac};
use crate::{BridgeVlan, NeighView};

/// `bridge fdb show` text for one entry; see [`fdb_text`].
#[derive(Debug, Clone, Copy)]
pub struct FdbText<'v, 'a, 'n> {
    entry: &'v NeighView<'a>,
    names: &'n LinkNames,
    show_dev: bool,
}

/// Formats an FDB entry like `bridge fdb show` (no final newline; like `bridge`, the line
/// may end in a space). `show_dev` false leaves out `dev NAME`, as `bridge fdb show dev DEV`
/// does.
///
/// ```
/// use nlkit_wire::{consts::*, Messages, MessageBuilder};
/// use nlkit_route::{fmt::{fdb_text, LinkNames}, request, Fdb, FdbOp, NeighView};
/// let mut b = MessageBuilder::new();
/// request::add_fdb(&mut b, 1, &Fdb::new(3, &[2, 0, 0, 0, 0, 1]).state(NUD_PERMANENT), FdbOp::Add).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NeighView::parse(&m).unwrap();
/// let mut names = LinkNames::new();
/// names.insert(3, "vx0");
/// assert_eq!(fdb_text(&v, &names, true).to_string(), "02:00:00:00:00:01 dev vx0 self permanent");
/// ```
pub fn fdb_text<'v, 'a, 'n>(
    entry: &'v NeighView<'a>,
    names: &'n LinkNames,
    show_dev: bool,
) -> FdbText<'v, 'a, 'n> {
    FdbText {
        entry,
        names,
        show_dev,
    }
}

const FDB_FLAGS: &[(u8, &str)] = &[
    (NTF_SELF, "self"),
    (NTF_ROUTER, "router"),
    (NTF_EXT_LEARNED, "extern_learn"),
    (NTF_OFFLOADED, "offload"),
    (NTF_MASTER, "master"),
    (NTF_STICKY, "sticky"),
];
/// `NTF_EXT_LOCKED` in `NDA_FLAGS_EXT`.
const NTF_EXT_LOCKED: u32 = 1 << 1;

fn fdb_flags(v: &NeighView<'_>) -> impl Iterator<Item = &'static str> {
    let f = v.flags();
    let locked = v.flags_ext().unwrap_or(0) & NTF_EXT_LOCKED != 0;
    FDB_FLAGS
        .iter()
        .filter(move |e| f & e.0 != 0)
        .map(|e| e.1)
        .chain(locked.then_some("locked"))
}

/// The state word of `bridge` (`permanent`, `static`, `stale`, empty, or the number).
enum FdbState {
    Word(&'static str),
    Number(u16),
}

fn fdb_state(s: u16) -> FdbState {
    if s & NUD_PERMANENT != 0 {
        FdbState::Word("permanent")
    } else if s & NUD_NOARP != 0 {
        FdbState::Word("static")
    } else if s & NUD_STALE != 0 {
        FdbState::Word("stale")
    } else if s & NUD_REACHABLE != 0 {
        FdbState::Word("")
    } else {
        FdbState::Number(s)
    }
}

/// C's `%#x`: `0` for zero, else `0x…`.
fn hash_x(n: u16) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("{n:#x}")
    }
}

impl fmt::Display for FdbText<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.entry;
        if v.msg_type() == RTM_DELNEIGH {
            f.write_str("Deleted ")?;
        }
        if let Some(mac) = v.lladdr() {
            write!(f, "{} ", Mac(mac))?;
        }
        if self.show_dev && v.ifindex() != 0 {
            write!(f, "dev {} ", self.names.name(v.ifindex()))?;
        }
        if let Some(d) = v.dst() {
            write!(f, "dst {d} ")?;
        }
        if let Some(vid) = v.vlan().filter(|&x| x != 0) {
            write!(f, "vlan {vid} ")?;
        }
        if let Some(p) = v.port() {
            write!(f, "port {p} ")?;
        }
        if let Some(x) = v.vni() {
            write!(f, "vni {x} ")?;
        }
        if let Some(x) = v.src_vni() {
            write!(f, "src_vni {x} ")?;
        }
        if let Some(i) = v.via() {
            if v.link_netnsid().is_some() {
                write!(f, "via ifindex {i} ")?;
            } else {
                write!(f, "via {} ", self.names.name(i))?;
            }
        }
        if let Some(n) = v.nh_id() {
            write!(f, "nhid {n} ")?;
        }
        if let Some(n) = v.link_netnsid() {
            write!(f, "link-netnsid {n} ")?;
        }
        for w in fdb_flags(v) {
            write!(f, "{w} ")?;
        }
        if let Some(m) = v.master() {
            write!(f, "master {} ", self.names.name(m))?;
        }
        match fdb_state(v.state()) {
            FdbState::Word(w) => f.write_str(w),
            FdbState::Number(n) => write!(f, "state {}", hash_x(n)),
        }
    }
}

/// `bridge -j fdb show` JSON for one entry; see [`fdb_json`].
#[derive(Debug, Clone, Copy)]
pub struct FdbJson<'v, 'a, 'n> {
    entry: &'v NeighView<'a>,
    names: &'n LinkNames,
    show_dev: bool,
}

/// A serializable FDB entry with `bridge -j fdb` field names (`mac`, `ifname`, `dst`,
/// `vlan`, `port`, `vni`, `flags`, `master`, `state`, …).
///
/// ```
/// use nlkit_wire::{consts::*, Messages, MessageBuilder};
/// use nlkit_route::{fmt::{fdb_json, LinkNames}, request, Fdb, FdbOp, NeighView};
/// let mut b = MessageBuilder::new();
/// request::add_fdb(&mut b, 1, &Fdb::new(3, &[2, 0, 0, 0, 0, 1]).master(), FdbOp::Add).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NeighView::parse(&m).unwrap();
/// let j = serde_json::to_string(&fdb_json(&v, &LinkNames::new(), true)).unwrap();
/// assert_eq!(j, r#"{"mac":"02:00:00:00:00:01","ifname":"if3","flags":["master"],"state":"permanent"}"#);
/// ```
pub fn fdb_json<'v, 'a, 'n>(
    entry: &'v NeighView<'a>,
    names: &'n LinkNames,
    show_dev: bool,
) -> FdbJson<'v, 'a, 'n> {
    FdbJson {
        entry,
        names,
        show_dev,
    }
}

impl serde::Serialize for FdbJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.entry;
        let mut m = s.serialize_map(None)?;
        if v.msg_type() == RTM_DELNEIGH {
            m.serialize_entry("deleted", &true)?;
        }
        if let Some(mac) = v.lladdr() {
            m.serialize_entry("mac", &Mac(mac))?;
        }
        if self.show_dev && v.ifindex() != 0 {
            m.serialize_entry("ifname", &self.names.name(v.ifindex()))?;
        }
        if let Some(d) = v.dst() {
            m.serialize_entry("dst", &d)?;
        }
        if let Some(vid) = v.vlan().filter(|&x| x != 0) {
            m.serialize_entry("vlan", &vid)?;
        }
        if let Some(p) = v.port() {
            m.serialize_entry("port", &p)?;
        }
        if let Some(x) = v.vni() {
            m.serialize_entry("vni", &x)?;
        }
        if let Some(x) = v.src_vni() {
            m.serialize_entry("src_vni", &x)?;
        }
        if let Some(i) = v.via() {
            if v.link_netnsid().is_some() {
                m.serialize_entry("viaIfIndex", &i)?;
            } else {
                m.serialize_entry("viaIf", &self.names.name(i))?;
            }
        }
        if let Some(n) = v.nh_id() {
            m.serialize_entry("nhid", &n)?;
        }
        if let Some(n) = v.link_netnsid() {
            m.serialize_entry("linkNetNsId", &n)?;
        }
        m.serialize_entry("flags", &super::name_list(fdb_flags(v)))?;
        if let Some(x) = v.master() {
            m.serialize_entry("master", &self.names.name(x))?;
        }
        match fdb_state(v.state()) {
            FdbState::Word(w) => m.serialize_entry("state", w)?,
            FdbState::Number(n) => m.serialize_entry("state", &hash_x(n))?,
        }
        m.end()
    }
}

/// The header line of `bridge vlan show`.
pub const VLAN_HEADER: &str = "port              vlan-id  ";

/// `bridge vlan show` text for one port: one line per VLAN (ranges joined as `A-B`), the
/// port name on the first, no final newline; empty when the port has no VLAN.
///
/// ```
/// use nlkit_route::{fmt::bridge_vlan_text, BridgeVlan};
/// use nlkit_wire::consts::*;
/// let v = [BridgeVlan { vid: 1, flags: BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED },
///          BridgeVlan { vid: 10, flags: 0 }];
/// assert_eq!(bridge_vlan_text("v1", &v),
///     "v1                1 PVID Egress Untagged\n                  10");
/// ```
pub fn bridge_vlan_text(port: &str, vlans: &[BridgeVlan]) -> String {
    let mut out = String::new();
    for (i, (start, v)) in vlan_ranges(vlans).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let name = if i == 0 { port } else { "" };
        out.push_str(&format!("{name:<16}  {start}"));
        if start != v.vid {
            out.push_str(&format!("-{}", v.vid));
        }
        if v.pvid() {
            out.push_str(" PVID");
        }
        if v.untagged() {
            out.push_str(" Egress Untagged");
        }
    }
    out
}

/// `(first vid, last entry)` per printed line: a `RANGE_BEGIN` entry is folded into the
/// `RANGE_END` entry that follows.
fn vlan_ranges(vlans: &[BridgeVlan]) -> impl Iterator<Item = (u16, BridgeVlan)> + '_ {
    let mut start = 0;
    vlans.iter().filter_map(move |v| {
        if v.flags & BRIDGE_VLAN_INFO_RANGE_END == 0 {
            start = v.vid;
        }
        if v.flags & BRIDGE_VLAN_INFO_RANGE_BEGIN != 0 {
            return None;
        }
        Some((start, *v))
    })
}

/// `bridge -j vlan show` JSON for one port; see [`bridge_vlan_json`].
#[derive(Debug, Clone, Copy)]
pub struct BridgeVlanJson<'a> {
    port: &'a str,
    vlans: &'a [BridgeVlan],
}

/// `bridge -j vlan show` JSON for one port: `{"ifname": …, "vlans": [{"vlan": N,
/// "vlanEnd"?: M, "flags"?: ["PVID", "Egress Untagged"]}]}`.
///
/// ```
/// use nlkit_route::{fmt::bridge_vlan_json, BridgeVlan};
/// let j = serde_json::to_string(&bridge_vlan_json("v1", &[BridgeVlan { vid: 1, flags: 2 }])).unwrap();
/// assert_eq!(j, r#"{"ifname":"v1","vlans":[{"vlan":1,"flags":["PVID"]}]}"#);
/// ```
pub fn bridge_vlan_json<'a>(port: &'a str, vlans: &'a [BridgeVlan]) -> BridgeVlanJson<'a> {
    BridgeVlanJson { port, vlans }
}

struct VlanJson(u16, BridgeVlan);

impl serde::Serialize for VlanJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (start, v) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("vlan", &start)?;
        if start != v.vid {
            m.serialize_entry("vlanEnd", &v.vid)?;
        }
        if v.pvid() || v.untagged() {
            let flags = v
                .pvid()
                .then_some("PVID")
                .into_iter()
                .chain(v.untagged().then_some("Egress Untagged"));
            m.serialize_entry("flags", &super::name_list(flags))?;
        }
        m.end()
    }
}

struct VlanList<'a>(&'a [BridgeVlan]);

impl serde::Serialize for VlanList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(vlan_ranges(self.0).map(|(a, v)| VlanJson(a, v)))
    }
}

impl serde::Serialize for BridgeVlanJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ifname", self.port)?;
        m.serialize_entry("vlans", &VlanList(self.vlans))?;
        m.end()
    }
}
