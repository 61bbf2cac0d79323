//! Error types.

use std::io;

use crate::registry::HandlerError;

/// A message on the channel broke the protocol (the peer is broken or not ours).
///
/// ```
/// use nlkit_worker::ProtocolError;
/// assert!(ProtocolError::BadMagic(0).to_string().contains("magic"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Fewer bytes than a header.
    #[error("message of {0} bytes is shorter than the header")]
    Short(usize),
    /// Wrong magic number.
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    /// Protocol version differs (binary version skew).
    #[error("protocol version {0} is not ours")]
    BadVersion(u16),
    /// Unknown message kind.
    #[error("unknown message kind {0}")]
    BadKind(u8),
    /// Length above the cap.
    #[error("length {0} exceeds the cap")]
    TooLong(usize),
    /// More descriptors than the cap.
    #[error("{0} descriptors exceed the cap")]
    TooManyFds(usize),
    /// Reserved header bits set.
    #[error("reserved header bits are set")]
    Reserved,
    /// The header's length differs from the bytes received.
    #[error("header says {header} payload bytes, {actual} arrived")]
    LengthMismatch {
        /// Claimed.
        header: usize,
        /// Received.
        actual: usize,
    },
    /// The header's descriptor count differs from the descriptors received.
    #[error("header says {header} descriptors, {actual} arrived")]
    FdMismatch {
        /// Claimed.
        header: usize,
        /// Received.
        actual: usize,
    },
    /// A message arrived out of order or of the wrong kind.
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// The kernel truncated a message or its descriptors (`MSG_TRUNC`/`MSG_CTRUNC`).
    #[error("message or control data truncated")]
    Truncated,
    /// The shared ring broke the frame protocol.
    #[error("the shared ring broke the frame protocol")]
    Ring(#[from] nlkit_ring::RingError),
    /// A payload that must be postcard failed to decode.
    #[error("payload decode: {0}")]
    Decode(String),
}

/// Errors of the worker channel: the one error type of this crate. Channel details are the
/// nested [`ProtocolError`] (the peer broke the protocol) and [`HandlerError`] (the handler's
/// own failure, as it crossed the process boundary); `source()` leads to the cause (the
/// protocol error, the ring's [`RingError`](nlkit_ring::RingError), the system error).
///
/// ```
/// use nlkit_worker::WorkerError;
/// let e = WorkerError::WorkerGone("worker exited (signal 9)".into());
/// assert!(e.is_worker_gone());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker died, hung up or was stopped; the request did not (or may not) complete.
    #[error("worker gone: {0}")]
    WorkerGone(String),
    /// The worker broke the protocol; it has been killed.
    #[error("worker protocol error")]
    Protocol(#[from] ProtocolError),
    /// The handler ran and returned an error (its errno, when it had one, and its message).
    #[error("handler failed: {0}")]
    Handler(HandlerError),
    /// No handler of that name in the worker.
    #[error("no worker handler named {0:?}")]
    UnknownHandler(String),
    /// The outbound queue reached its high-water mark: run the loop and retry.
    #[error("outbound queue full ({0} requests)")]
    Backpressure(usize),
    /// Payload or descriptor count above the protocol caps.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// Encoding or decoding a postcard payload failed.
    #[error("payload encoding failed")]
    Encoding(#[from] postcard::Error),
    /// A system call failed.
    #[error("worker channel I/O failed")]
    Io(#[from] io::Error),
}

impl WorkerError {
    /// Whether the worker is gone (died, hung up, killed after a protocol error).
    pub fn is_worker_gone(&self) -> bool {
        matches!(self, Self::WorkerGone(_) | Self::Protocol(_))
    }
}

/// A broken ring is the peer breaking the frame protocol.
impl From<nlkit_ring::RingError> for WorkerError {
    fn from(e: nlkit_ring::RingError) -> Self {
        Self::Protocol(ProtocolError::Ring(e))
    }
}

impl From<rustix::io::Errno> for WorkerError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn chains_are_walkable() {
        let ring = nlkit_ring::RingError::BadStatus {
            frame: 3,
            status: 9,
        };
        let e = WorkerError::from(ProtocolError::Ring(ring.clone()));
        assert!(e.is_worker_gone());
        let protocol = e.source().and_then(|s| s.downcast_ref::<ProtocolError>());
        assert_eq!(protocol, Some(&ProtocolError::Ring(ring.clone())));
        let cause = protocol.and_then(|p| p.source());
        assert_eq!(
            cause.and_then(|c| c.downcast_ref::<nlkit_ring::RingError>()),
            Some(&ring)
        );

        let e = WorkerError::from(rustix::io::Errno::PIPE);
        let io = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(io.and_then(io::Error::raw_os_error), Some(libc::EPIPE));

        let e = WorkerError::Handler(HandlerError::with_errno(libc::EEXIST, "exists"));
        assert_eq!(e.to_string(), "handler failed: exists");
        assert!(matches!(e, WorkerError::Handler(ref h) if h.errno == Some(libc::EEXIST)));
    }
}
