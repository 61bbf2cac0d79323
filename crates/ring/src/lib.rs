//! # nlkit-ring: the frame-ring protocol over a shared mapping
//!
//! A ring is a run of fixed-size frames. Each frame starts with the header memory-mapped netlink
//! used (`struct nl_mmap_hdr`: status, length, group, pid, uid, gid); the status word moves a
//! frame between the producer and the consumer:
//!
//! | status | meaning for the consumer |
//! |---|---|
//! | UNUSED, RESERVED | nothing ready: wait or return would-block |
//! | VALID | a message is in the frame (length 0: skip it) |
//! | COPY | the message is on the socket: read exactly one |
//! | SKIP | pass over this frame |
//!
//! Publishing is a Release store of the status after the body is written; reading is an Acquire
//! load before the body is read; releasing is a Release store of UNUSED after the reader is done.
//! Readers copy the header once and bound the length by the frame size before trusting it.
//!
//! The crate has three uses:
//! - the shared-memory transport between an nlkit main process and its worker
//!   (`nlkit-worker`, over a sealed memfd: [`MappedRegion`], [`MappedFrames`]);
//! - kernel rings where a kernel still offers them ([`request_kernel_rings`]; since Linux 4.6 the
//!   answer is always [`KernelRings::Fallback`]);
//! - in-process rings for tests and models ([`ring_pair`], [`HeapFrames`]).
//!
//! ```
//! use nlkit_ring::{ring_pair, FrameKind, FrameMeta, HeapFrames, RingError, RingRequest};
//! let (mut tx, mut rx) = ring_pair(HeapFrames::new(RingRequest::new(256, 4).unwrap()));
//! tx.try_send(b"hello", FrameMeta::default()).unwrap();
//! {
//!     let frame = rx.try_recv().unwrap();          // borrowed, zero-copy
//!     assert_eq!(frame.kind(), FrameKind::Valid);
//!     assert_eq!(frame.payload(), b"hello");
//! }                                                // released (UNUSED) here
//! assert!(matches!(rx.try_recv(), Err(RingError::WouldBlock)));
//! ```

#[cfg(not(loom))]
mod kernel;
mod layout;
#[cfg(not(loom))]
mod mapped;
mod ring;
mod store;
#[doc(hidden)]
pub mod sync;

#[cfg(not(loom))]
pub use kernel::{
    request_kernel_rings, KernelRings, NETLINK_RX_RING, NETLINK_TX_RING, SOL_NETLINK,
};
pub use layout::{
    page_size, FrameMeta, FrameStatus, RingRequest, FRAME_ALIGN, FRAME_HEADER_LEN, MAX_FRAMES,
    MAX_FRAME_SIZE,
};
#[cfg(not(loom))]
pub use mapped::{MappedFrames, MappedRegion};
pub use ring::{ring_pair, FrameKind, FrameWriter, ReceivedFrame, RingReceiver, RingSender};
pub use store::{FrameStore, HeapFrames};

/// Errors of the ring protocol.
///
/// ```
/// use nlkit_ring::RingError;
/// assert!(RingError::WouldBlock.is_would_block());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Nothing to receive, or no free frame to send into.
    #[error("ring would block")]
    WouldBlock,
    /// The message does not fit a frame: send it through the socket (COPY).
    #[error("message of {len} bytes exceeds the frame capacity of {capacity}")]
    TooLarge {
        /// Message length.
        len: usize,
        /// Frame capacity.
        capacity: usize,
    },
    /// The peer wrote a status word no protocol version defines.
    #[error("frame {frame}: unknown status word {status}")]
    BadStatus {
        /// Frame index.
        frame: u32,
        /// The raw status.
        status: u32,
    },
    /// The peer published a VALID frame longer than a frame can hold.
    #[error("frame {frame}: length {len} exceeds the frame capacity of {capacity}")]
    BadLength {
        /// Frame index.
        frame: u32,
        /// The claimed length.
        len: u32,
        /// Frame capacity.
        capacity: usize,
    },
    /// A ring request or placement is invalid.
    #[error("invalid ring request: {0}")]
    BadRequest(&'static str),
}

impl RingError {
    /// Whether this is [`RingError::WouldBlock`].
    pub fn is_would_block(&self) -> bool {
        matches!(self, Self::WouldBlock)
    }

    /// Whether the peer broke the protocol (the ring is stopped at the bad frame).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::BadStatus { .. } | Self::BadLength { .. })
    }
}
