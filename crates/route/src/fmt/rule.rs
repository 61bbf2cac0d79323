//! `ip rule show` text and `ip -j rule show` JSON, and the names `ip rule` uses for DS
//! fields and IP protocols.

use std::fmt;

use nlkit_wire::consts::*;
use nlkit_wire::text::Ip;
use serde::ser::SerializeMap;

use super::AsStr;
use crate::names::{Protocol, RouteType, Table};
use crate::RuleView;

/// iproute2's default `/etc/iproute2/rt_dsfield`.
const DSFIELDS: &[(u8, &str)] = &[
    (0x00, "default"),
    (0x28, "AF11"),
    (0x30, "AF12"),
    (0x38, "AF13"),
    (0x48, "AF21"),
    (0x50, "AF22"),
    (0x58, "AF23"),
    (0x68, "AF31"),
    (0x70, "AF32"),
    (0x78, "AF33"),
    (0x88, "AF41"),
    (0x90, "AF42"),
    (0x98, "AF43"),
    (0x20, "CS1"),
    (0x40, "CS2"),
    (0x60, "CS3"),
    (0x80, "CS4"),
    (0xa0, "CS5"),
    (0xc0, "CS6"),
    (0xe0, "CS7"),
    (0xb8, "EF"),
];

/// The IP protocol names of the standard `/etc/protocols` (netbase), which `ip rule` prints
/// through `getprotobynumber`.
const IP_PROTOCOLS: &[(u8, &str)] = &[
    (0, "ip"),
    (1, "icmp"),
    (2, "igmp"),
    (3, "ggp"),
    (4, "ipencap"),
    (5, "st"),
    (6, "tcp"),
    (8, "egp"),
    (9, "igp"),
    (12, "pup"),
    (17, "udp"),
    (20, "hmp"),
    (22, "xns-idp"),
    (27, "rdp"),
    (29, "iso-tp4"),
    (33, "dccp"),
    (36, "xtp"),
    (37, "ddp"),
    (38, "idpr-cmtp"),
    (41, "ipv6"),
    (43, "ipv6-route"),
    (44, "ipv6-frag"),
    (45, "idrp"),
    (46, "rsvp"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (57, "skip"),
    (58, "ipv6-icmp"),
    (59, "ipv6-nonxt"),
    (60, "ipv6-opts"),
    (73, "rspf"),
    (81, "vmtp"),
    (88, "eigrp"),
    (89, "ospf"),
    (93, "ax.25"),
    (94, "ipip"),
    (97, "etherip"),
    (98, "encap"),
    (103, "pim"),
    (108, "ipcomp"),
    (112, "vrrp"),
    (115, "l2tp"),
    (124, "isis"),
    (132, "sctp"),
    (133, "fc"),
    (135, "mobility-header"),
    (136, "udplite"),
    (137, "mpls-in-ip"),
    (138, "manet"),
    (139, "hip"),
    (140, "shim6"),
    (141, "wesp"),
    (142, "rohc"),
    (143, "ethernet"),
];

/// The name `ip rule` prints for a DS field (`tos`) value, if it has one.
///
/// ```
/// assert_eq!(nlkit_route::fmt::dsfield_name(0xb8), Some("EF"));
/// assert_eq!(nlkit_route::fmt::dsfield_name(0x10), None);
/// ```
pub fn dsfield_name(v: u8) -> Option<&'static str> {
    DSFIELDS.iter().find(|e| e.0 == v).map(|e| e.1)
}

/// Parses a DS field as `ip rule add tos` does: a name (`AF11`, `EF`) or a number
/// (`0x10`, `16`).
///
/// ```
/// assert_eq!(nlkit_route::fmt::parse_dsfield("AF11"), Some(0x28));
/// assert_eq!(nlkit_route::fmt::parse_dsfield("0x10"), Some(0x10));
/// ```
pub fn parse_dsfield(s: &str) -> Option<u8> {
    DSFIELDS
        .iter()
        .find(|e| e.1.eq_ignore_ascii_case(s))
        .map(|e| e.0)
        .or_else(|| parse_num(s).and_then(|n| u8::try_from(n).ok()))
}

/// The name of an IP protocol number as `ip rule` prints it (`tcp`, or `ipproto-200`).
///
/// ```
/// assert_eq!(nlkit_route::fmt::ip_proto_name(6).to_string(), "tcp");
/// assert_eq!(nlkit_route::fmt::ip_proto_name(200).to_string(), "ipproto-200");
/// ```
pub fn ip_proto_name(p: u8) -> impl fmt::Display {
    struct Name(u8);
    impl fmt::Display for Name {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match IP_PROTOCOLS.iter().find(|e| e.0 == self.0) {
                Some(e) => f.write_str(e.1),
                None => write!(f, "ipproto-{}", self.0),
            }
        }
    }
    Name(p)
}

