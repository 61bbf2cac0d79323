//! Text output like `conntrack -L` / `conntrack -E`, and JSON.
//!
//! The formatters borrow a view and implement [`Display`](std::fmt::Display) or
//! [`serde::Serialize`], writing straight into the caller's writer.

use std::fmt;

use nlkit_wire::consts::*;
use serde::ser::SerializeMap;

use crate::{Counters, CtEntryView, Tuple, L4};

/// The protocol name `conntrack -L` prints (`tcp`, `udp`, `icmp`, …; `unknown` otherwise).
///
/// ```
/// assert_eq!(nlkit_conntrack::fmt::proto_name(17), "udp");
/// ```
pub fn proto_name(p: u8) -> &'static str {
    match p {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_ICMP => "icmp",
        IPPROTO_ICMPV6 => "icmpv6",
        IPPROTO_SCTP => "sctp",
        IPPROTO_DCCP => "dccp",
        IPPROTO_UDPLITE => "udplite",
        IPPROTO_GRE => "gre",
        _ => "unknown",
    }
}

/// The name of a TCP conntrack state (`ESTABLISHED`, `TIME_WAIT`, …).
///
/// ```
/// assert_eq!(nlkit_conntrack::fmt::tcp_state_name(3), "ESTABLISHED");
/// ```
pub fn tcp_state_name(s: u8) -> &'static str {
    const N: [&str; 10] = [
        "NONE",
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSE",
        "SYN_SENT2",
    ];
    N.get(s as usize).copied().unwrap_or("UNKNOWN")
}

/// The name of an SCTP conntrack state.
pub fn sctp_state_name(s: u8) -> &'static str {
    const N: [&str; 10] = [
        "NONE",
        "CLOSED",
        "COOKIE_WAIT",
        "COOKIE_ECHOED",
        "ESTABLISHED",
        "SHUTDOWN_SENT",
        "SHUTDOWN_RECD",
        "SHUTDOWN_ACK_SENT",
        "HEARTBEAT_SENT",
        "HEARTBEAT_ACKED",
    ];
    N.get(s as usize).copied().unwrap_or("UNKNOWN")
}

/// Status bits and their names (for JSON).
pub const STATUS_NAMES: &[(u32, &str)] = &[
    (IPS_EXPECTED, "EXPECTED"),
    (IPS_SEEN_REPLY, "SEEN_REPLY"),
    (IPS_ASSURED, "ASSURED"),
    (IPS_CONFIRMED, "CONFIRMED"),
    (IPS_SRC_NAT, "SRC_NAT"),
    (IPS_DST_NAT, "DST_NAT"),
    (IPS_SEQ_ADJUST, "SEQ_ADJUST"),
    (IPS_SRC_NAT_DONE, "SRC_NAT_DONE"),
    (IPS_DST_NAT_DONE, "DST_NAT_DONE"),
    (IPS_DYING, "DYING"),
    (IPS_FIXED_TIMEOUT, "FIXED_TIMEOUT"),
    (IPS_TEMPLATE, "TEMPLATE"),
    (IPS_UNTRACKED, "UNTRACKED"),
    (IPS_HELPER, "HELPER"),
    (IPS_OFFLOAD, "OFFLOAD"),
    (IPS_HW_OFFLOAD, "HW_OFFLOAD"),
];

/// One output line under construction: space-separated words, numbers written with `itoa`
/// and IPv4 addresses octet by octet. A listing of a million entries spends most of its user
/// time formatting, and `core::fmt` pays for padding and dynamic dispatch on every field;
/// building the line here and handing it to the formatter in one `write_str` is several times
/// cheaper.
struct Line<'s> {
    s: &'s mut String,
    first: bool,
}

impl Line<'_> {
    /// Starts a new word (a separating space unless it is the first).
    fn word(&mut self) -> &mut Self {
        if !self.first {
            self.s.push(' ');
        }
        self.first = false;
        self
    }
    fn str(&mut self, x: &str) -> &mut Self {
        self.s.push_str(x);
        self
    }
    fn num(&mut self, n: impl itoa::Integer) -> &mut Self {
        self.s.push_str(itoa::Buffer::new().format(n));
        self
    }
    fn ip(&mut self, a: std::net::IpAddr) -> &mut Self {
        match a {
            std::net::IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                self.num(a).str(".").num(b).str(".").num(c).str(".").num(d)
            }
            std::net::IpAddr::V6(v6) => {
                use std::fmt::Write;
                let _ = write!(self.s, "{v6}");
                self
            }
        }
    }
    fn tuple(&mut self, t: &Tuple) -> &mut Self {
        self.word().str("src=").ip(t.src).str(" dst=").ip(t.dst);
        match t.l4 {
            L4::Ports { sport, dport } => self.str(" sport=").num(sport).str(" dport=").num(dport),
            L4::Icmp { id, ty, code } => self
                .str(" type=")
                .num(ty)
                .str(" code=")
                .num(code)
                .str(" id=")
                .num(id),
            L4::Other => self,
        }
    }
    fn counters(&mut self, c: Counters) -> &mut Self {
        self.word()
            .str("packets=")
            .num(c.packets)
            .str(" bytes=")
            .num(c.bytes)
    }
}

