//! Policy routing rules (FIB rules, `RTM_NEWRULE` / `RTM_DELRULE`, IPv4 and IPv6): a
//! zero-copy view and the owned request spec.

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{Attr, FibRuleHdr, Message, WireError};

use crate::{check_type, ip_attr};

/// `struct fib_rule_uid_range` / `struct fib_rule_port_range`: `start..=end`.
fn range<T: Copy>(a: &Attr<'_>, n: usize, read: impl Fn(&[u8]) -> T) -> Result<(T, T), WireError> {
    let p = a.prefix(2 * n)?;
    Ok((read(&p[..n]), read(&p[n..2 * n])))
}

fn u32_of(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

fn u16_of(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

/// A borrowed view of one rule message, decoded in one pass over its attributes.
///
/// Attributes this view does not decode (including those of newer kernels) are skipped and
/// counted in [`unknown_attrs`](RuleView::unknown_attrs).
///
/// ```
/// use nlkit_wire::{consts::*, Messages, MessageBuilder};
/// use nlkit_route::{request, Rule, RuleView};
/// let r = Rule::new(AF_INET).priority(100).from("10.1.0.0".parse().unwrap(), 16).table(100);
/// let mut b = MessageBuilder::new();
/// request::add_rule(&mut b, 1, &r).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = RuleView::parse(&m).unwrap();
/// assert_eq!((v.priority(), v.table(), v.src_len()), (100, 100, 16));
/// assert_eq!(v.to_owned(), r);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RuleView<'a> {
    msg_type: u16,
    hdr: FibRuleHdr,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    iif: Option<&'a str>,
    oif: Option<&'a str>,
    goto: Option<u32>,
    priority: Option<u32>,
    fwmark: Option<u32>,
    fwmask: Option<u32>,
    flow: Option<u32>,
    tun_id: Option<u64>,
    suppress_ifgroup: Option<u32>,
    suppress_prefixlen: Option<u32>,
    table: Option<u32>,
    l3mdev: Option<u8>,
    uid_range: Option<(u32, u32)>,
    protocol: Option<u8>,
    ip_proto: Option<u8>,
    sport: Option<(u16, u16)>,
    dport: Option<(u16, u16)>,
    dscp: Option<u8>,
    nat_gateway: Option<IpAddr>,
    unknown_attrs: u32,
}

impl<'a> RuleView<'a> {
    /// Decodes an `RTM_NEWRULE` or `RTM_DELRULE` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWRULE, RTM_DELRULE)?;
        Self::parse_any(msg)
    }

    /// Decodes a message with a `fib_rule_hdr` whatever its type.
    pub fn parse_any(msg: &Message<'a>) -> Result<Self, WireError> {
        let (hdr, attrs) = msg.family_header::<FibRuleHdr>()?;
        let mut v = RuleView {
            msg_type: msg.ty(),
            hdr,
            src: None,
            dst: None,
            iif: None,
            oif: None,
            goto: None,
            priority: None,
            fwmark: None,
            fwmask: None,
            flow: None,
            tun_id: None,
            suppress_ifgroup: None,
            suppress_prefixlen: None,
            table: None,
            l3mdev: None,
            uid_range: None,
            protocol: None,
            ip_proto: None,
            sport: None,
            dport: None,
            dscp: None,
            nat_gateway: None,
            unknown_attrs: 0,
        };
        let fam = hdr.family;
        for a in attrs {
            let a = a?;
            match a.ty() {
                FRA_SRC => v.src = ip_attr(fam, &a)?,
                FRA_DST => v.dst = ip_attr(fam, &a)?,
                FRA_IIFNAME => v.iif = Some(a.str()?),
                FRA_OIFNAME => v.oif = Some(a.str()?),
                FRA_GOTO => v.goto = Some(a.u32()?),
                FRA_PRIORITY => v.priority = Some(a.u32()?),
                FRA_FWMARK => v.fwmark = Some(a.u32()?),
                FRA_FWMASK => v.fwmask = Some(a.u32()?),
                FRA_FLOW => v.flow = Some(a.u32()?),
                FRA_TUN_ID => v.tun_id = Some(u64::from_be_bytes(a.u64()?.to_ne_bytes())),
                FRA_SUPPRESS_IFGROUP => v.suppress_ifgroup = Some(a.u32()?),
                FRA_SUPPRESS_PREFIXLEN => v.suppress_prefixlen = Some(a.u32()?),
                FRA_TABLE => v.table = Some(a.u32()?),
                FRA_L3MDEV => v.l3mdev = Some(a.u8()?),
                FRA_UID_RANGE => v.uid_range = Some(range(&a, 4, u32_of)?),
                FRA_PROTOCOL => v.protocol = Some(a.u8()?),
                FRA_IP_PROTO => v.ip_proto = Some(a.u8()?),
                FRA_SPORT_RANGE => v.sport = Some(range(&a, 2, u16_of)?),
                FRA_DPORT_RANGE => v.dport = Some(range(&a, 2, u16_of)?),
                FRA_DSCP => v.dscp = Some(a.u8()?),
                // RTA_GATEWAY: the address of a (deprecated) NAT rule.
                RTA_GATEWAY => v.nat_gateway = ip_attr(fam, &a)?,
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    /// `nlmsg_type`: `RTM_NEWRULE` or `RTM_DELRULE`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
    }
    /// The `fib_rule_hdr`.
    pub fn header(&self) -> FibRuleHdr {
        self.hdr
    }
    /// `AF_INET` or `AF_INET6`.
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// `FRA_PRIORITY` (0 when absent, as the kernel's first rule has none).
    pub fn priority(&self) -> u32 {
        self.priority.unwrap_or(0)
    }
    /// `FIB_RULE_*` flags.
    pub fn flags(&self) -> u32 {
        self.hdr.flags
    }
    /// True for `not` (`FIB_RULE_INVERT`).
    pub fn is_inverted(&self) -> bool {
        self.hdr.flags & FIB_RULE_INVERT != 0
    }
    /// `FRA_SRC`.
    pub fn src(&self) -> Option<IpAddr> {
        self.src
    }
    /// The source prefix length.
    pub fn src_len(&self) -> u8 {
        self.hdr.src_len
    }
    /// `FRA_DST`.
    pub fn dst(&self) -> Option<IpAddr> {
        self.dst
    }
    /// The destination prefix length.
    pub fn dst_len(&self) -> u8 {
        self.hdr.dst_len
    }
    /// The TOS / DS field matched (`tos`).
    pub fn tos(&self) -> u8 {
        self.hdr.tos
    }
    /// `FR_ACT_*`.
    pub fn action(&self) -> u8 {
        self.hdr.action
    }
    /// The table: `FRA_TABLE` when present (ids above 255), else the header's.
    pub fn table(&self) -> u32 {
        self.table.unwrap_or(self.hdr.table as u32)
    }
    /// `FRA_IIFNAME`: the input interface name.
    pub fn iif(&self) -> Option<&'a str> {
        self.iif
    }
    /// `FRA_OIFNAME`: the output interface name (VRF-bound sockets).
    pub fn oif(&self) -> Option<&'a str> {
        self.oif
    }
    /// `FRA_GOTO`: the priority a `goto` rule jumps to.
    pub fn goto(&self) -> Option<u32> {
        self.goto
    }
    /// `FRA_FWMARK`.
    pub fn fwmark(&self) -> Option<u32> {
        self.fwmark
    }
    /// `FRA_FWMASK`.
    pub fn fwmask(&self) -> Option<u32> {
        self.fwmask
    }
    /// `FRA_FLOW`: the realms (`from << 16 | to`).
    pub fn realms(&self) -> Option<u32> {
        self.flow
    }
    /// `FRA_TUN_ID` (sent big-endian; host order here).
    pub fn tun_id(&self) -> Option<u64> {
        self.tun_id
    }
    /// `FRA_SUPPRESS_IFGROUP` (`u32::MAX`: unset).
    pub fn suppress_ifgroup(&self) -> Option<u32> {
        self.suppress_ifgroup
    }
    /// `FRA_SUPPRESS_PREFIXLEN` (`u32::MAX`, i.e. -1: unset).
    pub fn suppress_prefixlen(&self) -> Option<u32> {
        self.suppress_prefixlen
    }
    /// True for an `l3mdev` rule (`FRA_L3MDEV` non-zero): look up the VRF's table.
    pub fn is_l3mdev(&self) -> bool {
        self.l3mdev.is_some_and(|m| m != 0)
    }
    /// `FRA_UID_RANGE` as `(start, end)`.
    pub fn uid_range(&self) -> Option<(u32, u32)> {
        self.uid_range
    }
    /// `FRA_PROTOCOL`: who installed the rule (`RTPROT_*`).
    pub fn protocol(&self) -> Option<u8> {
        self.protocol
    }
    /// `FRA_IP_PROTO`: the L4 protocol matched (`IPPROTO_*`).
    pub fn ip_proto(&self) -> Option<u8> {
        self.ip_proto
    }
    /// `FRA_SPORT_RANGE` as `(start, end)`.
    pub fn sport(&self) -> Option<(u16, u16)> {
        self.sport
    }
    /// `FRA_DPORT_RANGE` as `(start, end)`.
    pub fn dport(&self) -> Option<(u16, u16)> {
        self.dport
    }
    /// `FRA_DSCP` (Linux 6.12+): the DSCP value matched (the DS field's upper 6 bits).
    pub fn dscp(&self) -> Option<u8> {
        self.dscp
    }
    /// The address of a NAT rule (`RTA_GATEWAY`; NAT rules are long deprecated).
    pub fn nat_gateway(&self) -> Option<IpAddr> {
        self.nat_gateway
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }

    /// An owned copy, usable as a request: deleting it removes exactly this rule.
    pub fn to_owned(&self) -> Rule {
        Rule {
            family: self.family(),
            priority: self.priority,
            invert: self.is_inverted(),
            src: self.src,
            src_len: self.src_len(),
            dst: self.dst,
            dst_len: self.dst_len(),
            tos: self.tos(),
            iif: self.iif.map(str::to_owned),
            oif: self.oif.map(str::to_owned),
            fwmark: self.fwmark,
            fwmask: self.fwmask,
            table: self.table(),
            action: self.action(),
            goto: self.goto,
            l3mdev: self.is_l3mdev(),
            uid_range: self.uid_range,
            sport: self.sport,
            dport: self.dport,
            ip_proto: self.ip_proto,
            dscp: self.dscp,
            suppress_prefixlen: self.suppress_prefixlen.filter(|&p| p != u32::MAX),
            suppress_ifgroup: self.suppress_ifgroup.filter(|&g| g != u32::MAX),
            protocol: self.protocol,
            realms: self.flow,
        }
    }
}

