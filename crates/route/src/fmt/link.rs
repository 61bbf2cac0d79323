//! `ip link show` / `ip addr show` text and `ip -j link` / `ip -j addr` JSON.

use std::fmt;

use nlkit_wire::consts::*;
use serde::ser::SerializeMap;

use super::{name_list, AsStr, LinkNames, Mac};
use crate::names::{self, Scope};
use crate::{AddrView, LinkView};

fn link_flag_names(flags: u32, m_down: bool) -> impl Iterator<Item = &'static str> {
    let no_carrier = flags & IFF_UP != 0 && flags & IFF_RUNNING == 0;
    no_carrier
        .then_some("NO-CARRIER")
        .into_iter()
        .chain(
            names::LINK_FLAGS
                .iter()
                .filter(move |(b, _)| flags & b != 0)
                .map(|e| e.1),
        )
        .chain(m_down.then_some("M-DOWN"))
}

/// `M-DOWN`, as `ip` prints it: the lower device (`IFLA_LINK`, same namespace) is known and
/// administratively down.
fn m_down(l: &LinkView<'_>, names: &LinkNames) -> bool {
    match (l.link(), l.link_netnsid()) {
        (Some(p), None) if p != 0 => names.flags(p).is_some_and(|f| f & IFF_UP == 0),
        _ => false,
    }
}

/// `ip link show` text for one link; see [`link_text`].
#[derive(Debug, Clone, Copy)]
pub struct LinkText<'v, 'a, 'n> {
    link: &'v LinkView<'a>,
    names: &'n LinkNames,
    show_mode: bool,
    details: bool,
}

impl LinkText<'_, '_, '_> {
    /// Adds what `ip -d link show` adds (see the crate README for the kinds whose options
    /// are printed).
    pub fn details(mut self, on: bool) -> Self {
        self.details = on;
        self
    }
}

/// Formats a link like `ip link show` (two lines, no final newline). With `show_mode` false
/// the `mode …` word is left out, as `ip addr show` does.
///
/// ```
/// # use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder, Messages};
/// # use nlkit_route::{fmt::*, LinkView};
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWLINK, 0, 0);
/// b.header(&IfInfoMsg { index: 3, ty: 1, flags: IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_LOWER_UP | IFF_MULTICAST, ..Default::default() });
/// b.attr_str(IFLA_IFNAME, "va").attr_u32(IFLA_MTU, 1500).attr_str(IFLA_QDISC, "noqueue");
/// b.attr_u8(IFLA_OPERSTATE, IF_OPER_UP).attr_u8(IFLA_LINKMODE, 0).attr_u32(IFLA_GROUP, 0);
/// b.attr_u32(IFLA_TXQLEN, 1000).attr_u32(IFLA_LINK, 2);
/// b.attr_bytes(IFLA_ADDRESS, &[0x5a, 0x8a, 0x54, 0xf4, 0x12, 0xc5]).attr_bytes(IFLA_BROADCAST, &[0xff; 6]);
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let l = LinkView::parse(&m).unwrap();
/// let mut names = LinkNames::new();
/// names.insert(2, "vb");
/// assert_eq!(link_text(&l, &names, true).to_string(),
///     "3: va@vb: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\n    link/ether 5a:8a:54:f4:12:c5 brd ff:ff:ff:ff:ff:ff");
/// ```
pub fn link_text<'v, 'a, 'n>(
    link: &'v LinkView<'a>,
    names: &'n LinkNames,
    show_mode: bool,
) -> LinkText<'v, 'a, 'n> {
    LinkText {
        link,
        names,
        show_mode,
        details: false,
    }
}

