use thiserror::Error;

/// Why bytes could not be decoded (or a message could not be built).
///
/// Every parser in this crate returns this type instead of panicking: the one error type of
/// this layer. ([`KernelError`](crate::KernelError) is not a failure of this crate but the
/// kernel's answer, decoded; the socket layer returns it as `nlkit_socket::Error::Kernel`.)
///
/// ```
/// use nlkit_wire::{Messages, WireError};
/// let err = Messages::new(&[1, 2, 3]).next().unwrap().unwrap_err();
/// assert!(matches!(err, WireError::Truncated { what: "nlmsghdr", .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes remain than a fixed-size structure needs.
    #[error("truncated {what}: need {needed} bytes, have {available}")]
    Truncated {
        /// What was being read (`"nlmsghdr"`, `"rtmsg"`, …).
        what: &'static str,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// `nlmsg_len` is smaller than the header or runs past the buffer.
    #[error("bad nlmsg_len {len}: {available} bytes remain in the buffer")]
    MessageLength {
        /// The length field of the message.
        len: u32,
        /// Bytes remaining in the buffer at that message.
        available: usize,
    },
    /// `nla_len` is smaller than the attribute header or runs past its parent.
    #[error("bad length {len} for attribute type {ty}: {available} bytes remain in its parent")]
    AttrLength {
        /// The attribute type (flags masked off).
        ty: u16,
        /// The length field of the attribute.
        len: u16,
        /// Bytes remaining in the parent at that attribute.
        available: usize,
    },
    /// A typed getter found a payload of the wrong size.
    #[error("attribute type {ty}: payload of {len} bytes is not a valid {expected}")]
    AttrSize {
        /// The attribute type (flags masked off).
        ty: u16,
        /// What the getter expected (`"u32"`, `"IPv4 address"`, …).
        expected: &'static str,
        /// The payload length found.
        len: usize,
    },
    /// A string attribute has no terminating NUL or is not UTF-8.
    #[error("attribute type {ty}: {reason}")]
    BadString {
        /// The attribute type (flags masked off).
        ty: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The message is not of the type the decoder expects.
    #[error("expected message type {expected}, found {found}")]
    UnexpectedType {
        /// The expected `nlmsg_type`.
        expected: u16,
        /// The type found.
        found: u16,
    },
    /// A message being built would exceed a length field (64 KiB for an attribute, 4 GiB for a
    /// message), or a nest was closed out of order.
    #[error("message too large or malformed while building: {0}")]
    Build(&'static str),
}
