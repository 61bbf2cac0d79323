//! `nlkit-conntrack`: typed ctnetlink (the kernel's connection tracking table).
//!
//! * [`CtEntryView`] borrows a received message (a dump item, a get reply or an event) and
//!   decodes it in one pass: both [`Tuple`]s (IPv4/IPv6; TCP, UDP, SCTP ports or ICMP/ICMPv6
//!   id, type and code), status, timeout, mark, zone, id, use, counters, TCP/SCTP state and
//!   labels. ctnetlink's big-endian values are converted; nests with or without
//!   `NLA_F_NESTED` are accepted; unknown attributes are skipped and counted.
//! * [`request`] appends dump (with kernel-side mark, zone, status and tuple filters), get,
//!   create, update, delete, flush (all, by mark), count and per-CPU statistics requests to a
//!   [`MessageBuilder`](nlkit_wire::MessageBuilder). [`CtEntry`] is the owned request spec.
//! * [`ops`] runs them on [`nlkit_socket`] sockets: streaming dumps, the streaming
//!   [`delete_matching`](ops::delete_matching), counts, statistics and [`ops::Events`].
//! * [`fmt`] prints like `conntrack -L` / `conntrack -E` and serializes JSON.
//!
//! ```
//! use nlkit_wire::{Messages, MessageBuilder};
//! use nlkit_conntrack::{fmt::entry_text, request, CtEntry, CtEntryView, Tuple};
//! let t = Tuple::tcp("10.0.0.1".parse().unwrap(), 40000, "10.0.0.2".parse().unwrap(), 80);
//! let mut b = MessageBuilder::new();
//! request::create(&mut b, 1, &CtEntry::new(t).timeout(60).tcp_state(3)).unwrap();
//! let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
//! let v = CtEntryView::parse(&m).unwrap();
//! assert!(entry_text(&v).to_string().starts_with("tcp      6 60 ESTABLISHED src=10.0.0.1"));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use nlkit_wire::WireError;

mod entry;
pub mod fmt;
pub mod ops;
pub mod request;
mod stats;
mod tuple;

pub use entry::{Counters, CtEntry, CtEntryView, EventKind, TcpInfo};
pub use stats::{CpuStats, GlobalStats};
pub use tuple::{Tuple, L4};

/// Why a ctnetlink message could not be decoded.
///
/// ```
/// use nlkit_conntrack::ParseError;
/// assert_eq!(ParseError::Missing("CTA_PROTO_NUM").to_string(), "missing CTA_PROTO_NUM");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes do not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A required attribute is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The message is not a ctnetlink message of the expected kind.
    #[error("unexpected message type {0:#06x} for this decoder")]
    UnexpectedType(u16),
}