impl fmt::Display for LinkText<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.link;
        if l.msg_type() == RTM_DELLINK {
            f.write_str("Deleted ")?;
        }
        write!(f, "{}: {}", l.index(), l.name().unwrap_or("?"))?;
        match (l.link(), l.link_netnsid()) {
            (Some(0), _) => f.write_str("@NONE")?,
            (Some(p), Some(_)) => write!(f, "@if{p}")?,
            (Some(p), None) => write!(f, "@{}", self.names.name(p))?,
            _ => {}
        }
        f.write_str(": <")?;
        for (i, n) in link_flag_names(l.flags(), m_down(l, self.names)).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(n)?;
        }
        f.write_str(">")?;
        if let Some(m) = l.mtu() {
            write!(f, " mtu {m}")?;
        }
        if let Some(q) = l.qdisc() {
            write!(f, " qdisc {q}")?;
        }
        if let Some(m) = l.master() {
            write!(f, " master {}", self.names.name(m))?;
        }
        if let Some(s) = l.operstate() {
            write!(f, " state {}", names::operstate(s))?;
        }
        if self.show_mode {
            if let Some(m) = l.linkmode() {
                write!(f, " mode {}", if m == 1 { "DORMANT" } else { "DEFAULT" })?;
            }
        }
        match l.group() {
            Some(0) => f.write_str(" group default")?,
            Some(g) => write!(f, " group {g}")?,
            None => {}
        }
        if let Some(q) = l.txqlen() {
            write!(f, " qlen {q}")?;
        }
        match names::link_type(l.link_type()) {
            Some(t) => write!(f, "\n    link/{t}")?,
            None => write!(f, "\n    link/[{}]", l.link_type())?,
        }
        if let Some(a) = l.address() {
            write!(f, " {}", Mac(a))?;
        }
        if let Some(b) = l.broadcast() {
            write!(f, " brd {}", Mac(b))?;
        }
        match l.link_netnsid() {
            Some(n) if n < 0 => f.write_str(" link-netnsid unknown")?,
            Some(n) => match self.names.netns_name(n) {
                Some(name) => write!(f, " link-netns {name}")?,
                None => write!(f, " link-netnsid {n}")?,
            },
            None => {}
        }
        if self.details {
            super::linkinfo::details_text(l, self.names, f)?;
        }
        if self.show_mode {
            if let Some(a) = l.alias() {
                write!(f, "\n    alias {a}")?;
            }
        }
        for n in l.alt_names() {
            write!(f, "\n    altname {n}")?;
        }
        Ok(())
    }
}

/// `ip -j link show` JSON for one link; see [`link_json`].
#[derive(Debug, Clone, Copy)]
pub struct LinkJson<'v, 'a, 'n> {
    link: &'v LinkView<'a>,
    names: &'n LinkNames,
    addrs: Option<&'v [AddrView<'a>]>,
    details: bool,
}

impl LinkJson<'_, '_, '_> {
    /// Adds the fields `ip -d -j link show` adds.
    pub fn details(mut self, on: bool) -> Self {
        self.details = on;
        self
    }
}

/// A serializable link with `ip -j link` field names (`ifindex`, `link`, `ifname`, `flags`,
/// `mtu`, `qdisc`, `master`, `operstate`, `linkmode`, `group`, `txqlen`, `link_type`,
/// `address`, `broadcast`). With `addrs`, it is shaped like one element of `ip -j addr`
/// (no `linkmode`, plus `addr_info`).
///
/// ```
/// # use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder, Messages};
/// # use nlkit_route::{fmt::*, LinkView};
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWLINK, 0, 0);
/// b.header(&IfInfoMsg { index: 1, ty: 772, flags: IFF_LOOPBACK, ..Default::default() });
/// b.attr_str(IFLA_IFNAME, "lo").attr_u32(IFLA_MTU, 65536);
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let l = LinkView::parse(&m).unwrap();
/// let j = serde_json::to_string(&link_json(&l, &LinkNames::new(), None)).unwrap();
/// assert_eq!(j, r#"{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"mtu":65536,"link_type":"loopback"}"#);
/// ```
pub fn link_json<'v, 'a, 'n>(
    link: &'v LinkView<'a>,
    names: &'n LinkNames,
    addrs: Option<&'v [AddrView<'a>]>,
) -> LinkJson<'v, 'a, 'n> {
    LinkJson {
        link,
        names,
        addrs,
        details: false,
    }
}