/// Parses an IP protocol as `ip rule add ipproto` does: a name, `ipproto-N`, or a number.
///
/// ```
/// assert_eq!(nlkit_route::fmt::parse_ip_proto("udp"), Some(17));
/// assert_eq!(nlkit_route::fmt::parse_ip_proto("ipproto-200"), Some(200));
/// ```
pub fn parse_ip_proto(s: &str) -> Option<u8> {
    IP_PROTOCOLS
        .iter()
        .find(|e| e.1 == s)
        .map(|e| e.0)
        .or_else(|| s.strip_prefix("ipproto-").and_then(|n| n.parse().ok()))
        .or_else(|| parse_num(s).and_then(|n| u8::try_from(n).ok()))
}

/// A number in C's `strtoul(s, 0)` forms: decimal, `0x` hex or leading-zero octal.
pub(crate) fn parse_num(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// A DS field as iproute2 prints it: its name, or `0x%02x`.
struct DsField(u8);

impl fmt::Display for DsField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match dsfield_name(self.0) {
            Some(n) => f.write_str(n),
            None => write!(f, "0x{:02x}", self.0),
        }
    }
}

/// C's `%#x`: `0` for zero, `0x…` otherwise.
struct Hex(u32);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            f.write_str("0")
        } else {
            write!(f, "{:#x}", self.0)
        }
    }
}

/// A device group (`/etc/iproute2/group`: 0 is `default`).
struct Group(u32);

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("default"),
            g => write!(f, "{g}"),
        }
    }
}

/// A realm (`/etc/iproute2/rt_realms`: 0 is `cosmos`).
struct Realm(u32);

impl fmt::Display for Realm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("cosmos"),
            r => write!(f, "{r}"),
        }
    }
}

fn host_len(family: u8) -> u8 {
    if family == AF_INET6 {
        128
    } else {
        32
    }
}

/// `ip rule show` text for one rule; see [`rule_text`].
#[derive(Debug, Clone, Copy)]
pub struct RuleText<'v, 'a> {
    rule: &'v RuleView<'a>,
}

/// Formats a rule like `ip rule show` (`PRIO:\tSELECTOR ACTION`, no trailing space). No
/// newline is written at the end.
///
/// ```
/// # use nlkit_wire::{consts::*, Messages, MessageBuilder};
/// # use nlkit_route::{fmt::rule_text, request, Rule, RuleView};
/// let r = Rule::new(AF_INET).priority(100).from("10.1.0.0".parse().unwrap(), 16).table(100);
/// let mut b = MessageBuilder::new();
/// request::add_rule(&mut b, 1, &r).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = RuleView::parse(&m).unwrap();
/// assert_eq!(rule_text(&v).to_string(), "100:\tfrom 10.1.0.0/16 lookup 100");
/// ```
pub fn rule_text<'v, 'a>(rule: &'v RuleView<'a>) -> RuleText<'v, 'a> {
    RuleText { rule }
}

