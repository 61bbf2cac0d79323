//! Asking a netlink socket for kernel rings (`NETLINK_RX_RING`/`NETLINK_TX_RING`).
//!
//! Linux removed memory-mapped netlink in 4.6 (d1b4c689d413); every kernel since answers
//! `ENOPROTOOPT`. [`request_kernel_rings`] then logs once and returns
//! [`KernelRings::Fallback`]: the caller keeps using ordinary `send`/`recv`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::{MappedFrames, MappedRegion, RingReceiver, RingRequest, RingSender};

/// The socket option level and names, from the one table of kernel constants.
pub use nlkit_wire::consts::{NETLINK_RX_RING, NETLINK_TX_RING, SOL_NETLINK};

static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// What the kernel granted.
#[derive(Debug)]
pub enum KernelRings {
    /// The kernel shares rings: receive from `rx`; after filling `tx` frames, kick the kernel
    /// with an empty `sendto`.
    Mapped {
        /// Kernel-to-user ring.
        rx: RingReceiver<MappedFrames>,
        /// User-to-kernel ring.
        tx: RingSender<MappedFrames>,
    },
    /// No rings (the kernel answered `ENOPROTOOPT`): use ordinary send/receive.
    Fallback,
}

impl KernelRings {
    /// Whether the kernel refused and the caller should use send/receive.
    pub fn is_fallback(&self) -> bool {
        matches!(self, Self::Fallback)
    }
}

fn set_ring(fd: BorrowedFd<'_>, option: i32, req: &RingRequest) -> io::Result<()> {
    // `rustix` has no setter for these removed options, so this is the raw call.
    // SAFETY: `req` is a live `#[repr(C)]` struct of four `u32`s, exactly `struct nl_mmap_req`,
    // and the length passed is its size; `fd` is a valid borrowed descriptor.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_NETLINK,
            option,
            (req as *const RingRequest).cast(),
            std::mem::size_of::<RingRequest>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks netlink socket `fd` for an RX and a TX ring of geometry `req`, and maps them.
///
/// Returns [`KernelRings::Fallback`] (logging once per process at `info`) when the kernel
/// answers `ENOPROTOOPT`; other errors are returned.
///
/// ```
/// use std::os::fd::AsFd;
/// use nlkit_ring::{request_kernel_rings, RingRequest};
/// use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
/// // Protocol 0 is NETLINK_ROUTE; opening the socket changes no network state.
/// let sock = socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)
///     .unwrap();
/// let rings = request_kernel_rings(sock.as_fd(), RingRequest::new(16384, 64).unwrap()).unwrap();
/// assert!(rings.is_fallback()); // every kernel since 4.6
/// ```
pub fn request_kernel_rings(fd: BorrowedFd<'_>, req: RingRequest) -> io::Result<KernelRings> {
    req.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let refused = |e: &io::Error| e.raw_os_error() == Some(libc::ENOPROTOOPT);
    for option in [NETLINK_RX_RING, NETLINK_TX_RING] {
        if let Err(e) = set_ring(fd, option, &req) {
            if refused(&e) {
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "memory-mapped netlink is not offered by this kernel; using send/recv"
                    );
                }
                return Ok(KernelRings::Fallback);
            }
            return Err(e);
        }
    }
    let ring = req.ring_bytes();
    let region = Arc::new(MappedRegion::map_shared(fd, 2 * ring, false)?);
    let bad = |e: crate::RingError| io::Error::new(io::ErrorKind::InvalidData, e);
    let rx = MappedFrames::new(region.clone(), 0, req).map_err(bad)?;
    let tx = MappedFrames::new(region, ring, req).map_err(bad)?;
    // SAFETY: the kernel is the only peer of these rings and follows the frame protocol; this
    // process creates exactly one receiver and one sender for them, here.
    let (rx, tx) = unsafe { (RingReceiver::new(rx), RingSender::new(tx)) };
    Ok(KernelRings::Mapped { rx, tx })
}