/// An owned rule: what [`request::add_rule`](crate::request::add_rule) and
/// [`request::del_rule`](crate::request::del_rule) send, and what [`RuleView::to_owned`]
/// returns. Built with chained setters, as `ip rule add` reads:
///
/// ```
/// use nlkit_wire::consts::*;
/// use nlkit_route::Rule;
/// let r = Rule::new(AF_INET).priority(200).iif("va").fwmark(0x10, Some(0xff)).table(200);
/// let u = Rule::new(AF_INET).priority(600).action(FR_ACT_UNREACHABLE);
/// let d = Rule::any(AF_INET).priority(200); // deletes whatever rule has priority 200
/// # let _ = (r, u, d);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Rule {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// `FRA_PRIORITY` (`None` on add: the kernel picks one below the previous rule).
    pub priority: Option<u32>,
    /// `not`: invert the selector.
    pub invert: bool,
    /// Source prefix.
    pub src: Option<IpAddr>,
    /// Source prefix length.
    pub src_len: u8,
    /// Destination prefix.
    pub dst: Option<IpAddr>,
    /// Destination prefix length.
    pub dst_len: u8,
    /// TOS / DS field to match.
    pub tos: u8,
    /// Input interface name.
    pub iif: Option<String>,
    /// Output interface name.
    pub oif: Option<String>,
    /// Firewall mark to match.
    pub fwmark: Option<u32>,
    /// Mask for the mark.
    pub fwmask: Option<u32>,
    /// Table to look up (0: none — wildcard on delete).
    pub table: u32,
    /// `FR_ACT_*` (`FR_ACT_UNSPEC`: wildcard on delete).
    pub action: u8,
    /// Target priority of a `goto` rule.
    pub goto: Option<u32>,
    /// Look up the table of the VRF the packet arrived on.
    pub l3mdev: bool,
    /// uid range `(start, end)`.
    pub uid_range: Option<(u32, u32)>,
    /// Source port range.
    pub sport: Option<(u16, u16)>,
    /// Destination port range.
    pub dport: Option<(u16, u16)>,
    /// L4 protocol (`IPPROTO_*`).
    pub ip_proto: Option<u8>,
    /// DSCP to match (Linux 6.12+).
    pub dscp: Option<u8>,
    /// Reject lookup results with a prefix this long or shorter.
    pub suppress_prefixlen: Option<u32>,
    /// Reject lookup results whose device is in this group.
    pub suppress_ifgroup: Option<u32>,
    /// `FRA_PROTOCOL`: who installed the rule.
    pub protocol: Option<u8>,
    /// Realms (`from << 16 | to`).
    pub realms: Option<u32>,
}