impl fmt::Display for RuleText<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rule;
        let host = host_len(r.family());
        if r.msg_type() == RTM_DELRULE {
            f.write_str("Deleted ")?;
        }
        write!(f, "{}:\t", r.priority())?;
        if r.is_inverted() {
            f.write_str("not ")?;
        }
        match r.src() {
            Some(s) if r.src_len() != host => write!(f, "from {}/{}", Ip(s), r.src_len())?,
            Some(s) => write!(f, "from {}", Ip(s))?,
            None if r.src_len() != 0 => write!(f, "from 0/{}", r.src_len())?,
            None => f.write_str("from all")?,
        }
        match r.dst() {
            Some(d) if r.dst_len() != host => write!(f, " to {}/{}", Ip(d), r.dst_len())?,
            Some(d) => write!(f, " to {}", Ip(d))?,
            None if r.dst_len() != 0 => write!(f, " to 0/{}", r.dst_len())?,
            None => {}
        }
        if r.tos() != 0 {
            write!(f, " tos {}", DsField(r.tos()))?;
        }
        if r.fwmark().is_some() || r.fwmask().is_some() {
            write!(f, " fwmark {}", Hex(r.fwmark().unwrap_or(0)))?;
            if let Some(m) = r.fwmask().filter(|&m| m != u32::MAX) {
                write!(f, "/{}", Hex(m))?;
            }
        }
        if let Some(i) = r.iif() {
            write!(f, " iif {i}")?;
            if r.flags() & FIB_RULE_IIF_DETACHED != 0 {
                f.write_str(" [detached]")?;
            }
        }
        if let Some(o) = r.oif() {
            write!(f, " oif {o}")?;
            if r.flags() & FIB_RULE_OIF_DETACHED != 0 {
                f.write_str(" [detached]")?;
            }
        }
        if r.is_l3mdev() {
            f.write_str(" lookup [l3mdev-table]")?;
        }
        if let Some((s, e)) = r.uid_range() {
            write!(f, " uidrange {s}-{e}")?;
        }
        if let Some(p) = r.ip_proto() {
            write!(f, " ipproto {}", ip_proto_name(p))?;
        }
        for (word, range) in [("sport", r.sport()), ("dport", r.dport())] {
            match range {
                Some((s, e)) if s == e => write!(f, " {word} {s}")?,
                Some((s, e)) => write!(f, " {word} {s}-{e}")?,
                None => {}
            }
        }
        if let Some(t) = r.tun_id() {
            write!(f, " tun_id {t}")?;
        }
        let table = r.table();
        if table != 0 {
            write!(f, " lookup {}", Table(table))?;
            if let Some(p) = r.suppress_prefixlen().filter(|&p| p != u32::MAX) {
                write!(f, " suppress_prefixlength {}", p as i32)?;
            }
            if let Some(g) = r.suppress_ifgroup().filter(|&g| g != u32::MAX) {
                write!(f, " suppress_ifgroup {}", Group(g))?;
            }
        }
        if let Some(flow) = r.realms() {
            let (from, to) = (flow >> 16, flow & 0xffff);
            if from != 0 {
                write!(f, " realms {}/", Realm(from))?;
            } else {
                f.write_str(" realms ")?;
            }
            write!(f, "{}", Realm(to))?;
        }
        match r.action() {
            RTN_NAT => match r.nat_gateway() {
                Some(g) => write!(f, " map-to {}", Ip(g))?,
                None => f.write_str(" masquerade")?,
            },
            FR_ACT_GOTO => {
                match r.goto() {
                    Some(g) => write!(f, " goto {g}")?,
                    None => f.write_str(" goto none")?,
                }
                if r.flags() & FIB_RULE_UNRESOLVED != 0 {
                    f.write_str(" [unresolved]")?;
                }
            }
            FR_ACT_NOP => f.write_str(" nop")?,
            FR_ACT_TO_TBL => {}
            a => write!(f, " {}", RouteType(a))?,
        }
        if let Some(p) = r.protocol().filter(|&p| p != 0 && p != RTPROT_KERNEL) {
            write!(f, " proto {}", Protocol(p))?;
        }
        if let Some(d) = r.dscp() {
            match dsfield_name(d << 2).filter(|_| d != 0) {
                Some(n) => write!(f, " dscp {n}")?,
                None => write!(f, " dscp {d}")?,
            }
        }
        Ok(())
    }
}

/// `ip -j rule show` JSON for one rule; see [`rule_json`].
#[derive(Debug, Clone, Copy)]
pub struct RuleJson<'v, 'a> {
    rule: &'v RuleView<'a>,
}

/// A serializable rule with `ip -j rule` field names: `priority`, `not`, `src`/`srclen`,
/// `dst`/`dstlen`, `tos`, `fwmark`/`fwmask`, `iif`, `oif`, `l3mdev`, `uid_start`/`uid_end`,
/// `ipproto`, `sport` (or `sport_start`/`sport_end`), `dport`…, `table`,
/// `suppress_prefixlen`, `suppress_ifgroup`, `flow_from`/`flow_to`, `goto`, `action`,
/// `protocol`, `dscp`.
///
/// ```
/// # use nlkit_wire::{consts::*, Messages, MessageBuilder};
/// # use nlkit_route::{fmt::rule_json, request, Rule, RuleView};
/// let r = Rule::new(AF_INET).priority(601).action(FR_ACT_PROHIBIT);
/// let mut b = MessageBuilder::new();
/// request::add_rule(&mut b, 1, &r).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = RuleView::parse(&m).unwrap();
/// let j = serde_json::to_string(&rule_json(&v)).unwrap();
/// assert_eq!(j, r#"{"priority":601,"src":"all","action":"prohibit"}"#);
/// ```
pub fn rule_json<'v, 'a>(rule: &'v RuleView<'a>) -> RuleJson<'v, 'a> {
    RuleJson { rule }
}

