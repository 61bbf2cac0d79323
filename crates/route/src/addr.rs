//! Addresses (`RTM_NEWADDR` / `RTM_DELADDR`): a zero-copy view and the owned request spec.

use std::net::IpAddr;

use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, Message, WireError};

use crate::{check_type, ip_attr};

/// `struct ifa_cacheinfo` (`IFA_CACHEINFO`): lifetimes in seconds (`u32::MAX` = forever) and
/// timestamps in hundredths of a second since boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AddrCacheInfo {
    /// `ifa_prefered`: preferred lifetime left, seconds.
    pub preferred: u32,
    /// `ifa_valid`: valid lifetime left, seconds.
    pub valid: u32,
    /// `cstamp`: created.
    pub cstamp: u32,
    /// `tstamp`: last updated.
    pub tstamp: u32,
}

impl AddrCacheInfo {
    /// The value meaning "forever".
    pub const FOREVER: u32 = u32::MAX;
    /// The struct's size on the wire.
    pub const LEN: usize = 16;

    /// Reads the struct from the start of `b` (a longer payload is accepted).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b = b.get(..Self::LEN)?;
        let f = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(AddrCacheInfo {
            preferred: f(0),
            valid: f(4),
            cstamp: f(8),
            tstamp: f(12),
        })
    }
}

/// A borrowed view of one address message, decoded in one pass.
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_route::{request, AddrView, Address};
/// let mut b = MessageBuilder::new();
/// let a = Address::new(4, "10.0.0.1".parse().unwrap(), 24);
/// request::add_addr(&mut b, 1, &a, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = AddrView::parse(&m).unwrap();
/// assert_eq!((v.local(), v.prefix_len(), v.index()), (Some(a.local), 24, 4));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AddrView<'a> {
    msg_type: u16,
    hdr: IfAddrMsg,
    address: Option<IpAddr>,
    local: Option<IpAddr>,
    broadcast: Option<IpAddr>,
    label: Option<&'a str>,
    flags: Option<u32>,
    cacheinfo: Option<AddrCacheInfo>,
    rt_priority: Option<u32>,
    proto: Option<u8>,
    unknown_attrs: u32,
}

