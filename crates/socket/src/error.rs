//! The error type of every socket operation.

use std::fmt;
use std::sync::Arc;

use nlkit_wire::{KernelError, WireError};
use rustix::io::Errno;
use thiserror::Error;

/// Why a socket operation failed: the one error type of this crate, and of `nlkit-route`,
/// whose decoders fail only with the [`WireError`] that [`Error::Protocol`] carries.
///
/// A kernel refusal is [`Error::Kernel`]: its `Display` is the kernel's (extended-ack) text,
/// the way iproute2 prints it, and it is not repeated as a separate `source()`. Other wrapping
/// variants say what failed and lead to the cause through `source()`.
///
/// The type is `Clone` (system errors are kept as [`Errno`]) so that a shared dump can hand the
/// same error to every thread that consumes it.
///
/// ```
/// use nlkit_socket::Error;
/// let e = Error::Kernel(nlkit_wire::KernelError { errno: 17, ..Default::default() });
/// assert_eq!(e.to_string(), "Error: File exists.");
/// assert_eq!(e.errno(), Some(17));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{op}: {errno}")]
    Sys {
        /// What was being done (`"socket"`, `"recvmsg"`, `"setns"`, …).
        op: &'static str,
        /// The system error.
        errno: Errno,
    },
    /// The kernel answered with an error (with its extended-ack text, when it sent one).
    #[error(transparent)]
    Kernel(KernelError),
    /// The kernel sent bytes that do not decode: the socket's stream can no longer be trusted.
    /// `source()` is the decoding error.
    #[error("malformed message from the kernel")]
    Protocol(#[from] WireError),
    /// A datagram was larger than the receive buffer and its spare tail together. The datagram
    /// is lost (never silently cut short); the buffer has grown so the next one fits.
    #[error("datagram of {size} bytes truncated to {capacity} bytes (buffer grown for next time)")]
    Truncated {
        /// The datagram's real size.
        size: usize,
        /// Bytes that could be received.
        capacity: usize,
    },
    /// Strict mode: the kernel refused a socket option instead of applying it.
    #[error("the kernel refused socket option {option}: {errno}")]
    OptionRefused {
        /// The option's name (`"NETLINK_EXT_ACK"`, …).
        option: &'static str,
        /// The kernel's answer.
        errno: Errno,
    },
    /// Strict mode: the kernel granted a smaller receive buffer than asked for.
    #[error("receive buffer: asked for {requested} bytes, the kernel granted {granted}")]
    RcvbufRefused {
        /// Bytes asked for.
        requested: usize,
        /// Bytes granted (as reported by `SO_RCVBUF`, i.e. doubled by the kernel).
        granted: usize,
    },
    /// The receive queue overflowed (`ENOBUFS`) while this request's reply was outstanding, and
    /// the reply was dropped by the kernel: the request may or may not have been applied.
    /// Re-read the state (or retry an idempotent request).
    #[error("reply to request seq {seq} was dropped by the kernel (receive queue overflow, ENOBUFS); the request may or may not have been applied")]
    ReplyLost {
        /// The request's sequence number.
        seq: u32,
    },
    /// The dump finished, but the kernel flagged it `NLM_F_DUMP_INTR`: the objects changed
    /// while it ran, so what was read may be inconsistent. Restart it (see
    /// [`consistent_dump`](crate::consistent_dump)).
    #[error(
        "dump interrupted by concurrent changes (NLM_F_DUMP_INTR): results may be inconsistent"
    )]
    Inconsistent,
    /// The socket's stream ended in a way the protocol does not allow (for example a reply
    /// sequence that stopped before its acknowledgement). Only a protocol violation: a
    /// caller's mistake is [`InvalidRequest`](Error::InvalidRequest), a consumer's own failure
    /// [`Callback`](Error::Callback).
    #[error("netlink protocol violation: {0}")]
    Unexpected(&'static str),
    /// The request cannot be sent as given (for example a dump request that is not exactly one
    /// finished message, or a field out of range); nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A callback (a dump's consumer, …) stopped the operation with an error of its own, for
    /// example because its output was closed. `Display` and `source()` are that error's;
    /// [`CallbackError::downcast_ref`] gets it back.
    #[error(transparent)]
    Callback(CallbackError),
    /// A helper thread of the operation panicked (a bug), so its part of the work is lost.
    #[error("{thread} thread panicked")]
    ThreadPanicked {
        /// Which thread (`"namespace helper"`, `"dump"`, …).
        thread: &'static str,
    },
    /// A network namespace could not be opened or entered.
    #[error("network namespace {path}: {errno}")]
    Netns {
        /// The namespace path (or `fd N`).
        path: String,
        /// The system error.
        errno: Errno,
    },
    /// A generic netlink family or multicast group is not known to the kernel.
    #[error("generic netlink: {0}")]
    Genl(String),
    /// [`Socket::connect_unix`](crate::Socket::connect_unix) could not connect.
    #[error("cannot connect to {path}: {errno}")]
    Connect {
        /// The socket path.
        path: String,
        /// The system error (`ENOENT`: nothing there; `ECONNREFUSED`: no one listening).
        errno: Errno,
    },
    /// [`Socket::connect_unix`](crate::Socket::connect_unix) connected, but the server
    /// listening there runs as another user (`SO_PEERCRED`): only a server of the caller's
    /// own effective uid or root is trusted, since anyone else could answer with forged data.
    #[error("refusing the server at {path}: it runs as uid {uid}, neither this user nor root")]
    UntrustedPeer {
        /// The socket path.
        path: String,
        /// The server's uid (as seen in the caller's user namespace).
        uid: u32,
    },
    /// The peer of a Unix-socket transport closed the connection (it stopped, or refused or
    /// dropped this client).
    #[error("the peer closed the connection")]
    PeerClosed,
    /// The operation exists only on kernel Netlink sockets, and this socket is connected over
    /// a Unix socket ([`SocketTransport::Unix`](crate::SocketTransport::Unix)).
    #[error("{op} needs a kernel netlink socket; this one is a Unix-socket transport")]
    NotNetlink {
        /// The operation (`"join_group"`, …).
        op: &'static str,
    },
}