thread_local! {
    /// The line buffer reused by every entry formatted on this thread.
    static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(256));
}

/// `conntrack -L` text for one entry; see [`entry_text`].
#[derive(Debug, Clone, Copy)]
pub struct EntryText<'v, 'a> {
    entry: &'v CtEntryView<'a>,
    event: bool,
}

/// Formats an entry like `conntrack -L` (no newline): protocol name padded to 8 and number,
/// timeout, TCP/SCTP state, the original tuple, counters, `[UNREPLIED]`, the reply tuple,
/// `[ASSURED]`, `mark=`, `zone=` (non-zero zones only), `use=`.
///
/// ```
/// use nlkit_wire::{consts::*, Messages, MessageBuilder};
/// use nlkit_conntrack::{fmt::entry_text, request, CtEntry, CtEntryView, Tuple};
/// let t = Tuple::udp("10.0.0.1".parse().unwrap(), 1234, "10.0.0.2".parse().unwrap(), 53);
/// let mut b = MessageBuilder::new();
/// request::create(&mut b, 1, &CtEntry::new(t).timeout(29).mark(0).status(IPS_SEEN_REPLY)).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = CtEntryView::parse(&m).unwrap();
/// assert_eq!(entry_text(&v).to_string(),
///   "udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=53 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1234 mark=0");
/// ```
pub fn entry_text<'v, 'a>(entry: &'v CtEntryView<'a>) -> EntryText<'v, 'a> {
    EntryText {
        entry,
        event: false,
    }
}

/// Formats an event like `conntrack -E`: the entry prefixed with `[NEW]`, `[UPDATE]` or
/// `[DESTROY]` right-aligned in 9 columns.
pub fn event_text<'v, 'a>(entry: &'v CtEntryView<'a>) -> EntryText<'v, 'a> {
    EntryText { entry, event: true }
}

impl EntryText<'_, '_> {
    fn build(&self, s: &mut String) {
        let e = self.entry;
        let mut w = Line { s, first: true };
        if self.event {
            if let Some(k) = e.event() {
                let tag = k.tag();
                w.word().str(&"         "[tag.len().min(9)..]).str(tag);
            }
        }
        let proto = e.proto().unwrap_or(0);
        let name = proto_name(proto);
        w.word()
            .str(name)
            .str(&"        "[name.len().min(8)..])
            .str(" ")
            .num(proto);
        if let Some(t) = e.timeout() {
            w.word().num(t);
        }
        if let Some(st) = e.tcp_state() {
            w.word().str(tcp_state_name(st));
        } else if let Some(st) = e.sctp_state() {
            w.word().str(sctp_state_name(st));
        }
        if let Some(t) = e.orig() {
            w.tuple(&t);
        }
        if let Some(c) = e.counters_orig() {
            w.counters(c);
        }
        let status = e.status();
        if status.is_some_and(|s| s & IPS_SEEN_REPLY == 0) {
            w.word().str("[UNREPLIED]");
        }
        if let Some(t) = e.reply() {
            w.tuple(&t);
        }
        if let Some(c) = e.counters_reply() {
            w.counters(c);
        }
        let st = status.unwrap_or(0);
        for (bit, tag) in [
            (IPS_OFFLOAD, "[OFFLOAD]"),
            (IPS_HW_OFFLOAD, "[HW_OFFLOAD]"),
            (IPS_ASSURED, "[ASSURED]"),
        ] {
            if st & bit != 0 {
                w.word().str(tag);
            }
        }
        if let Some(m) = e.mark() {
            w.word().str("mark=").num(m);
        }
        if let Some(z) = e.zone().filter(|&z| z != 0) {
            w.word().str("zone=").num(z);
        }
        if let Some(u) = e.use_count() {
            w.word().str("use=").num(u);
        }
    }
}

