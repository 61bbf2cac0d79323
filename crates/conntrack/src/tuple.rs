//! Conntrack tuples (`CTA_TUPLE_ORIG`, `CTA_TUPLE_REPLY`): decoding and encoding.
//!
//! ctnetlink sends ports, ICMP ids and zones in network byte order, and older tools send the
//! tuple nests without `NLA_F_NESTED`; both forms are accepted here. Nests are written with
//! `NLA_F_NESTED`.

use std::net::{IpAddr, Ipv4Addr};

use nlkit_wire::consts::*;
use nlkit_wire::{Attr, MessageBuilder};

use crate::Error;

/// The layer-4 part of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(untagged)]
pub enum L4 {
    /// TCP, UDP, UDP-Lite, SCTP, DCCP: source and destination ports.
    Ports {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP or ICMPv6: id, type and code.
    Icmp {
        /// Echo id.
        id: u16,
        /// ICMP type.
        #[serde(rename = "type")]
        ty: u8,
        /// ICMP code.
        code: u8,
    },
    /// A protocol without layer-4 keys (or one this crate does not know).
    Other,
}

/// A conntrack tuple: addresses, protocol, layer-4 keys and an optional tuple zone.
///
/// ```
/// use nlkit_conntrack::Tuple;
/// let t = Tuple::udp("10.0.0.1".parse().unwrap(), 1234, "10.0.0.2".parse().unwrap(), 53);
/// assert_eq!(t.reversed().src, t.dst);
/// assert_eq!(t.sport(), Some(1234));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The IP protocol number (`IPPROTO_*`).
    pub proto: u8,
    /// Ports or ICMP keys.
    pub l4: L4,
    /// `CTA_TUPLE_ZONE`, when the tuple carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<u16>,
}

fn is_icmp(proto: u8) -> bool {
    proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6
}