impl serde::Serialize for LinkJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.link;
        let mut m = s.serialize_map(None)?;
        if l.msg_type() == RTM_DELLINK {
            m.serialize_entry("deleted", &true)?;
        }
        m.serialize_entry("ifindex", &l.index())?;
        match (l.link(), l.link_netnsid()) {
            (Some(0), _) | (None, _) => {}
            (Some(p), Some(_)) => m.serialize_entry("link_index", &p)?,
            (Some(p), None) => m.serialize_entry("link", &self.names.name(p))?,
        }
        if let Some(n) = l.name() {
            m.serialize_entry("ifname", n)?;
        }
        m.serialize_entry(
            "flags",
            &name_list(link_flag_names(l.flags(), m_down(l, self.names))),
        )?;
        if let Some(v) = l.mtu() {
            m.serialize_entry("mtu", &v)?;
        }
        if let Some(v) = l.qdisc() {
            m.serialize_entry("qdisc", v)?;
        }
        if let Some(v) = l.master() {
            m.serialize_entry("master", &self.names.name(v))?;
        }
        if let Some(v) = l.operstate() {
            m.serialize_entry("operstate", names::operstate(v))?;
        }
        if let (Some(v), None) = (l.linkmode(), self.addrs) {
            m.serialize_entry("linkmode", if v == 1 { "DORMANT" } else { "DEFAULT" })?;
        }
        match l.group() {
            Some(0) => m.serialize_entry("group", "default")?,
            Some(g) => m.serialize_entry("group", &g.to_string())?,
            None => {}
        }
        if let Some(v) = l.txqlen() {
            m.serialize_entry("txqlen", &v)?;
        }
        match names::link_type(l.link_type()) {
            Some(t) => m.serialize_entry("link_type", t)?,
            None => m.serialize_entry("link_type", &l.link_type().to_string())?,
        }
        if let Some(a) = l.address() {
            m.serialize_entry("address", &Mac(a))?;
        }
        if let Some(a) = l.broadcast() {
            m.serialize_entry("broadcast", &Mac(a))?;
        }
        if let Some(n) = l.link_netnsid() {
            m.serialize_entry("link_netnsid", &n)?;
        }
        if self.details {
            super::linkinfo::details_json(l, self.names, &mut m)?;
        }
        if let (Some(a), None) = (l.alias(), self.addrs) {
            m.serialize_entry("ifalias", a)?;
        }
        if l.alt_names().next().is_some() {
            m.serialize_entry("altnames", &AltNames(l))?;
        }
        if let Some(addrs) = self.addrs {
            let items = addrs.iter().map(|a| AddrJson {
                addr: a,
                names: self.names,
            });
            m.serialize_entry("addr_info", &AddrList(std::cell::Cell::new(Some(items))))?;
        }
        m.end()
    }
}

struct AltNames<'v, 'a>(&'v LinkView<'a>);

impl serde::Serialize for AltNames<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.alt_names())
    }
}

struct AddrList<I>(std::cell::Cell<Option<I>>);

impl<'v, 'a, 'n, I: Iterator<Item = AddrJson<'v, 'a, 'n>>> serde::Serialize for AddrList<I>
where
    'a: 'v,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(it) => s.collect_seq(it),
            None => s.collect_seq(std::iter::empty::<u8>()),
        }
    }
}

fn lifetime(v: u32) -> Lifetime {
    Lifetime(v)
}
struct Lifetime(u32);
impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u32::MAX {
            f.write_str("forever")
        } else {
            write!(f, "{}sec", self.0)
        }
    }
}

fn addr_flag_names(family: u8, flags: u32) -> impl Iterator<Item = &'static str> {
    let dynamic = flags & IFA_F_PERMANENT == 0;
    dynamic.then_some("dynamic").into_iter().chain(
        names::ADDR_FLAGS
            .iter()
            .filter(move |(b, _)| flags & b != 0)
            .map(move |&(b, n)| {
                if b == IFA_F_SECONDARY && family == AF_INET6 {
                    "temporary"
                } else {
                    n
                }
            }),
    )
}

/// `ip addr show` text for one address; see [`addr_text`].
#[derive(Debug, Clone, Copy)]
pub struct AddrText<'v, 'a, 'n> {
    addr: &'v AddrView<'a>,
    names: &'n LinkNames,
}

/// Formats an address like the two indented lines `ip addr show` prints under its link
/// (no final newline).
///
/// ```
/// # use nlkit_wire::{consts::*, MessageBuilder, Messages};
/// # use nlkit_route::{fmt::*, request, AddrView, Address};
/// let mut a = Address::new(3, "10.0.0.1".parse().unwrap(), 24);
/// a.flags = IFA_F_PERMANENT;
/// a.label = Some("va".into());
/// let mut b = MessageBuilder::new();
/// request::add_addr(&mut b, 1, &a, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = AddrView::parse(&m).unwrap();
/// assert_eq!(addr_text(&v, &LinkNames::new()).to_string(),
///     "    inet 10.0.0.1/24 scope global va\n       valid_lft forever preferred_lft forever");
/// ```
pub fn addr_text<'v, 'a, 'n>(addr: &'v AddrView<'a>, names: &'n LinkNames) -> AddrText<'v, 'a, 'n> {
    AddrText { addr, names }
}