impl Rule {
    /// A rule as `ip rule add` starts one: look up the main table.
    pub fn new(family: u8) -> Self {
        Rule {
            family,
            table: RT_TABLE_MAIN as u32,
            action: FR_ACT_TO_TBL,
            ..Default::default()
        }
    }
    /// A selector for [`request::del_rule`](crate::request::del_rule) with every field a
    /// wildcard, as `ip rule del` starts one.
    pub fn any(family: u8) -> Self {
        Rule {
            family,
            ..Default::default()
        }
    }
    /// Sets the priority.
    pub fn priority(mut self, p: u32) -> Self {
        self.priority = Some(p);
        self
    }
    /// Matches source prefix `addr/len`.
    pub fn from(mut self, addr: IpAddr, len: u8) -> Self {
        self.src = Some(addr);
        self.src_len = len;
        self
    }
    /// Matches destination prefix `addr/len`.
    pub fn to(mut self, addr: IpAddr, len: u8) -> Self {
        self.dst = Some(addr);
        self.dst_len = len;
        self
    }
    /// Matches the input interface.
    pub fn iif(mut self, name: &str) -> Self {
        self.iif = Some(name.to_owned());
        self
    }
    /// Matches the output interface.
    pub fn oif(mut self, name: &str) -> Self {
        self.oif = Some(name.to_owned());
        self
    }
    /// Matches a firewall mark, optionally under a mask.
    pub fn fwmark(mut self, mark: u32, mask: Option<u32>) -> Self {
        self.fwmark = Some(mark);
        self.fwmask = mask;
        self
    }
    /// Looks up `table` (the action becomes `FR_ACT_TO_TBL`).
    pub fn table(mut self, table: u32) -> Self {
        self.table = table;
        self.action = FR_ACT_TO_TBL;
        self
    }
    /// Sets the action (`FR_ACT_UNREACHABLE`, `FR_ACT_PROHIBIT`, `FR_ACT_BLACKHOLE`, …);
    /// a rule with an action other than a lookup has no table.
    pub fn action(mut self, action: u8) -> Self {
        self.action = action;
        if action != FR_ACT_TO_TBL {
            self.table = 0;
        }
        self
    }
    /// Jumps to the rule with priority `target`.
    pub fn goto(mut self, target: u32) -> Self {
        self.goto = Some(target);
        self.action(FR_ACT_GOTO)
    }
}