impl Tuple {
    /// A tuple with ports (TCP, UDP, SCTP, …).
    pub fn with_ports(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Tuple {
            src,
            dst,
            proto,
            l4: L4::Ports { sport, dport },
            zone: None,
        }
    }
    /// A TCP tuple.
    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::with_ports(IPPROTO_TCP, src, sport, dst, dport)
    }
    /// A UDP tuple.
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::with_ports(IPPROTO_UDP, src, sport, dst, dport)
    }
    /// An SCTP tuple.
    pub fn sctp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::with_ports(IPPROTO_SCTP, src, sport, dst, dport)
    }
    /// An ICMP (IPv4) or ICMPv6 (IPv6) tuple, chosen by the address family.
    pub fn icmp(src: IpAddr, dst: IpAddr, id: u16, ty: u8, code: u8) -> Self {
        Tuple {
            src,
            dst,
            proto: if src.is_ipv4() {
                IPPROTO_ICMP
            } else {
                IPPROTO_ICMPV6
            },
            l4: L4::Icmp { id, ty, code },
            zone: None,
        }
    }

    /// `AF_INET` or `AF_INET6`.
    pub fn family(&self) -> u8 {
        if self.src.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }
    /// The source port, for protocols with ports.
    pub fn sport(&self) -> Option<u16> {
        match self.l4 {
            L4::Ports { sport, .. } => Some(sport),
            _ => None,
        }
    }
    /// The destination port, for protocols with ports.
    pub fn dport(&self) -> Option<u16> {
        match self.l4 {
            L4::Ports { dport, .. } => Some(dport),
            _ => None,
        }
    }

    /// The tuple of the other direction, as the kernel builds the reply tuple of an un-NATed
    /// connection: addresses and ports swapped; an ICMP echo request (8 / 128) becomes the
    /// matching reply (0 / 129).
    pub fn reversed(&self) -> Tuple {
        let l4 = match self.l4 {
            L4::Ports { sport, dport } => L4::Ports {
                sport: dport,
                dport: sport,
            },
            L4::Icmp { id, ty, code } => L4::Icmp {
                id,
                ty: match (self.proto, ty) {
                    (IPPROTO_ICMP, 8) => 0,
                    (IPPROTO_ICMP, 0) => 8,
                    (IPPROTO_ICMPV6, 128) => 129,
                    (IPPROTO_ICMPV6, 129) => 128,
                    _ => ty,
                },
                code,
            },
            L4::Other => L4::Other,
        };
        Tuple {
            src: self.dst,
            dst: self.src,
            proto: self.proto,
            l4,
            zone: self.zone,
        }
    }

    /// Decodes a tuple nest (the payload of `CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`).
    /// Unknown attributes are skipped and counted into `unknown`.
    pub fn parse(nest: &Attr<'_>, unknown: &mut u32) -> Result<Tuple, Error> {
        let (mut src, mut dst, mut proto, mut zone) = (None, None, None, None);
        let (mut sport, mut dport) = (None, None);
        let (mut id, mut ty, mut code) = (None, None, None);
        for a in nest.nested() {
            let a = a?;
            match a.ty() {
                CTA_TUPLE_IP => {
                    for ip in a.nested() {
                        let ip = ip?;
                        match ip.ty() {
                            CTA_IP_V4_SRC => src = Some(IpAddr::V4(ip.ipv4()?)),
                            CTA_IP_V4_DST => dst = Some(IpAddr::V4(ip.ipv4()?)),
                            CTA_IP_V6_SRC => src = Some(IpAddr::V6(ip.ipv6()?)),
                            CTA_IP_V6_DST => dst = Some(IpAddr::V6(ip.ipv6()?)),
                            _ => *unknown += 1,
                        }
                    }
                }
                CTA_TUPLE_PROTO => {
                    for p in a.nested() {
                        let p = p?;
                        match p.ty() {
                            CTA_PROTO_NUM => proto = Some(p.u8()?),
                            CTA_PROTO_SRC_PORT => sport = Some(p.be16()?),
                            CTA_PROTO_DST_PORT => dport = Some(p.be16()?),
                            CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => id = Some(p.be16()?),
                            CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => ty = Some(p.u8()?),
                            CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => code = Some(p.u8()?),
                            _ => *unknown += 1,
                        }
                    }
                }
                CTA_TUPLE_ZONE => zone = Some(a.be16()?),
                _ => *unknown += 1,
            }
        }
        let proto = proto.ok_or(Error::Missing("CTA_PROTO_NUM"))?;
        let l4 = if let (Some(sport), Some(dport)) = (sport, dport) {
            L4::Ports { sport, dport }
        } else if is_icmp(proto) && (id.is_some() || ty.is_some()) {
            L4::Icmp {
                id: id.unwrap_or(0),
                ty: ty.unwrap_or(0),
                code: code.unwrap_or(0),
            }
        } else {
            L4::Other
        };
        Ok(Tuple {
            src: src.ok_or(Error::Missing("tuple source address"))?,
            dst: dst.ok_or(Error::Missing("tuple destination address"))?,
            proto,
            l4,
            zone,
        })
    }

    /// Appends this tuple as the nest `ty` (`CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`).
    pub fn write(&self, b: &mut MessageBuilder, ty: u16) {
        let t = b.nest_begin(ty);
        write_ip(b, Some(self.src), Some(self.dst));
        let p = b.nest_begin(CTA_TUPLE_PROTO);
        b.attr_u8(CTA_PROTO_NUM, self.proto);
        match self.l4 {
            L4::Ports { sport, dport } => {
                b.attr_be16(CTA_PROTO_SRC_PORT, sport);
                b.attr_be16(CTA_PROTO_DST_PORT, dport);
            }
            L4::Icmp { id, ty, code } => {
                let v6 = self.proto == IPPROTO_ICMPV6;
                let (a_id, a_ty, a_code) = if v6 {
                    (
                        CTA_PROTO_ICMPV6_ID,
                        CTA_PROTO_ICMPV6_TYPE,
                        CTA_PROTO_ICMPV6_CODE,
                    )
                } else {
                    (CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE)
                };
                b.attr_be16(a_id, id);
                b.attr_u8(a_ty, ty);
                b.attr_u8(a_code, code);
            }
            L4::Other => {}
        }
        b.nest_end(p);
        if let Some(z) = self.zone {
            b.attr_be16(CTA_TUPLE_ZONE, z);
        }
        b.nest_end(t);
    }
}

/// Writes a `CTA_TUPLE_IP` nest with the addresses given.
pub(crate) fn write_ip(b: &mut MessageBuilder, src: Option<IpAddr>, dst: Option<IpAddr>) {
    let ip = b.nest_begin(CTA_TUPLE_IP);
    if let Some(s) = src {
        match s {
            IpAddr::V4(a) => b.attr_bytes(CTA_IP_V4_SRC, &a.octets()),
            IpAddr::V6(a) => b.attr_bytes(CTA_IP_V6_SRC, &a.octets()),
        };
    }
    if let Some(d) = dst {
        match d {
            IpAddr::V4(a) => b.attr_bytes(CTA_IP_V4_DST, &a.octets()),
            IpAddr::V6(a) => b.attr_bytes(CTA_IP_V6_DST, &a.octets()),
        };
    }
    b.nest_end(ip);
}

impl Default for Tuple {
    fn default() -> Self {
        Tuple {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proto: 0,
            l4: L4::Other,
            zone: None,
        }
    }
}