impl<'a> AddrView<'a> {
    /// Decodes an `RTM_NEWADDR` or `RTM_DELADDR` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWADDR, RTM_DELADDR)?;
        let (hdr, attrs) = msg.family_header::<IfAddrMsg>()?;
        let mut v = AddrView {
            msg_type: msg.ty(),
            hdr,
            address: None,
            local: None,
            broadcast: None,
            label: None,
            flags: None,
            cacheinfo: None,
            rt_priority: None,
            proto: None,
            unknown_attrs: 0,
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                IFA_ADDRESS => v.address = ip_attr(hdr.family, &a)?,
                IFA_LOCAL => v.local = ip_attr(hdr.family, &a)?,
                IFA_BROADCAST => v.broadcast = ip_attr(hdr.family, &a)?,
                IFA_LABEL => v.label = Some(a.str()?),
                IFA_FLAGS => v.flags = Some(a.u32()?),
                IFA_CACHEINFO => v.cacheinfo = AddrCacheInfo::parse(a.prefix(AddrCacheInfo::LEN)?),
                IFA_RT_PRIORITY => v.rt_priority = Some(a.u32()?),
                IFA_PROTO => v.proto = Some(a.u8()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    /// `nlmsg_type`: `RTM_NEWADDR` or `RTM_DELADDR`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
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
    /// `RT_SCOPE_*`.
    pub fn scope(&self) -> u8 {
        self.hdr.scope
    }
    /// All `IFA_F_*` flags: `IFA_FLAGS` when present (32 bits), the header's 8 bits otherwise.
    pub fn flags(&self) -> u32 {
        self.flags.unwrap_or(self.hdr.flags as u32)
    }
    /// `IFA_ADDRESS`: the peer on point-to-point links, the address itself otherwise.
    pub fn address(&self) -> Option<IpAddr> {
        self.address
    }
    /// `IFA_LOCAL`: the local address (IPv4; IPv6 sends only `IFA_ADDRESS`).
    pub fn local_raw(&self) -> Option<IpAddr> {
        self.local
    }
    /// The interface's own address: `IFA_LOCAL`, or `IFA_ADDRESS` when there is none.
    pub fn local(&self) -> Option<IpAddr> {
        self.local.or(self.address)
    }
    /// The point-to-point peer: `IFA_ADDRESS` when it differs from `IFA_LOCAL`.
    pub fn peer(&self) -> Option<IpAddr> {
        match (self.local, self.address) {
            (Some(l), Some(a)) if l != a => Some(a),
            _ => None,
        }
    }
    /// `IFA_BROADCAST`.
    pub fn broadcast(&self) -> Option<IpAddr> {
        self.broadcast
    }
    /// `IFA_LABEL` (IPv4).
    pub fn label(&self) -> Option<&'a str> {
        self.label
    }
    /// `IFA_CACHEINFO`: lifetimes.
    pub fn cacheinfo(&self) -> Option<AddrCacheInfo> {
        self.cacheinfo
    }
    /// `IFA_RT_PRIORITY`: the metric of the prefix route.
    pub fn rt_priority(&self) -> Option<u32> {
        self.rt_priority
    }
    /// `IFA_PROTO`: who added the address.
    pub fn proto(&self) -> Option<u8> {
        self.proto
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }

    /// An owned copy, usable as a request ([`request::add_addr`](crate::request::add_addr),
    /// [`request::del_addr`](crate::request::del_addr)). `None` when the message has no
    /// address.
    pub fn to_owned(&self) -> Option<Address> {
        Some(Address {
            index: self.index(),
            local: self.local()?,
            prefix_len: self.prefix_len(),
            peer: self.peer(),
            broadcast: self.broadcast,
            label: self.label.map(str::to_owned),
            scope: self.scope(),
            flags: self.flags(),
            valid_lft: self.cacheinfo.map(|c| c.valid),
            preferred_lft: self.cacheinfo.map(|c| c.preferred),
            metric: self.rt_priority,
        })
    }
}

/// An owned address: what [`request::add_addr`](crate::request::add_addr) sends, and what
/// [`AddrView::to_owned`] returns.
///
/// ```
/// let a = nlkit_route::Address::new(2, "fd00::1".parse().unwrap(), 64);
/// assert_eq!(a.family(), nlkit_wire::consts::AF_INET6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Address {
    /// The interface index.
    pub index: u32,
    /// The local address (`IFA_LOCAL`, and `IFA_ADDRESS` unless `peer` is set).
    pub local: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
    /// A point-to-point peer (`IFA_ADDRESS`).
    pub peer: Option<IpAddr>,
    /// `IFA_BROADCAST`.
    pub broadcast: Option<IpAddr>,
    /// `IFA_LABEL` (IPv4 only; must start with the interface name).
    pub label: Option<String>,
    /// `RT_SCOPE_*` (0 = global).
    pub scope: u8,
    /// `IFA_F_*` flags, sent in `IFA_FLAGS` (e.g. `IFA_F_NODAD`).
    pub flags: u32,
    /// Valid lifetime in seconds (`IFA_CACHEINFO`); `None` = forever.
    pub valid_lft: Option<u32>,
    /// Preferred lifetime in seconds; `None` = forever.
    pub preferred_lft: Option<u32>,
    /// `IFA_RT_PRIORITY`: metric of the prefix route.
    pub metric: Option<u32>,
}

impl Address {
    /// An address `local/prefix_len` on interface `index`, global scope, no flags.
    pub fn new(index: u32, local: IpAddr, prefix_len: u8) -> Self {
        Address {
            index,
            local,
            prefix_len,
            peer: None,
            broadcast: None,
            label: None,
            scope: RT_SCOPE_UNIVERSE,
            flags: 0,
            valid_lft: None,
            preferred_lft: None,
            metric: None,
        }
    }
    /// `AF_INET` or `AF_INET6`, from the address.
    pub fn family(&self) -> u8 {
        crate::family_of(self.local)
    }
}
