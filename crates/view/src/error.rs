//! [`ViewError`]: everything that can go wrong opening or reading a [`MirrorView`](crate::MirrorView).

use crate::TableId;

/// An error of the view: handing the region over, mapping it, or reading it.
///
/// Reading a mapping never panics, whatever its bytes: what a reader cannot make sense of is
/// [`ViewError::Shm`] (the shared-memory layer's validation) or [`ViewError::BadRecord`].
/// Errors chain with [`source`](std::error::Error::source).
///
/// ```
/// use nlkit_view::ViewError;
/// let e = ViewError::ResyncRequired { asked: 3, oldest: 90 };
/// assert!(e.to_string().contains("resync"));
/// assert!(ViewError::Refused { errno: libc::EPERM }.is_permission_denied());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Connecting to the mirror's socket, or talking on it, failed (this includes a server
    /// of another uid than ours or root: `nlkit_socket::Error::UntrustedPeer`).
    #[error("mirror socket")]
    Socket(#[from] nlkit_socket::Error),
    /// The mirror refused to hand the region over (`EPERM`: another uid than the mirror's
    /// and not root; `EOPNOTSUPP` or `EINVAL`: a mirror without a shared region).
    #[error("the mirror refused to hand over its region: {}", rustix::io::Errno::from_raw_os_error(*errno))]
    Refused {
        /// The errno of the mirror's `NLMSG_ERROR`.
        errno: i32,
    },
    /// The answer to `MSG_MAP` was not what the protocol says (wrong type, sequence, size,
    /// or no fd).
    #[error("unexpected answer to the map request: {0}")]
    Handover(&'static str),
    /// The mirror's region has a layout version this client does not read.
    #[error("region layout version {found}, this client reads version {expected}")]
    Version {
        /// What the mirror announced.
        found: u32,
        /// [`MAP_VERSION`](crate::schema::MAP_VERSION).
        expected: u32,
    },
    /// Mapping or reading the shared memory failed (seals, bounds, validation, contention).
    #[error("shared memory")]
    Shm(#[from] nlkit_shm::ShmError),
    /// The mirror publishes no such table (e.g. conntrack on a mirror started without it).
    #[error("the mirror publishes no {} table", .0.name())]
    NoTable(TableId),
    /// A walk asked for a family the mirror keeps no table of (only `AF_INET` and
    /// `AF_INET6`).
    #[error("no table of address family {0}")]
    Family(u8),
    /// The mirror publishes no change feed.
    #[error("the mirror publishes no change feed")]
    NoFeed,
    /// A record whose bytes are not the messages they should be.
    #[error("malformed record in table {}", .0.name())]
    BadRecord(TableId),
    /// A feed follower fell behind: the entries it asked for were overwritten. Read the
    /// tables again (a walk), then follow from now ([`MirrorView::follow_now`](crate::MirrorView::follow_now)).
    #[error("feed overrun: resync required (position {asked}, oldest kept {oldest})")]
    ResyncRequired {
        /// The position asked for.
        asked: u64,
        /// The oldest position the ring still holds.
        oldest: u64,
    },
}

impl ViewError {
    /// Whether the mirror refused the region because of who we are (`EPERM`): a client may
    /// then fall back to the socket protocol, which the mirror answers for any client it
    /// accepts.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, ViewError::Refused { errno } if *errno == libc::EPERM || *errno == libc::EACCES)
    }

    /// The error the shared-memory layer gave, if this is one.
    pub(crate) fn shm(e: nlkit_shm::ShmError) -> Self {
        match e {
            nlkit_shm::ShmError::Overrun { asked, oldest } => {
                ViewError::ResyncRequired { asked, oldest }
            }
            e => ViewError::Shm(e),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = ViewError> = std::result::Result<T, E>;
