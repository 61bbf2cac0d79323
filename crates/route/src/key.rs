//! Key views: the fields that identify an address, a route or a neighbour, read in one pass
//! that skips every other attribute.
//!
//! Code that files many objects by identity (a cache or mirror of the kernel's tables) needs
//! only these few fields per message; the full views ([`AddrView`](crate::AddrView),
//! [`RouteView`](crate::RouteView), [`NeighView`](crate::NeighView)) decode and check every
//! attribute. A key view accepts the `RTM_NEW*`, `RTM_DEL*` and `RTM_GET*` messages of its
//! kind (a get request carries the same key fields), and its fields mean exactly what the
//! full view's accessors of the same name mean.

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, Message, NdMsg, RtMsg, WireError};

use crate::ip_attr;

/// Checks that `msg` is one of `types`.
fn check_types(msg: &Message<'_>, types: [u16; 3]) -> Result<(), WireError> {
    if types.contains(&msg.ty()) {
        Ok(())
    } else {
        Err(WireError::UnexpectedType {
            expected: types[0],
            found: msg.ty(),
        })
    }
}

/// What identifies a route — table, destination and source prefixes, TOS, priority — plus its
/// header flags and output interface.
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_route::{request, Route, RouteKeyView};
/// let r = Route::new("10.1.0.0".parse().unwrap(), 24).dev(3).table(1000).metric(100);
/// let mut b = MessageBuilder::new();
/// request::add_route(&mut b, 1, &r, request::RouteOp::Add).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let k = RouteKeyView::parse(&m).unwrap();
/// assert_eq!((k.table(), k.dst(), k.dst_len(), k.priority()), (1000, r.dst, 24, Some(100)));
/// assert_eq!(k.oif(), Some(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteKeyView {
    hdr: RtMsg,
    table: Option<u32>,
    dst: Option<IpAddr>,
    src: Option<IpAddr>,
    priority: Option<u32>,
    oif: Option<u32>,
}

impl RouteKeyView {
    /// Reads the key of an `RTM_NEWROUTE`, `RTM_DELROUTE` or `RTM_GETROUTE` message.
    pub fn parse(msg: &Message<'_>) -> Result<Self, WireError> {
        check_types(msg, [RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE])?;
        let (hdr, attrs) = msg.family_header::<RtMsg>()?;
        let mut k = RouteKeyView {
            hdr,
            table: None,
            dst: None,
            src: None,
            priority: None,
            oif: None,
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                RTA_TABLE => k.table = Some(a.u32()?),
                RTA_DST => k.dst = ip_attr(hdr.family, &a)?,
                RTA_SRC => k.src = ip_attr(hdr.family, &a)?,
                RTA_PRIORITY => k.priority = Some(a.u32()?),
                RTA_OIF => k.oif = Some(a.u32()?),
                _ => {}
            }
        }
        Ok(k)
    }

    /// The `rtmsg` header.
    pub fn header(&self) -> RtMsg {
        self.hdr
    }
    /// `AF_INET`, `AF_INET6`, …
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// The table id: `RTA_TABLE` when present, else `rtm_table`.
    pub fn table(&self) -> u32 {
        self.table.unwrap_or(u32::from(self.hdr.table))
    }
    /// `RTA_DST`; `None` for a default route.
    pub fn dst(&self) -> Option<IpAddr> {
        self.dst
    }
    /// `rtm_dst_len`.
    pub fn dst_len(&self) -> u8 {
        self.hdr.dst_len
    }
    /// `RTA_SRC` (source-specific routes).
    pub fn src(&self) -> Option<IpAddr> {
        self.src
    }
    /// `rtm_src_len`.
    pub fn src_len(&self) -> u8 {
        self.hdr.src_len
    }
    /// `rtm_tos`.
    pub fn tos(&self) -> u8 {
        self.hdr.tos
    }
    /// `RTA_PRIORITY` (the metric).
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }
    /// `RTA_OIF` (not part of the key: a multipath route has its interfaces in
    /// `RTA_MULTIPATH`).
    pub fn oif(&self) -> Option<u32> {
        self.oif
    }
    /// `RTM_F_CLONED`: a cached clone (the route cache, `ip route show cache`), not a route of
    /// the table.
    pub fn is_cloned(&self) -> bool {
        self.hdr.flags & RTM_F_CLONED != 0
    }
}

/// What identifies an address: interface, prefix length and the interface's own address.
///
/// ```
/// use nlkit_wire::{consts::*, IfAddrMsg, Messages, MessageBuilder};
/// use nlkit_route::AddrKeyView;
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWADDR, 0, 1);
/// b.header(&IfAddrMsg { family: AF_INET6, prefixlen: 64, index: 2, ..Default::default() });
/// b.attr_ip(IFA_ADDRESS, "fd00::1".parse().unwrap());
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let k = AddrKeyView::parse(&m).unwrap();
/// assert_eq!((k.index(), k.prefix_len(), k.local()), (2, 64, Some("fd00::1".parse().unwrap())));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrKeyView {
    hdr: IfAddrMsg,
    address: Option<IpAddr>,
    local: Option<IpAddr>,
}

