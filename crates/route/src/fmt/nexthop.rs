//! `ip nexthop show` text and `ip -j nexthop show` JSON.

use std::fmt;

use nlkit_wire::consts::*;
use nlkit_wire::text::Ip;
use serde::ser::SerializeMap;

use super::{name_list, AsStr, LinkNames};
use crate::names::{self, Protocol, Scope};
use crate::nexthop::ResilientGroup;
use crate::NexthopObjectView;

fn flag_names(flags: u32) -> impl Iterator<Item = &'static str> {
    names::ROUTE_FLAGS
        .iter()
        .filter(move |(b, _)| flags & b != 0)
        .map(|e| e.1)
}

fn group_type_name(t: u16) -> &'static str {
    match t {
        NEXTHOP_GRP_TYPE_MPATH => "mpath",
        NEXTHOP_GRP_TYPE_RES => "resilient",
        _ => "<unknown type>",
    }
}

/// A duration in clock ticks (`USER_HZ` = 100) printed in seconds the way C's `%g` does
/// (`60`, `0.01`, `1.5`), as iproute2 prints nexthop timers.
#[derive(Debug, Clone, Copy)]
struct Ticks(u64);

impl Ticks {
    fn secs(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Ticks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.secs();
        if s != 0.0 && !(1e-4..1e6).contains(&s) {
            // `%g` switches to an exponent; reproduce C's `1e+06` shape.
            let e = format!("{s:e}");
            let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
            let x: i32 = x.parse().unwrap_or(0);
            let m: f64 = m.parse().unwrap_or(0.0);
            let m = format!("{:.5}", m);
            let m = m.trim_end_matches('0').trim_end_matches('.');
            return write!(f, "{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs());
        }
        // Six significant digits, trailing zeros dropped.
        let digits = if s == 0.0 {
            0
        } else {
            (5 - s.abs().log10().floor() as i32).max(0) as usize
        };
        let t = format!("{s:.digits$}");
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.')
        } else {
            &t
        };
        f.write_str(t)
    }
}

impl serde::Serialize for Ticks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `ip -j` prints `%g`: an integer when whole.
        if self.0 % 100 == 0 {
            s.serialize_u64(self.0 / 100)
        } else {
            s.serialize_f64(self.secs())
        }
    }
}

/// `ip nexthop show` text for one nexthop object; see [`nexthop_text`].
#[derive(Debug, Clone, Copy)]
pub struct NexthopText<'v, 'a, 'n> {
    nh: &'v NexthopObjectView<'a>,
    names: &'n LinkNames,
}

/// Formats a nexthop object like `ip nexthop show` (with the trailing space iproute2 prints
/// after most items). No newline is written at the end.
///
/// ```
/// # use nlkit_wire::{Messages, MessageBuilder};
/// # use nlkit_route::{fmt::*, nexthop::GroupMember, request, NexthopObject, NexthopObjectView};
/// let g = NexthopObject::group(10, &[GroupMember::new(1), GroupMember::new(4).weight(3)]);
/// let mut b = MessageBuilder::new();
/// request::add_nexthop(&mut b, 1, &g, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NexthopObjectView::parse(&m).unwrap();
/// assert_eq!(nexthop_text(&v, &LinkNames::new()).to_string(), "id 10 group 1/4,3 ");
/// ```
pub fn nexthop_text<'v, 'a, 'n>(
    nh: &'v NexthopObjectView<'a>,
    names: &'n LinkNames,
) -> NexthopText<'v, 'a, 'n> {
    NexthopText { nh, names }
}

fn res_text(f: &mut fmt::Formatter<'_>, r: &ResilientGroup) -> fmt::Result {
    write!(
        f,
        "buckets {} idle_timer {} unbalanced_timer {} unbalanced_time {} ",
        r.buckets,
        Ticks(r.idle_timer.into()),
        Ticks(r.unbalanced_timer.into()),
        Ticks(r.unbalanced_time)
    )
}

impl fmt::Display for NexthopText<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.nh;
        if v.msg_type() == RTM_DELNEXTHOP {
            f.write_str("Deleted ")?;
        }
        write!(f, "id {} ", v.id().unwrap_or(0))?;
        if v.is_group() {
            f.write_str("group ")?;
            for (i, m) in v.members().enumerate() {
                if i > 0 {
                    f.write_str("/")?;
                }
                write!(f, "{}", m.id)?;
                if m.weight > 1 {
                    write!(f, ",{}", m.weight)?;
                }
            }
            f.write_str(" ")?;
        }
        if let Some(t) = v.group_type().filter(|&t| t != NEXTHOP_GRP_TYPE_MPATH) {
            write!(f, "type {} ", group_type_name(t))?;
        }
        if let Some(r) = v.resilient() {
            res_text(f, &r)?;
        }
        if let Some(gw) = v.gateway() {
            write!(f, "via {} ", Ip(gw))?;
        }
        if let Some(o) = v.oif() {
            write!(f, "dev {} ", self.names.name(o))?;
        }
        if v.scope() != RT_SCOPE_UNIVERSE {
            write!(f, "scope {} ", Scope(v.scope()))?;
        }
        if v.is_blackhole() {
            f.write_str("blackhole ")?;
        }
        if v.protocol() != RTPROT_UNSPEC {
            write!(f, "proto {} ", Protocol(v.protocol()))?;
        }
        for n in flag_names(v.flags()) {
            write!(f, "{n} ")?;
        }
        if v.is_fdb() {
            f.write_str("fdb")?;
        }
        Ok(())
    }
}

