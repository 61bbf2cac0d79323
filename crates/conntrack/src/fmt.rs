//! Text output like `conntrack -L` / `conntrack -E`, and JSON.
//!
//! The formatters borrow a view and implement [`Display`](std::fmt::Display) or
//! [`serde::Serialize`], writing straight into the caller's writer. The text forms also
//! append themselves to a byte buffer ([`EntryText::write_to`]), with the address and
//! number writers of [`nlkit_wire::text`]: what listings use.

use std::fmt;

use nlkit_wire::consts::*;
use serde::ser::SerializeMap;

use nlkit_wire::text::{push_fixed, push_hex, push_ip, push_num};

use crate::{Counters, CtEntryView, Tuple, L4};

/// The protocol name `conntrack -L` prints (`tcp`, `udp`, `icmp`, …; `unknown` otherwise).
///
/// ```
/// assert_eq!(nlkit_conntrack::fmt::proto_name(17), "udp");
/// ```
pub const fn proto_name(p: u8) -> &'static str {
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

/// TCP conntrack states by number, then the name of any other.
const TCP_STATES: [&str; 11] = [
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
    "UNKNOWN",
];

/// SCTP conntrack states by number, then the name of any other.
const SCTP_STATES: [&str; 11] = [
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
    "UNKNOWN",
];

/// The index of state `s` in a table of 10 states and `UNKNOWN`.
const fn state_index(s: u8) -> usize {
    if s < 10 {
        s as usize
    } else {
        10
    }
}

/// The name of a TCP conntrack state (`ESTABLISHED`, `TIME_WAIT`, …).
///
/// ```
/// assert_eq!(nlkit_conntrack::fmt::tcp_state_name(3), "ESTABLISHED");
/// ```
pub fn tcp_state_name(s: u8) -> &'static str {
    TCP_STATES[state_index(s)]
}

/// The name of an SCTP conntrack state.
///
/// ```
/// assert_eq!(nlkit_conntrack::fmt::sctp_state_name(4), "ESTABLISHED");
/// ```
pub fn sctp_state_name(s: u8) -> &'static str {
    SCTP_STATES[state_index(s)]
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

/// A word of an entry line padded to a constant size, appended with [`push_fixed`] (one
/// copy of a constant size instead of a `memcpy` call of the word's length).
#[derive(Clone, Copy)]
struct Word {
    bytes: [u8; 24],
    len: u8,
}

const EMPTY: Word = Word {
    bytes: [0; 24],
    len: 0,
};

/// The word `prefix` `name` (at most 24 bytes in all; every name here is shorter).
const fn word(prefix: &[u8], name: &str) -> Word {
    let name = name.as_bytes();
    let mut w = EMPTY;
    let mut n = 0;
    while n < prefix.len() {
        w.bytes[n] = prefix[n];
        n += 1;
    }
    let mut i = 0;
    while i < name.len() {
        w.bytes[n] = name[i];
        n += 1;
        i += 1;
    }
    w.len = n as u8;
    w
}

/// `udp      17` for every protocol number: the name padded to 8 columns, a space, the
/// number (`conntrack -L`'s first word).
const PROTO_WORDS: [Word; 256] = {
    let mut t = [EMPTY; 256];
    let mut p = 0;
    while p < 256 {
        let mut w = word(b"", proto_name(p as u8));
        let mut n = w.len as usize;
        while n < 8 {
            w.bytes[n] = b' ';
            n += 1;
        }
        w.bytes[n] = b' ';
        n += 1;
        if p >= 100 {
            w.bytes[n] = b'0' + (p / 100) as u8;
            n += 1;
        }
        if p >= 10 {
            w.bytes[n] = b'0' + (p / 10 % 10) as u8;
            n += 1;
        }
        w.bytes[n] = b'0' + (p % 10) as u8;
        w.len = n as u8 + 1;
        t[p] = w;
        p += 1;
    }
    t
};

/// ` NAME` for each state of a table of 11 (10 states and `UNKNOWN`).
const fn state_words(names: &[&str; 11]) -> [Word; 11] {
    let mut t = [EMPTY; 11];
    let mut i = 0;
    while i < 11 {
        t[i] = word(b" ", names[i]);
        i += 1;
    }
    t
}

const TCP_STATE_WORDS: [Word; 11] = state_words(&TCP_STATES);
const SCTP_STATE_WORDS: [Word; 11] = state_words(&SCTP_STATES);

/// Appends `w`.
#[inline]
fn push_word(out: &mut Vec<u8>, w: &Word) {
    push_fixed(out, &w.bytes, usize::from(w.len));
}