impl AddrKeyView {
    /// Reads the key of an `RTM_NEWADDR`, `RTM_DELADDR` or `RTM_GETADDR` message.
    pub fn parse(msg: &Message<'_>) -> Result<Self, WireError> {
        check_types(msg, [RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR])?;
        let (hdr, attrs) = msg.family_header::<IfAddrMsg>()?;
        let mut k = AddrKeyView {
            hdr,
            address: None,
            local: None,
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                IFA_ADDRESS => k.address = ip_attr(hdr.family, &a)?,
                IFA_LOCAL => k.local = ip_attr(hdr.family, &a)?,
                _ => {}
            }
        }
        Ok(k)
    }

    /// The `ifaddrmsg` header.
    pub fn header(&self) -> IfAddrMsg {
        self.hdr
    }
    /// `AF_INET` or `AF_INET6`.
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// The interface index.
    pub fn index(&self) -> u32 {
        self.hdr.index
    }
    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.hdr.prefixlen
    }
    /// The interface's own address: `IFA_LOCAL`, or `IFA_ADDRESS` when there is none (as
    /// [`AddrView::local`](crate::AddrView::local)).
    pub fn local(&self) -> Option<IpAddr> {
        self.local.or(self.address)
    }
}

/// What identifies a neighbour: interface and destination address (plus the header flags,
/// which tell proxy entries apart).
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_route::{request, NeighKeyView, Neighbour};
/// let n = Neighbour::new(3, "10.0.0.2".parse().unwrap());
/// let mut b = MessageBuilder::new();
/// request::add_neigh(&mut b, 1, &n, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let k = NeighKeyView::parse(&m).unwrap();
/// assert_eq!((k.ifindex(), k.dst(), k.is_proxy()), (3, Some(n.dst), false));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighKeyView {
    hdr: NdMsg,
    dst: Option<IpAddr>,
}

impl NeighKeyView {
    /// Reads the key of an `RTM_NEWNEIGH`, `RTM_DELNEIGH` or `RTM_GETNEIGH` message.
    pub fn parse(msg: &Message<'_>) -> Result<Self, WireError> {
        check_types(msg, [RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH])?;
        let (hdr, attrs) = msg.family_header::<NdMsg>()?;
        let mut k = NeighKeyView { hdr, dst: None };
        for a in attrs {
            let a = a?;
            if a.ty() == NDA_DST {
                k.dst = ip_attr(hdr.family, &a)?;
            }
        }
        Ok(k)
    }

    /// The `ndmsg` header.
    pub fn header(&self) -> NdMsg {
        self.hdr
    }
    /// `AF_INET`, `AF_INET6`, `AF_BRIDGE`, …
    pub fn family(&self) -> u8 {
        self.hdr.family
    }
    /// The interface index (0 or negative in some requests).
    pub fn ifindex(&self) -> i32 {
        self.hdr.ifindex
    }
    /// `NDA_DST`.
    pub fn dst(&self) -> Option<IpAddr> {
        self.dst
    }
    /// `NTF_PROXY`: a proxy entry (`ip neigh add proxy`), not a neighbour.
    pub fn is_proxy(&self) -> bool {
        self.hdr.flags & NTF_PROXY != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::{MessageBuilder, Messages};

    fn one(b: &MessageBuilder) -> Message<'_> {
        Messages::new(b.as_bytes()).next().unwrap().unwrap()
    }

    #[test]
    fn get_requests_have_keys_and_other_types_do_not() {
        let mut b = MessageBuilder::new();
        b.begin(RTM_GETROUTE, NLM_F_REQUEST, 1);
        b.header(&RtMsg {
            family: AF_INET,
            dst_len: 32,
            flags: RTM_F_CLONED,
            ..Default::default()
        });
        b.attr_ip(RTA_DST, "10.0.0.9".parse().unwrap());
        b.finish().unwrap();
        let k = RouteKeyView::parse(&one(&b)).unwrap();
        assert_eq!((k.table(), k.dst_len(), k.priority()), (0, 32, None));
        assert!(k.is_cloned());

        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWLINK, 0, 1);
        b.header(&RtMsg::default());
        b.finish().unwrap();
        assert!(RouteKeyView::parse(&one(&b)).is_err());
        assert!(AddrKeyView::parse(&one(&b)).is_err());
        assert!(NeighKeyView::parse(&one(&b)).is_err());
    }

    #[test]
    fn wrong_address_sizes_are_errors() {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWROUTE, 0, 1);
        b.header(&RtMsg {
            family: AF_INET,
            ..Default::default()
        });
        b.attr_bytes(RTA_DST, &[1, 2, 3]);
        b.finish().unwrap();
        assert!(RouteKeyView::parse(&one(&b)).is_err());
    }
}