impl fmt::Display for EntryText<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => {
                s.clear();
                self.build(&mut s);
                f.write_str(&s)
            }
            // Re-entered (a Display inside a Display): use a buffer of its own.
            Err(_) => {
                let mut s = String::with_capacity(256);
                self.build(&mut s);
                f.write_str(&s)
            }
        })
    }
}

/// JSON for one entry; see [`entry_json`].
#[derive(Debug, Clone, Copy)]
pub struct EntryJson<'v, 'a> {
    entry: &'v CtEntryView<'a>,
}

/// A serializable entry: `event` (for events), `family` (`ipv4`/`ipv6`), `proto`,
/// `protonum`, `timeout`, `state`, `orig` and `reply` (`src`, `dst`, `sport`/`dport` or
/// `type`/`code`/`id`, `packets`, `bytes`), `status` (names), `mark`, `zone`, `use`, `id`,
/// `labels` (hex).
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_conntrack::{fmt::entry_json, request, CtEntry, CtEntryView, Tuple};
/// let t = Tuple::udp("10.0.0.1".parse().unwrap(), 1234, "10.0.0.2".parse().unwrap(), 53);
/// let mut b = MessageBuilder::new();
/// request::create(&mut b, 1, &CtEntry::new(t).timeout(29)).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = CtEntryView::parse(&m).unwrap();
/// let j: serde_json::Value = serde_json::to_value(entry_json(&v)).unwrap();
/// assert_eq!(j["orig"]["dport"], 53);
/// assert_eq!(j["proto"], "udp");
/// ```
pub fn entry_json<'v, 'a>(entry: &'v CtEntryView<'a>) -> EntryJson<'v, 'a> {
    EntryJson { entry }
}

struct TupleJson(Tuple, Option<Counters>);

impl serde::Serialize for TupleJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = &self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("src", &t.src)?;
        m.serialize_entry("dst", &t.dst)?;
        match t.l4 {
            L4::Ports { sport, dport } => {
                m.serialize_entry("sport", &sport)?;
                m.serialize_entry("dport", &dport)?;
            }
            L4::Icmp { id, ty, code } => {
                m.serialize_entry("type", &ty)?;
                m.serialize_entry("code", &code)?;
                m.serialize_entry("id", &id)?;
            }
            L4::Other => {}
        }
        if let Some(z) = t.zone {
            m.serialize_entry("zone", &z)?;
        }
        if let Some(c) = self.1 {
            m.serialize_entry("packets", &c.packets)?;
            m.serialize_entry("bytes", &c.bytes)?;
        }
        m.end()
    }
}

struct Hex<'a>(&'a [u8]);
impl serde::Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct D<'a>(&'a [u8]);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        s.collect_str(&D(self.0))
    }
}

impl serde::Serialize for EntryJson<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.entry;
        let mut m = s.serialize_map(None)?;
        if let Some(k) = e.event().filter(|_| e.msg_type() != IPCTNL_MSG_CT_GET) {
            m.serialize_entry("event", &k)?;
        }
        let fam = match e.family() {
            AF_INET => "ipv4",
            AF_INET6 => "ipv6",
            _ => "unspec",
        };
        m.serialize_entry("family", fam)?;
        let proto = e.proto().unwrap_or(0);
        m.serialize_entry("proto", proto_name(proto))?;
        m.serialize_entry("protonum", &proto)?;
        if let Some(t) = e.timeout() {
            m.serialize_entry("timeout", &t)?;
        }
        if let Some(st) = e.tcp_state() {
            m.serialize_entry("state", tcp_state_name(st))?;
        } else if let Some(st) = e.sctp_state() {
            m.serialize_entry("state", sctp_state_name(st))?;
        }
        if let Some(t) = e.orig() {
            m.serialize_entry("orig", &TupleJson(t, e.counters_orig()))?;
        }
        if let Some(t) = e.reply() {
            m.serialize_entry("reply", &TupleJson(t, e.counters_reply()))?;
        }
        if let Some(st) = e.status() {
            let names: Vec<&str> = STATUS_NAMES
                .iter()
                .filter(|(b, _)| st & b != 0)
                .map(|x| x.1)
                .collect();
            m.serialize_entry("status", &names)?;
        }
        if let Some(v) = e.mark() {
            m.serialize_entry("mark", &v)?;
        }
        m.serialize_entry("zone", &e.zone_or_default())?;
        if let Some(v) = e.use_count() {
            m.serialize_entry("use", &v)?;
        }
        if let Some(v) = e.id() {
            m.serialize_entry("id", &v)?;
        }
        if let Some(l) = e.labels() {
            m.serialize_entry("labels", &Hex(l))?;
        }
        m.end()
    }
}
