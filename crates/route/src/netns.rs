//! Network namespaces in rtnetlink: naming a namespace in a request ([`NetnsRef`]: an open
//! namespace fd or a process id), and namespace ids (`RTM_NEWNSID` / `RTM_GETNSID`,
//! `NETNSA_*`), the numbers by which a namespace knows its peers (`IFLA_LINK_NETNSID` in link
//! messages, `link-netnsid N` in `ip link`).
//!
//! To run requests *inside* another namespace, open the socket there with
//! [`nlkit_socket::netns::open_socket`] (a helper thread enters the namespace; the calling
//! thread never changes namespace).
//!
//! ```
//! use nlkit_wire::{consts::*, Messages, MessageBuilder};
//! use nlkit_route::{request, NetnsRef, NsidView};
//! let mut b = MessageBuilder::new();
//! request::set_nsid(&mut b, 1, NetnsRef::Pid(1234), 7).unwrap();
//! let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
//! let v = NsidView::parse_any(&m).unwrap();
//! assert_eq!((v.nsid(), v.pid()), (Some(7), Some(1234)));
//! ```

use std::os::fd::RawFd;

use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder, WireError};

use crate::check_type;

/// A network namespace named in a request.
///
/// `Fd` carries a raw descriptor number: the caller keeps the descriptor open until the
/// request has been sent (the `ops` functions take a borrowed fd and do this for you).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetnsRef {
    /// An open namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
    Fd(RawFd),
    /// The namespace of a process.
    Pid(u32),
}

impl NetnsRef {
    /// Appends `IFLA_NET_NS_FD` or `IFLA_NET_NS_PID` (moving a link, or creating a veth
    /// peer, in that namespace).
    pub(crate) fn write_link_attr(&self, b: &mut MessageBuilder) {
        match *self {
            NetnsRef::Fd(fd) => b.attr_u32(IFLA_NET_NS_FD, fd as u32),
            NetnsRef::Pid(p) => b.attr_u32(IFLA_NET_NS_PID, p),
        };
    }

    /// Appends `NETNSA_FD` or `NETNSA_PID`.
    pub(crate) fn write_nsid_attr(&self, b: &mut MessageBuilder) {
        match *self {
            NetnsRef::Fd(fd) => b.attr_u32(NETNSA_FD, fd as u32),
            NetnsRef::Pid(p) => b.attr_u32(NETNSA_PID, p),
        };
    }
}

/// Size of `struct rtgenmsg` as sent (one byte, padded to 4).
pub(crate) const RTGENMSG_LEN: usize = 4;

/// A borrowed view of one namespace-id message (`RTM_NEWNSID`, `RTM_DELNSID`).
///
/// ```
/// use nlkit_wire::{consts::*, Messages, MessageBuilder};
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWNSID, 0, 0).raw(&[0, 0, 0, 0]);
/// b.attr_bytes(NETNSA_NSID, &3i32.to_ne_bytes());
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// assert_eq!(nlkit_route::NsidView::parse(&m).unwrap().nsid(), Some(3));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsidView {
    msg_type: u16,
    nsid: Option<i32>,
    current_nsid: Option<i32>,
    pid: Option<u32>,
    fd: Option<u32>,
    unknown_attrs: u32,
}

impl NsidView {
    /// Decodes an `RTM_NEWNSID` or `RTM_DELNSID` message.
    pub fn parse(msg: &Message<'_>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWNSID, RTM_DELNSID)?;
        Self::parse_any(msg)
    }

    /// Decodes a message with an `rtgenmsg` header whatever its type (e.g. a request).
    pub fn parse_any(msg: &Message<'_>) -> Result<Self, WireError> {
        if msg.payload().is_empty() {
            return Err(WireError::Truncated {
                what: "rtgenmsg",
                needed: 1,
                available: 0,
            });
        }
        let mut v = NsidView {
            msg_type: msg.ty(),
            ..Default::default()
        };
        for a in msg.attrs(RTGENMSG_LEN) {
            let a = a?;
            match a.ty() {
                NETNSA_NSID => v.nsid = Some(a.i32()?),
                NETNSA_CURRENT_NSID => v.current_nsid = Some(a.i32()?),
                NETNSA_PID => v.pid = Some(a.u32()?),
                NETNSA_FD => v.fd = Some(a.u32()?),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    /// `nlmsg_type`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
    }
    /// `NETNSA_NSID`: the id; negative (`NETNSA_NSID_NOT_ASSIGNED`) when none is assigned.
    pub fn nsid(&self) -> Option<i32> {
        self.nsid
    }
    /// The id if one is assigned.
    pub fn assigned(&self) -> Option<u32> {
        self.nsid.and_then(|n| u32::try_from(n).ok())
    }
    /// `NETNSA_CURRENT_NSID` (replies to requests with a target nsid).
    pub fn current_nsid(&self) -> Option<i32> {
        self.current_nsid
    }
    /// `NETNSA_PID` (requests).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
    /// `NETNSA_FD` (requests).
    pub fn fd(&self) -> Option<u32> {
        self.fd
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }
}