impl Error {
    pub(crate) fn sys(op: &'static str, errno: Errno) -> Self {
        Error::Sys { op, errno }
    }

    /// The positive errno behind this error, if there is one.
    ///
    /// ```
    /// use nlkit_socket::Error;
    /// assert_eq!(Error::Inconsistent.errno(), None);
    /// ```
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { errno, .. }
            | Error::OptionRefused { errno, .. }
            | Error::Netns { errno, .. }
            | Error::Connect { errno, .. } => Some(errno.raw_os_error()),
            Error::UntrustedPeer { .. } => Some(libc::EACCES),
            Error::Kernel(k) => Some(k.errno),
            Error::ReplyLost { .. } => Some(libc::ENOBUFS),
            _ => None,
        }
    }

    /// The kernel error, when the kernel answered with one.
    pub fn kernel(&self) -> Option<&KernelError> {
        match self {
            Error::Kernel(k) => Some(k),
            _ => None,
        }
    }
}

impl Error {
    /// Wraps a consumer's own error in [`Error::Callback`], so that a callback returning this
    /// crate's [`Result`] can stop a dump with it.
    ///
    /// ```
    /// use nlkit_socket::Error;
    /// let e = Error::callback(std::io::Error::other("output closed"));
    /// assert_eq!(e.to_string(), "output closed");
    /// let Error::Callback(c) = &e else { unreachable!() };
    /// assert!(c.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn callback(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Callback(CallbackError(Arc::new(e)))
    }
}

/// A consumer's own error carried by [`Error::Callback`].
///
/// Shared (`Arc`), so that [`Error`](enum@Error) stays `Clone`; two values are equal when they
/// are clones of the same error. `Display` and `source()` are the wrapped error's.
#[derive(Clone)]
pub struct CallbackError(Arc<dyn std::error::Error + Send + Sync>);

impl CallbackError {
    /// The wrapped error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The wrapped error, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for CallbackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for CallbackError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CallbackError {}

impl From<KernelError> for Error {
    fn from(e: KernelError) -> Self {
        Error::Kernel(e)
    }
}

/// `Result` with this crate's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("parse failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_are_walkable() {
        let e = Error::from(WireError::Build("nest closed out of order"));
        assert_eq!(e.to_string(), "malformed message from the kernel");
        let wire = e.source().and_then(|s| s.downcast_ref::<WireError>());
        assert_eq!(wire, Some(&WireError::Build("nest closed out of order")));

        // A consumer's error: its own text, its own chain, and it can be taken back.
        let e = Error::callback(Outer(std::io::Error::other("inner")));
        assert_eq!(e.to_string(), "parse failed");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("inner"));
        let Error::Callback(c) = &e else {
            panic!("{e:?}")
        };
        assert!(c.downcast_ref::<Outer>().is_some());
        assert_eq!(e.clone(), e, "a clone is the same error");
        let other = Error::callback(Outer(std::io::Error::other("inner")));
        assert_ne!(
            other, e,
            "another error with the same text is not the same error"
        );

        // A kernel refusal prints the kernel's text once.
        let k = KernelError {
            errno: 17,
            msg: Some("Route exists".into()),
            ..Default::default()
        };
        let e = Error::from(k.clone());
        assert_eq!(e.to_string(), "Error: Route exists.");
        assert!(e.source().is_none());
        assert_eq!(e.kernel(), Some(&k));
        assert_eq!(
            Error::ThreadPanicked { thread: "dump" }.to_string(),
            "dump thread panicked"
        );
    }
}
