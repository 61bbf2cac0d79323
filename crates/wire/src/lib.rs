//! `nlkit-wire`: the Netlink message and attribute codec.
//!
//! Everything here works on byte slices and performs no I/O:
//!
//! * [`Message`] is a borrowed view over one `nlmsghdr` and its payload, and [`Messages`]
//!   walks a receive buffer one message at a time;
//! * [`Attrs`] walks the attributes of a payload (with nesting), and [`Attr`] has typed getters;
//! * the family headers ([`RtMsg`], [`IfInfoMsg`], [`IfAddrMsg`], [`NdMsg`], [`NfGenMsg`],
//!   [`GenlMsgHdr`]) are read without any alignment assumption;
//! * [`MessageBuilder`] writes one or many messages into a reusable buffer, and
//!   [`MessageHeaderMut`] patches a header field of a message already written;
//! * [`ErrorMsg`] and [`DoneMsg`] decode `NLMSG_ERROR` and `NLMSG_DONE`, including the extended-ack
//!   TLVs, and [`KernelError`] is the owned error a caller gets back;
//! * [`fuzzing::parse_all`] drives all of the above over arbitrary bytes: it is the body of the
//!   cargo-fuzz target and of the test that replays the fuzz corpus.
//!
//! No input makes a parser panic: every parse returns [`Result`] with a typed [`WireError`].
//! Unknown attributes are yielded like any other (the caller skips what it does not know), and
//! struct-valued attributes longer than expected are accepted (see [`Attr::prefix`]), so a newer
//! kernel never breaks an older parser.
//!
//! ```
//! use nlkit_wire::{consts::*, Attrs, MessageBuilder, Messages, RtMsg};
//!
//! let mut b = MessageBuilder::new();
//! b.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE, 7);
//! b.header(&RtMsg { family: AF_INET, dst_len: 24, table: RT_TABLE_MAIN, ..Default::default() });
//! b.attr_bytes(RTA_DST, &[10, 1, 2, 0]);
//! b.attr_u32(RTA_OIF, 3);
//! b.finish().unwrap();
//!
//! let msg = Messages::new(b.as_bytes()).next().unwrap().unwrap();
//! assert_eq!(msg.seq(), 7);
//! let (rt, attrs) = msg.family_header::<RtMsg>().unwrap();
//! assert_eq!(rt.dst_len, 24);
//! let oif = attrs.find(RTA_OIF).unwrap().unwrap().u32().unwrap();
//! assert_eq!(oif, 3);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ack;
mod attr;
mod builder;
pub mod consts;
mod error;
pub mod feed;
pub mod fuzzing;
mod header;
mod msg;
pub mod text;

pub use ack::{DoneMsg, ErrorMsg, ExtAck, KernelError};
pub use attr::{Attr, Attrs};
pub use builder::{Built, MessageBuilder, Nest};
pub use error::WireError;
pub use header::{
    FamilyHeader, FibRuleHdr, GenlMsgHdr, IfAddrMsg, IfInfoMsg, NdMsg, NfGenMsg, NhMsg, RtMsg,
};
pub use msg::{Message, MessageHeader, MessageHeaderMut, Messages};

/// Rounds `len` up to the Netlink alignment (4 bytes), like `NLMSG_ALIGN` and `NLA_ALIGN`.
///
/// ```
/// assert_eq!(nlkit_wire::align(5), 8);
/// assert_eq!(nlkit_wire::align(8), 8);
/// ```
#[inline]
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
