//! Nexthop objects (`RTM_NEWNEXTHOP` / `RTM_DELNEXTHOP`, `ip nexthop`): the `struct nhmsg`
//! header and a zero-copy view.
//!
//! Routes refer to a nexthop object by id (`RTA_NH_ID`, `ip route add … nhid 20`). Deleting
//! the object deletes those routes, and replacing it (or changing a group it is a member of)
//! changes them, without any route notification: a consumer that mirrors routes has to
//! re-dump them when it sees such an event.

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{FamilyHeader, Message, WireError};

use crate::{check_type, ip_attr};

/// `struct nhmsg` (nexthop objects).
///
/// ```
/// use nlkit_wire::FamilyHeader;
/// use nlkit_route::NhMsg;
/// let h = NhMsg { family: 2, scope: 0, protocol: 4, flags: 1 };
/// let mut buf = [0u8; NhMsg::LEN];
/// h.write(&mut buf);
/// assert_eq!(NhMsg::parse(&buf).unwrap(), h);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NhMsg {
    /// `nh_family`: `AF_INET`, `AF_INET6`, or `AF_UNSPEC` for groups and blackholes.
    pub family: u8,
    /// `nh_scope`.
    pub scope: u8,
    /// `nh_protocol`: RTPROT_*.
    pub protocol: u8,
    /// `nh_flags`: RTNH_F_*.
    pub flags: u32,
}

impl FamilyHeader for NhMsg {
    const LEN: usize = 8;
    const NAME: &'static str = "nhmsg";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = bytes.get(..Self::LEN).ok_or(WireError::Truncated {
            what: Self::NAME,
            needed: Self::LEN,
            available: bytes.len(),
        })?;
        Ok(NhMsg {
            family: b[0],
            scope: b[1],
            protocol: b[2],
            flags: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&[self.family, self.scope, self.protocol, 0]);
        out[4..8].copy_from_slice(&self.flags.to_ne_bytes());
    }
}

/// One member of a nexthop group (`struct nexthop_grp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NexthopGroupMember {
    /// The member's nexthop id.
    pub id: u32,
    /// Its weight as `ip nexthop` shows it (the kernel stores weight − 1).
    pub weight: u16,
}

/// Size of one `struct nexthop_grp`.
const GRP_LEN: usize = 8;

/// A borrowed view of one nexthop-object message, decoded in one pass.
///
/// ```
/// use nlkit_wire::{consts::*, MessageBuilder, Messages};
/// use nlkit_route::{NexthopObjectView, NhMsg};
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWNEXTHOP, 0, 1);
/// b.header(&NhMsg::default());
/// b.attr_u32(NHA_ID, 30);
/// let mut grp = Vec::new();
/// for id in [21u32, 22] {
///     grp.extend_from_slice(&id.to_ne_bytes());
///     grp.extend_from_slice(&[0, 0, 0, 0]);
/// }
/// b.attr_bytes(NHA_GROUP, &grp);
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NexthopObjectView::parse(&m).unwrap();
/// assert_eq!(v.id(), Some(30));
/// assert_eq!(v.group().map(|g| g.id).collect::<Vec<_>>(), [21, 22]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct NexthopObjectView<'a> {
    msg_type: u16,
    hdr: NhMsg,
    id: Option<u32>,
    group: &'a [u8],
    oif: Option<u32>,
    gateway: Option<IpAddr>,
    blackhole: bool,
    unknown_attrs: u32,
}

impl<'a> NexthopObjectView<'a> {
    /// Decodes an `RTM_NEWNEXTHOP` or `RTM_DELNEXTHOP` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWNEXTHOP, RTM_DELNEXTHOP)?;
        let (hdr, attrs) = msg.family_header::<NhMsg>()?;
        let mut v = NexthopObjectView {
            msg_type: msg.ty(),
            hdr,
            id: None,
            group: &[],
            oif: None,
            gateway: None,
            blackhole: false,
            unknown_attrs: 0,
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                NHA_ID => v.id = Some(a.u32()?),
                NHA_GROUP => v.group = a.payload(),
                NHA_OIF => v.oif = Some(a.u32()?),
                NHA_GATEWAY => v.gateway = ip_attr(hdr.family, &a)?,
                NHA_BLACKHOLE => v.blackhole = true,
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    /// `RTM_NEWNEXTHOP` or `RTM_DELNEXTHOP`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
    }

    /// The fixed header.
    pub fn header(&self) -> NhMsg {
        self.hdr
    }

    /// The object's id (`NHA_ID`).
    pub fn id(&self) -> Option<u32> {
        self.id
    }

    /// The members when the object is a group (`NHA_GROUP`); empty otherwise. A trailing
    /// partial entry is ignored.
    pub fn group(&self) -> impl Iterator<Item = NexthopGroupMember> + 'a {
        self.group
            .chunks_exact(GRP_LEN)
            .map(|c| NexthopGroupMember {
                id: u32::from_ne_bytes([c[0], c[1], c[2], c[3]]),
                weight: (u16::from(c[5]) << 8 | u16::from(c[4])) + 1,
            })
    }

    /// Whether the object is a group.
    pub fn is_group(&self) -> bool {
        !self.group.is_empty()
    }

    /// The output interface (`NHA_OIF`).
    pub fn oif(&self) -> Option<u32> {
        self.oif
    }

    /// The gateway (`NHA_GATEWAY`).
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway
    }

    /// Whether it is a blackhole nexthop (`NHA_BLACKHOLE`).
    pub fn blackhole(&self) -> bool {
        self.blackhole
    }

    /// Attributes this view did not decode.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::{MessageBuilder, Messages};

    #[test]
    fn short_header_is_an_error() {
        let mut b = MessageBuilder::new();
        b.begin(RTM_DELNEXTHOP, 0, 1);
        b.finish().unwrap();
        let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
        assert!(NexthopObjectView::parse(&m).is_err());
    }

    #[test]
    fn gateway_and_weights() {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWNEXTHOP, 0, 1);
        b.header(&NhMsg {
            family: AF_INET,
            ..Default::default()
        });
        b.attr_u32(NHA_ID, 20);
        b.attr_u32(NHA_OIF, 3);
        b.attr_ip(NHA_GATEWAY, "10.0.0.2".parse().unwrap());
        b.attr_u16(99, 7);
        b.finish().unwrap();
        let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
        let v = NexthopObjectView::parse(&m).unwrap();
        assert_eq!(v.id(), Some(20));
        assert_eq!(v.oif(), Some(3));
        assert_eq!(v.gateway(), Some("10.0.0.2".parse().unwrap()));
        assert!(!v.is_group());
        assert_eq!(v.unknown_attrs(), 1);

        let mut g = Vec::new();
        g.extend_from_slice(&5u32.to_ne_bytes());
        g.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWNEXTHOP, 0, 1);
        b.header(&NhMsg::default());
        b.attr_bytes(NHA_GROUP, &g);
        b.finish().unwrap();
        let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
        let v = NexthopObjectView::parse(&m).unwrap();
        assert_eq!(
            v.group().collect::<Vec<_>>(),
            [NexthopGroupMember { id: 5, weight: 10 }]
        );
    }
}
