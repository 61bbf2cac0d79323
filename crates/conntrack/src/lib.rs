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

/// Why a conntrack operation failed or a ctnetlink message could not be decoded: the one
/// error type of this crate (parsers return it too, with only the decoding variants).
///
/// ```
/// use nlkit_conntrack::Error;
/// assert_eq!(Error::Missing("CTA_PROTO_NUM").to_string(), "missing CTA_PROTO_NUM");
/// let e = Error::from(nlkit_socket::Error::Kernel(nlkit_wire::KernelError {
///     errno: 2,
///     ..Default::default()
/// }));
/// assert_eq!(e.errno(), Some(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket or the kernel reported an error.
    #[error(transparent)]
    Socket(#[from] nlkit_socket::Error),
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

impl Error {
    /// The errno behind the error, if any (e.g. `ENOENT`, `EEXIST`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Socket(e) => e.errno(),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn chains_are_walkable() {
        // A socket error keeps its text and its cause.
        let wire = WireError::Build("too large");
        let e = Error::from(nlkit_socket::Error::Protocol(wire.clone()));
        assert_eq!(e.to_string(), "malformed message from the kernel");
        assert_eq!(
            e.source().and_then(|s| s.downcast_ref::<WireError>()),
            Some(&wire)
        );
        let kernel = nlkit_wire::KernelError {
            errno: 2,
            ..Default::default()
        };
        let e = Error::from(nlkit_socket::Error::Kernel(kernel));
        assert_eq!(e.errno(), Some(2));
        assert!(matches!(e, Error::Socket(ref s) if s.kernel().is_some()));
        // Decoding errors are the same type.
        assert_eq!(Error::from(wire.clone()), Error::Wire(wire));
        assert_eq!(Error::Missing("CTA_TUPLE_ORIG").errno(), None);
    }
}