/// `ip -j nexthop show` JSON for one nexthop object; see [`nexthop_json`].
#[derive(Debug, Clone, Copy)]
pub struct NexthopJson<'v, 'a, 'n> {
    nh: &'v NexthopObjectView<'a>,
    names: &'n LinkNames,
}

/// A serializable nexthop object with `ip -j nexthop` field names: `id`, `group` (members
/// with `id` and, above 1, `weight`), `type`, `resilient_args`, `gateway`, `dev`, `scope`,
/// `blackhole`, `protocol`, `flags`, `fdb`.
///
/// ```
/// # use nlkit_wire::{Messages, MessageBuilder};
/// # use nlkit_route::{fmt::*, request, NexthopObject, NexthopObjectView};
/// let nh = NexthopObject::via(1, "10.0.0.2".parse().unwrap()).dev(2);
/// let mut b = MessageBuilder::new();
/// request::add_nexthop(&mut b, 1, &nh, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NexthopObjectView::parse(&m).unwrap();
/// let mut names = LinkNames::new();
/// names.insert(2, "va");
/// let j = serde_json::to_string(&nexthop_json(&v, &names)).unwrap();
/// assert_eq!(j, r#"{"id":1,"gateway":"10.0.0.2","dev":"va","flags":[]}"#);
/// ```
pub fn nexthop_json<'v, 'a, 'n>(
    nh: &'v NexthopObjectView<'a>,
    names: &'n LinkNames,
) -> NexthopJson<'v, 'a, 'n> {
    NexthopJson { nh, names }
}

struct MembersJson<'a>(crate::nexthop::GroupMembers<'a>);

impl serde::Serialize for MembersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for m in self.0.clone() {
            seq.serialize_element(&MemberJson(m))?;
        }
        seq.end()
    }
}

struct MemberJson(crate::nexthop::GroupMember);

impl serde::Serialize for MemberJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.0.id)?;
        if self.0.weight > 1 {
            m.serialize_entry("weight", &self.0.weight)?;
        }
        m.end()
    }
}

struct ResJson(ResilientGroup);

impl serde::Serialize for ResJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("buckets", &r.buckets)?;
        m.serialize_entry("idle_timer", &Ticks(r.idle_timer.into()))?;
        m.serialize_entry("unbalanced_timer", &Ticks(r.unbalanced_timer.into()))?;
        m.serialize_entry("unbalanced_time", &Ticks(r.unbalanced_time))?;
        m.end()
    }
}

impl serde::Serialize for NexthopJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.nh;
        let mut m = s.serialize_map(None)?;
        if v.msg_type() == RTM_DELNEXTHOP {
            m.serialize_entry("deleted", &true)?;
        }
        m.serialize_entry("id", &v.id().unwrap_or(0))?;
        if v.is_group() {
            m.serialize_entry("group", &MembersJson(v.members()))?;
        }
        if let Some(t) = v.group_type().filter(|&t| t != NEXTHOP_GRP_TYPE_MPATH) {
            m.serialize_entry("type", group_type_name(t))?;
        }
        if let Some(r) = v.resilient() {
            m.serialize_entry("resilient_args", &ResJson(r))?;
        }
        if let Some(gw) = v.gateway() {
            m.serialize_entry("gateway", &gw)?;
        }
        if let Some(o) = v.oif() {
            m.serialize_entry("dev", &self.names.name(o))?;
        }
        if v.scope() != RT_SCOPE_UNIVERSE {
            m.serialize_entry("scope", &AsStr(Scope(v.scope())))?;
        }
        if v.is_blackhole() {
            m.serialize_entry("blackhole", &())?;
        }
        if v.protocol() != RTPROT_UNSPEC {
            m.serialize_entry("protocol", &AsStr(Protocol(v.protocol())))?;
        }
        m.serialize_entry("flags", &name_list(flag_names(v.flags())))?;
        if v.is_fdb() {
            m.serialize_entry("fdb", &())?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::Ticks;

    #[test]
    fn ticks_print_like_percent_g() {
        for (t, s) in [
            (0, "0"),
            (1, "0.01"),
            (6000, "60"),
            (12000, "120"),
            (150, "1.5"),
            (12345, "123.45"),
            (100_000_000, "1e+06"),
        ] {
            assert_eq!(Ticks(t).to_string(), s, "{t}");
        }
    }
}
