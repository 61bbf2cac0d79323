//! Policy rule requests (part of [`request`](super)).

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{FibRuleHdr, MessageBuilder};

use super::{Built, CHANGE, DUMP};
use crate::{Rule, RuleView};

/// A user-space rule filter (`ip rule show pref P table T …`), with `ip rule`'s semantics.
///
/// The kernel has **no** rule dump filters: with strict checking it rejects a rule dump
/// request that carries any attribute or header field besides the family. Rule tables are
/// small, so the dump is filtered here.
///
/// ```
/// use nlkit_route::request::RuleFilter;
/// let f = RuleFilter { src: Some(("10.1.0.0".parse().unwrap(), 16)), ..Default::default() };
/// # let _ = f;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFilter {
    /// Only this priority.
    pub priority: Option<u32>,
    /// Only rules looking up this table.
    pub table: Option<u32>,
    /// Only rules with this `FRA_PROTOCOL` (a rule without one counts as 0).
    pub protocol: Option<u8>,
    /// Only rules on this input interface name.
    pub iif: Option<String>,
    /// Only rules on this output interface name.
    pub oif: Option<String>,
    /// Only rules with this fwmark.
    pub fwmark: Option<u32>,
    /// Only rules with this fwmark mask.
    pub fwmask: Option<u32>,
    /// Only inverted (`not`) rules.
    pub invert: bool,
    /// Only rules whose source prefix lies within `addr/len`.
    pub src: Option<(IpAddr, u8)>,
    /// Only rules whose destination prefix lies within `addr/len`.
    pub dst: Option<(IpAddr, u8)>,
    /// Only rules with this TOS.
    pub tos: Option<u8>,
    /// Only `l3mdev` rules.
    pub l3mdev: bool,
    /// Only rules with this uid range.
    pub uid_range: Option<(u32, u32)>,
    /// Only rules with this L4 protocol.
    pub ip_proto: Option<u8>,
    /// Only rules with this source port range.
    pub sport: Option<(u16, u16)>,
    /// Only rules with this destination port range.
    pub dport: Option<(u16, u16)>,
    /// Only rules with this DSCP.
    pub dscp: Option<u8>,
}

/// True when prefix `addr/len` of a rule lies within the filter's `f/flen` (same family, at
/// least as long, equal in the filter's first `flen` bits), as `ip rule show from P` tests.
fn within(f: (IpAddr, u8), addr: Option<IpAddr>, len: u8) -> bool {
    let Some(addr) = addr else { return false };
    let (fa, flen) = f;
    let bits = |a: IpAddr| -> u128 {
        match a {
            IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
            IpAddr::V6(v) => u128::from(v),
        }
    };
    if fa.is_ipv4() != addr.is_ipv4() || flen > len {
        return false;
    }
    let mask = if flen == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(flen.min(128)))
    };
    bits(fa) & mask == bits(addr) & mask
}

impl RuleFilter {
    /// True when `r` passes every test that is set.
    pub fn matches(&self, r: &RuleView<'_>) -> bool {
        self.priority.is_none_or(|p| r.priority() == p)
            && self.table.is_none_or(|t| r.table() == t)
            && self.protocol.is_none_or(|p| r.protocol().unwrap_or(0) == p)
            && self.iif.as_deref().is_none_or(|i| r.iif() == Some(i))
            && self.oif.as_deref().is_none_or(|o| r.oif() == Some(o))
            && self.fwmark.is_none_or(|m| r.fwmark().unwrap_or(0) == m)
            && self.fwmask.is_none_or(|m| r.fwmask().unwrap_or(0) == m)
            && (!self.invert || r.is_inverted())
            && self.src.is_none_or(|f| within(f, r.src(), r.src_len()))
            && self.dst.is_none_or(|f| within(f, r.dst(), r.dst_len()))
            && self.tos.is_none_or(|t| r.tos() == t)
            && (!self.l3mdev || r.is_l3mdev())
            && self.uid_range.is_none_or(|u| r.uid_range() == Some(u))
            && self.ip_proto.is_none_or(|p| r.ip_proto().unwrap_or(0) == p)
            && self.sport.is_none_or(|p| r.sport() == Some(p))
            && self.dport.is_none_or(|p| r.dport() == Some(p))
            && self.dscp.is_none_or(|d| r.dscp() == Some(d))
    }
}