impl fmt::Display for AddrText<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.addr;
        if a.msg_type() == RTM_DELADDR {
            f.write_str("Deleted ")?;
        }
        let fam = if a.family() == AF_INET6 {
            "inet6"
        } else {
            "inet"
        };
        write!(f, "    {fam} ")?;
        if let Some(l) = a.local() {
            write!(f, "{l}")?;
        }
        if let Some(p) = a.peer() {
            write!(f, " peer {p}")?;
        }
        write!(f, "/{} ", a.prefix_len())?;
        if let Some(b) = a.broadcast() {
            write!(f, "brd {b} ")?;
        }
        write!(f, "scope {} ", Scope(a.scope()))?;
        for n in addr_flag_names(a.family(), a.flags()) {
            write!(f, "{n} ")?;
        }
        if a.family() == AF_INET {
            match a.label() {
                Some(l) => f.write_str(l)?,
                None => write!(f, "{}", self.names.name(a.index()))?,
            }
        }
        let (valid, pref) = a
            .cacheinfo()
            .map_or((u32::MAX, u32::MAX), |c| (c.valid, c.preferred));
        write!(
            f,
            "\n       valid_lft {} preferred_lft {}",
            lifetime(valid),
            lifetime(pref)
        )
    }
}

/// `ip -j addr` JSON for one address (one element of `addr_info`); see [`addr_json`].
#[derive(Debug, Clone, Copy)]
pub struct AddrJson<'v, 'a, 'n> {
    addr: &'v AddrView<'a>,
    names: &'n LinkNames,
}

/// A serializable address shaped like an `ip -j addr` `addr_info` element: `family`,
/// `local`, `address` (peer), `prefixlen`, `broadcast`, `scope`, flags as `true` booleans,
/// `label`, `valid_life_time`, `preferred_life_time`.
///
/// ```
/// # use nlkit_wire::{consts::*, MessageBuilder, Messages};
/// # use nlkit_route::{fmt::*, request, AddrView, Address};
/// let mut a = Address::new(3, "fd00::1".parse().unwrap(), 64);
/// a.flags = IFA_F_PERMANENT | IFA_F_NODAD;
/// let mut b = MessageBuilder::new();
/// request::add_addr(&mut b, 1, &a, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = AddrView::parse(&m).unwrap();
/// let j = serde_json::to_string(&addr_json(&v, &LinkNames::new())).unwrap();
/// assert_eq!(j, r#"{"family":"inet6","local":"fd00::1","prefixlen":64,"scope":"global","nodad":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}"#);
/// ```
pub fn addr_json<'v, 'a, 'n>(addr: &'v AddrView<'a>, names: &'n LinkNames) -> AddrJson<'v, 'a, 'n> {
    AddrJson { addr, names }
}

impl serde::Serialize for AddrJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.addr;
        let mut m = s.serialize_map(None)?;
        if a.msg_type() == RTM_DELADDR {
            m.serialize_entry("deleted", &true)?;
        }
        let fam = if a.family() == AF_INET6 {
            "inet6"
        } else {
            "inet"
        };
        m.serialize_entry("family", fam)?;
        if let Some(l) = a.local() {
            m.serialize_entry("local", &l)?;
        }
        if let Some(p) = a.peer() {
            m.serialize_entry("address", &p)?;
        }
        m.serialize_entry("prefixlen", &a.prefix_len())?;
        if let Some(b) = a.broadcast() {
            m.serialize_entry("broadcast", &b)?;
        }
        m.serialize_entry("scope", &AsStr(Scope(a.scope())))?;
        for n in addr_flag_names(a.family(), a.flags()) {
            m.serialize_entry(n, &true)?;
        }
        if a.family() == AF_INET {
            match a.label() {
                Some(l) => m.serialize_entry("label", l)?,
                None => m.serialize_entry("label", &self.names.name(a.index()))?,
            }
        }
        let (valid, pref) = a
            .cacheinfo()
            .map_or((u32::MAX, u32::MAX), |c| (c.valid, c.preferred));
        m.serialize_entry("valid_life_time", &valid)?;
        m.serialize_entry("preferred_life_time", &pref)?;
        m.end()
    }
}