/// Appends ` src=A dst=B` and the ports or ICMP fields of `t`.
fn push_tuple(out: &mut Vec<u8>, t: &Tuple) {
    out.extend_from_slice(b" src=");
    push_ip(out, t.src);
    out.extend_from_slice(b" dst=");
    push_ip(out, t.dst);
    match t.l4 {
        L4::Ports { sport, dport } => {
            out.extend_from_slice(b" sport=");
            push_num(out, sport);
            out.extend_from_slice(b" dport=");
            push_num(out, dport);
        }
        L4::Icmp { id, ty, code } => {
            out.extend_from_slice(b" type=");
            push_num(out, ty);
            out.extend_from_slice(b" code=");
            push_num(out, code);
            out.extend_from_slice(b" id=");
            push_num(out, id);
        }
        L4::Other => {}
    }
}

/// Appends ` packets=P bytes=B`.
fn push_counters(out: &mut Vec<u8>, c: Counters) {
    out.extend_from_slice(b" packets=");
    push_num(out, c.packets);
    out.extend_from_slice(b" bytes=");
    push_num(out, c.bytes);
}

/// `conntrack -L` text for one entry; see [`entry_text`].
///
/// [`write_to`](EntryText::write_to) appends it to a byte buffer (what listings use: no
/// formatting machinery, no allocation); its `Display` writes the same text.
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
/// let text = entry_text(&v);
/// assert_eq!(text.to_string(),
///   "udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=53 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1234 mark=0");
/// let mut line = Vec::new();
/// text.write_to(&mut line);
/// assert_eq!(line, text.to_string().into_bytes());
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
    /// Appends the entry's text (what `Display` writes, no newline) to `out`: every field
    /// with [`nlkit_wire::text`], the protocol and state words from tables built at compile
    /// time.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let e = self.entry;
        if self.event {
            if let Some(k) = e.event() {
                let tag = k.tag();
                out.extend_from_slice(&b"         "[tag.len().min(9)..]);
                out.extend_from_slice(tag.as_bytes());
                out.push(b' ');
            }
        }
        let proto = e.proto().unwrap_or(0);
        push_word(out, &PROTO_WORDS[usize::from(proto)]);
        if let Some(t) = e.timeout() {
            out.push(b' ');
            push_num(out, t);
        }
        if let Some(st) = e.tcp_state() {
            push_word(out, &TCP_STATE_WORDS[state_index(st)]);
        } else if let Some(st) = e.sctp_state() {
            push_word(out, &SCTP_STATE_WORDS[state_index(st)]);
        }
        if let Some(t) = e.orig() {
            push_tuple(out, &t);
        }
        if let Some(c) = e.counters_orig() {
            push_counters(out, c);
        }
        let status = e.status();
        if status.is_some_and(|s| s & IPS_SEEN_REPLY == 0) {
            out.extend_from_slice(b" [UNREPLIED]");
        }
        if let Some(t) = e.reply() {
            push_tuple(out, &t);
        }
        if let Some(c) = e.counters_reply() {
            push_counters(out, c);
        }
        let st = status.unwrap_or(0);
        if st & (IPS_OFFLOAD | IPS_HW_OFFLOAD | IPS_ASSURED) != 0 {
            for (bit, tag) in [
                (IPS_OFFLOAD, &b" [OFFLOAD]"[..]),
                (IPS_HW_OFFLOAD, b" [HW_OFFLOAD]"),
                (IPS_ASSURED, b" [ASSURED]"),
            ] {
                if st & bit != 0 {
                    out.extend_from_slice(tag);
                }
            }
        }
        if let Some(m) = e.mark() {
            out.extend_from_slice(b" mark=");
            push_num(out, m);
        }
        if let Some(z) = e.zone().filter(|&z| z != 0) {
            out.extend_from_slice(b" zone=");
            push_num(out, z);
        }
        if let Some(u) = e.use_count() {
            out.extend_from_slice(b" use=");
            push_num(out, u);
        }
    }
}

impl fmt::Display for EntryText<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(256);
        self.write_to(&mut out);
        // Only `str`s and ASCII were appended.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
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

/// Bytes as lowercase hex, two digits each (the JSON form of the labels).
struct Hex<'a>(&'a [u8]);
impl serde::Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(2 * self.0.len());
        push_hex(&mut out, self.0);
        // Only hex digits were appended.
        s.serialize_str(std::str::from_utf8(&out).map_err(serde::ser::Error::custom)?)
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
