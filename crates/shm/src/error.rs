//! [`ShmError`]: everything that can go wrong with a shared region, on either side.

/// An error of the shared-memory layer.
///
/// A reader gets one of these for *any* bytes it finds in a mapping (a lying header, an offset
/// out of bounds, a record that keeps changing); it never panics.
///
/// ```
/// let e = nlkit_shm::ShmError::OutOfBounds { off: 64, len: 8, mapped: 32 };
/// assert!(e.to_string().contains("out of bounds"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call failed (memfd, ftruncate, mmap, fcntl, fstat, futex).
    #[error("{op}: {source}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The errno.
        #[source]
        source: rustix::io::Errno,
    },
    /// An access outside the mapped, validated length.
    #[error("access out of bounds: offset {off}, {len} bytes, {mapped} bytes mapped")]
    OutOfBounds {
        /// Byte offset asked for.
        off: u64,
        /// Bytes asked for.
        len: u64,
        /// Bytes readable.
        mapped: u64,
    },
    /// An offset that is not 8-byte aligned.
    #[error("misaligned offset {0}")]
    Misaligned(u64),
    /// A header or record that cannot be what it claims (bad magic, version, sizes).
    #[error("corrupt shared memory: {0}")]
    Corrupt(&'static str),
    /// The region does not carry the seals a reader needs (it could shrink, or be written by
    /// a mapping other than the owner's).
    #[error("region is not sealed (seals {0:#x})")]
    NotSealed(i32),
    /// No object with this id in the region's directory.
    #[error("no object {0:#x} in the region")]
    NotFound(u64),
    /// A read kept racing with the writer and gave up (the caller may retry).
    #[error("entry kept changing while it was read")]
    Contended,
    /// The region, a table or the heap is full.
    #[error("full: {0}")]
    Full(&'static str),
    /// A record larger than the heap's largest block.
    #[error("record of {0} bytes is too large")]
    TooLarge(usize),
    /// A feed reader fell behind and the entries it asked for were overwritten.
    #[error("feed overrun: position {asked} is older than the oldest kept, {oldest}")]
    Overrun {
        /// The position asked for.
        asked: u64,
        /// The oldest position still in the ring.
        oldest: u64,
    },
}

impl ShmError {
    #[allow(dead_code)] // skeleton
    pub(crate) fn os(op: &'static str, source: rustix::io::Errno) -> Self {
        ShmError::Os { op, source }
    }
}