impl serde::Serialize for RuleJson<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.rule;
        let host = host_len(r.family());
        let mut m = s.serialize_map(None)?;
        if r.msg_type() == RTM_DELRULE {
            m.serialize_entry("deleted", &true)?;
        }
        m.serialize_entry("priority", &r.priority())?;
        if r.is_inverted() {
            m.serialize_entry("not", &())?;
        }
        match r.src() {
            Some(a) => {
                m.serialize_entry("src", &a)?;
                if r.src_len() != host {
                    m.serialize_entry("srclen", &r.src_len())?;
                }
            }
            None if r.src_len() != 0 => {
                m.serialize_entry("src", "0")?;
                m.serialize_entry("srclen", &r.src_len())?;
            }
            None => m.serialize_entry("src", "all")?,
        }
        match r.dst() {
            Some(a) => {
                m.serialize_entry("dst", &a)?;
                if r.dst_len() != host {
                    m.serialize_entry("dstlen", &r.dst_len())?;
                }
            }
            None if r.dst_len() != 0 => {
                m.serialize_entry("dst", "0")?;
                m.serialize_entry("dstlen", &r.dst_len())?;
            }
            None => {}
        }
        if r.tos() != 0 {
            m.serialize_entry("tos", &AsStr(DsField(r.tos())))?;
        }
        if r.fwmark().is_some() || r.fwmask().is_some() {
            m.serialize_entry("fwmark", &AsStr(Hex(r.fwmark().unwrap_or(0))))?;
            if let Some(k) = r.fwmask().filter(|&k| k != u32::MAX) {
                m.serialize_entry("fwmask", &AsStr(Hex(k)))?;
            }
        }
        if let Some(i) = r.iif() {
            m.serialize_entry("iif", i)?;
            if r.flags() & FIB_RULE_IIF_DETACHED != 0 {
                m.serialize_entry("iif_detached", &())?;
            }
        }
        if let Some(o) = r.oif() {
            m.serialize_entry("oif", o)?;
            if r.flags() & FIB_RULE_OIF_DETACHED != 0 {
                m.serialize_entry("oif_detached", &())?;
            }
        }
        if r.is_l3mdev() {
            m.serialize_entry("l3mdev", &())?;
        }
        if let Some((a, b)) = r.uid_range() {
            m.serialize_entry("uid_start", &a)?;
            m.serialize_entry("uid_end", &b)?;
        }
        if let Some(p) = r.ip_proto() {
            m.serialize_entry("ipproto", &AsStr(ip_proto_name(p)))?;
        }
        for (word, start, end, range) in [
            ("sport", "sport_start", "sport_end", r.sport()),
            ("dport", "dport_start", "dport_end", r.dport()),
        ] {
            match range {
                Some((a, b)) if a == b => m.serialize_entry(word, &a)?,
                Some((a, b)) => {
                    m.serialize_entry(start, &a)?;
                    m.serialize_entry(end, &b)?;
                }
                None => {}
            }
        }
        if let Some(t) = r.tun_id() {
            m.serialize_entry("tun_id", &t)?;
        }
        let table = r.table();
        if table != 0 {
            m.serialize_entry("table", &AsStr(Table(table)))?;
            if let Some(p) = r.suppress_prefixlen().filter(|&p| p != u32::MAX) {
                m.serialize_entry("suppress_prefixlen", &(p as i32))?;
            }
            if let Some(g) = r.suppress_ifgroup().filter(|&g| g != u32::MAX) {
                m.serialize_entry("suppress_ifgroup", &AsStr(Group(g)))?;
            }
        }
        if let Some(flow) = r.realms() {
            let (from, to) = (flow >> 16, flow & 0xffff);
            if from != 0 {
                m.serialize_entry("flow_from", &AsStr(Realm(from)))?;
            }
            m.serialize_entry("flow_to", &AsStr(Realm(to)))?;
        }
        match r.action() {
            RTN_NAT => match r.nat_gateway() {
                Some(g) => m.serialize_entry("nat_gateway", &g)?,
                None => m.serialize_entry("masquerade", &())?,
            },
            FR_ACT_GOTO => {
                match r.goto() {
                    Some(g) => m.serialize_entry("goto", &g)?,
                    None => m.serialize_entry("goto", "none")?,
                }
                if r.flags() & FIB_RULE_UNRESOLVED != 0 {
                    m.serialize_entry("unresolved", &())?;
                }
            }
            FR_ACT_NOP => m.serialize_entry("nop", &())?,
            FR_ACT_TO_TBL => {}
            a => m.serialize_entry("action", &AsStr(RouteType(a)))?,
        }
        if let Some(p) = r.protocol().filter(|&p| p != 0 && p != RTPROT_KERNEL) {
            m.serialize_entry("protocol", &AsStr(Protocol(p)))?;
        }
        if let Some(d) = r.dscp() {
            m.serialize_entry("dscp", &d)?;
        }
        m.end()
    }
}