/// `RTM_GETRULE` dump of one family (`AF_INET` or `AF_INET6`; see [`RuleFilter`] on why it
/// carries no filter).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::dump_rules(&mut b, 1, nlkit_wire::consts::AF_INET6).unwrap();
/// ```
pub fn dump_rules(b: &mut MessageBuilder, seq: u32, family: u8) -> Built {
    b.begin(RTM_GETRULE, DUMP, seq);
    b.header(&FibRuleHdr {
        family,
        ..Default::default()
    });
    b.finish()
}

fn rule_msg(b: &mut MessageBuilder, ty: u16, flags: u16, seq: u32, r: &Rule) {
    b.begin(ty, flags, seq);
    b.header(&FibRuleHdr {
        family: r.family,
        dst_len: r.dst_len,
        src_len: r.src_len,
        tos: r.tos,
        table: if r.table < 256 { r.table as u8 } else { 0 },
        action: r.action,
        flags: if r.invert { FIB_RULE_INVERT } else { 0 },
    });
    if let Some(p) = r.priority {
        b.attr_u32(FRA_PRIORITY, p);
    }
    if let Some(s) = r.src {
        b.attr_ip(FRA_SRC, s);
    }
    if let Some(d) = r.dst {
        b.attr_ip(FRA_DST, d);
    }
    if r.table >= 256 {
        b.attr_u32(FRA_TABLE, r.table);
    }
    if let Some(i) = &r.iif {
        b.attr_str(FRA_IIFNAME, i);
    }
    if let Some(o) = &r.oif {
        b.attr_str(FRA_OIFNAME, o);
    }
    if let Some(m) = r.fwmark {
        b.attr_u32(FRA_FWMARK, m);
    }
    if let Some(m) = r.fwmask {
        b.attr_u32(FRA_FWMASK, m);
    }
    if let Some(g) = r.goto {
        b.attr_u32(FRA_GOTO, g);
    }
    if r.l3mdev {
        b.attr_u8(FRA_L3MDEV, 1);
    }
    if let Some((s, e)) = r.uid_range {
        let mut p = [0u8; 8];
        p[..4].copy_from_slice(&s.to_ne_bytes());
        p[4..].copy_from_slice(&e.to_ne_bytes());
        b.attr_bytes(FRA_UID_RANGE, &p);
    }
    for (ty, range) in [(FRA_SPORT_RANGE, r.sport), (FRA_DPORT_RANGE, r.dport)] {
        if let Some((s, e)) = range {
            let mut p = [0u8; 4];
            p[..2].copy_from_slice(&s.to_ne_bytes());
            p[2..].copy_from_slice(&e.to_ne_bytes());
            b.attr_bytes(ty, &p);
        }
    }
    if let Some(p) = r.ip_proto {
        b.attr_u8(FRA_IP_PROTO, p);
    }
    if let Some(d) = r.dscp {
        b.attr_u8(FRA_DSCP, d);
    }
    if let Some(p) = r.suppress_prefixlen {
        b.attr_u32(FRA_SUPPRESS_PREFIXLEN, p);
    }
    if let Some(g) = r.suppress_ifgroup {
        b.attr_u32(FRA_SUPPRESS_IFGROUP, g);
    }
    if let Some(p) = r.protocol {
        b.attr_u8(FRA_PROTOCOL, p);
    }
    if let Some(f) = r.realms {
        b.attr_u32(FRA_FLOW, f);
    }
}

/// `RTM_NEWRULE` (`ip rule add`): fails with `EEXIST` when an identical rule exists.
///
/// ```
/// use nlkit_route::{request::add_rule, Rule};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// add_rule(&mut b, 1, &Rule::new(nlkit_wire::consts::AF_INET).priority(10).table(100)).unwrap();
/// ```
pub fn add_rule(b: &mut MessageBuilder, seq: u32, r: &Rule) -> Built {
    rule_msg(b, RTM_NEWRULE, CHANGE | NLM_F_CREATE | NLM_F_EXCL, seq, r);
    b.finish()
}

/// `RTM_DELRULE` (`ip rule del`): the kernel deletes the first rule matching every field
/// that is set (a table of 0 and `FR_ACT_UNSPEC` are wildcards; see [`Rule::any`]).
///
/// ```
/// use nlkit_route::{request::del_rule, Rule};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// del_rule(&mut b, 1, &Rule::any(nlkit_wire::consts::AF_INET).priority(10)).unwrap();
/// ```
pub fn del_rule(b: &mut MessageBuilder, seq: u32, r: &Rule) -> Built {
    rule_msg(b, RTM_DELRULE, CHANGE, seq, r);
    b.finish()
}
