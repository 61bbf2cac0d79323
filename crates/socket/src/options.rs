//! Protocols and socket options.

use std::os::fd::{AsFd, AsRawFd};

use nlkit_wire::consts::{
    NETLINK_ADD_MEMBERSHIP, NETLINK_BROADCAST_ERROR, NETLINK_CAP_ACK, NETLINK_DROP_MEMBERSHIP,
    NETLINK_EXT_ACK, NETLINK_GENERIC, NETLINK_GET_STRICT_CHK, NETLINK_LISTEN_ALL_NSID,
    NETLINK_NETFILTER, NETLINK_NO_ENOBUFS, NETLINK_ROUTE, SOL_NETLINK,
};
use rustix::io::Errno;

use crate::{Error, Result};

/// A Netlink protocol (the third argument of `socket(AF_NETLINK, SOCK_RAW, protocol)`).
///
/// ```
/// use nlkit_socket::Protocol;
/// assert_eq!(Protocol::Route.raw(), 0);
/// assert_eq!(Protocol::Netfilter.raw(), 12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `NETLINK_ROUTE`: links, addresses, routes, neighbours (rtnetlink).
    Route,
    /// `NETLINK_NETFILTER`: conntrack and other nfnetlink subsystems.
    Netfilter,
    /// `NETLINK_GENERIC`: generic netlink families.
    Generic,
}

impl Protocol {
    /// The protocol number.
    pub fn raw(self) -> i32 {
        match self {
            Protocol::Route => NETLINK_ROUTE,
            Protocol::Netfilter => NETLINK_NETFILTER,
            Protocol::Generic => NETLINK_GENERIC,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Protocol::Route => 0,
            Protocol::Netfilter => 1,
            Protocol::Generic => 2,
        }
    }
}

/// Options applied when a socket is opened.
///
/// The defaults suit request sockets: a 4 MiB receive buffer (what Open vSwitch asks for),
/// extended acks, capped acks, and strict checking on route sockets (without it the kernel
/// silently ignores dump filters). `strict` is off: an option the kernel refuses is logged
/// and reported in [`Socket::applied`](crate::Socket::applied); with `strict` on, opening
/// fails with [`Error::OptionRefused`] or [`Error::RcvbufRefused`] instead.
///
/// ```
/// use nlkit_socket::SocketOptions;
/// let opts = SocketOptions { strict: true, rcvbuf: 1 << 20, ..SocketOptions::default() };
/// assert!(opts.ext_ack && opts.cap_ack);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// Receive buffer size to ask for. `SO_RCVBUFFORCE` is tried first (needs
    /// `CAP_NET_ADMIN`), then `SO_RCVBUF` (capped by `net.core.rmem_max`). 0 leaves the default.
    pub rcvbuf: usize,
    /// `NETLINK_EXT_ACK`: error and ack messages carry the kernel's explanation.
    pub ext_ack: bool,
    /// `NETLINK_CAP_ACK`: acks do not echo the request payload.
    pub cap_ack: bool,
    /// `NETLINK_GET_STRICT_CHK` (route sockets only; ignored on others): strict validation of
    /// GET and dump requests, and kernel-side dump filtering.
    pub strict_check: bool,
    /// `NETLINK_NO_ENOBUFS`: do not report receive-queue overflow (events are still lost).
    pub no_enobufs: bool,
    /// `NETLINK_BROADCAST_ERROR`: make the sender of a broadcast see delivery failures
    /// (reliable ctnetlink events).
    pub broadcast_error: bool,
    /// `NETLINK_LISTEN_ALL_NSID`: receive notifications from every peer namespace that has an
    /// id, with that id in a control message.
    pub listen_all_nsid: bool,
    /// Fail instead of continuing when the kernel refuses an option or grants a smaller
    /// receive buffer than asked for.
    pub strict: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            rcvbuf: 4 << 20,
            ext_ack: true,
            cap_ack: true,
            strict_check: true,
            no_enobufs: false,
            broadcast_error: false,
            listen_all_nsid: false,
            strict: false,
        }
    }
}

/// What the kernel actually applied when a socket was opened.
///
/// ```
/// let a = nlkit_socket::AppliedOptions::default();
/// assert!(a.refused.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedOptions {
    /// The receive buffer the kernel granted (`SO_RCVBUF` as read back, which the kernel
    /// reports doubled to account for bookkeeping overhead).
    pub rcvbuf: usize,
    /// Whether `SO_RCVBUFFORCE` was permitted.
    pub rcvbuf_forced: bool,
    /// Options the kernel refused, with its answer (empty in strict mode: refusal fails).
    pub refused: Vec<(&'static str, Errno)>,
}

/// Sets an integer option at `SOL_NETLINK`. rustix has no Netlink-level options, so this is the
/// one place that calls `setsockopt` directly.
pub(crate) fn set_netlink_opt<Fd: AsFd>(fd: Fd, opt: i32, value: i32) -> Result<(), Errno> {
    // SAFETY: `fd` is a live descriptor borrowed for the call; the option value points at a
    // local `c_int` whose size is passed as the option length; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            SOL_NETLINK,
            opt,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    }
}

/// Sets the receive buffer to `bytes` (`SO_RCVBUFFORCE` first, then `SO_RCVBUF`) and returns
/// what the kernel granted.
pub(crate) fn set_rcvbuf<Fd: AsFd>(fd: Fd, bytes: usize) -> Result<usize> {
    let fd = fd.as_fd();
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(fd, bytes).is_err() {
        rustix::net::sockopt::set_socket_recv_buffer_size(fd, bytes)
            .map_err(|e| Error::sys("setsockopt(SO_RCVBUF)", e))?;
    }
    rustix::net::sockopt::socket_recv_buffer_size(fd)
        .map_err(|e| Error::sys("getsockopt(SO_RCVBUF)", e))
}

/// Applies `opts` to a freshly opened socket of `protocol`.
pub(crate) fn apply<Fd: AsFd>(
    fd: Fd,
    protocol: Protocol,
    opts: &SocketOptions,
) -> Result<AppliedOptions> {
    let fd = fd.as_fd();
    let mut applied = AppliedOptions::default();
    if opts.rcvbuf > 0 {
        match rustix::net::sockopt::set_socket_recv_buffer_size_force(fd, opts.rcvbuf) {
            Ok(()) => applied.rcvbuf_forced = true,
            Err(_) => {
                if let Err(e) = rustix::net::sockopt::set_socket_recv_buffer_size(fd, opts.rcvbuf) {
                    refuse(&mut applied, opts.strict, "SO_RCVBUF", e)?;
                }
            }
        }
    }
    applied.rcvbuf = rustix::net::sockopt::socket_recv_buffer_size(fd)
        .map_err(|e| Error::sys("getsockopt(SO_RCVBUF)", e))?;
    // The kernel doubles the value it stores; anything below what was asked is a refusal.
    if opts.strict && opts.rcvbuf > 0 && applied.rcvbuf < opts.rcvbuf {
        return Err(Error::RcvbufRefused {
            requested: opts.rcvbuf,
            granted: applied.rcvbuf,
        });
    }
    let flags = [
        (opts.ext_ack, NETLINK_EXT_ACK, "NETLINK_EXT_ACK"),
        (opts.cap_ack, NETLINK_CAP_ACK, "NETLINK_CAP_ACK"),
        (
            opts.strict_check && protocol == Protocol::Route,
            NETLINK_GET_STRICT_CHK,
            "NETLINK_GET_STRICT_CHK",
        ),
        (opts.no_enobufs, NETLINK_NO_ENOBUFS, "NETLINK_NO_ENOBUFS"),
        (
            opts.broadcast_error,
            NETLINK_BROADCAST_ERROR,
            "NETLINK_BROADCAST_ERROR",
        ),
        (
            opts.listen_all_nsid,
            NETLINK_LISTEN_ALL_NSID,
            "NETLINK_LISTEN_ALL_NSID",
        ),
    ];
    for (on, opt, name) in flags {
        if on {
            if let Err(e) = set_netlink_opt(fd, opt, 1) {
                refuse(&mut applied, opts.strict, name, e)?;
            }
        }
    }
    Ok(applied)
}

fn refuse(
    applied: &mut AppliedOptions,
    strict: bool,
    option: &'static str,
    errno: Errno,
) -> Result<()> {
    if strict {
        return Err(Error::OptionRefused { option, errno });
    }
    tracing::warn!(option, %errno, "kernel refused netlink socket option");
    applied.refused.push((option, errno));
    Ok(())
}

/// Joins (`true`) or leaves (`false`) multicast group `group`.
pub(crate) fn membership<Fd: AsFd>(fd: Fd, group: u32, join: bool) -> Result<()> {
    let opt = if join {
        NETLINK_ADD_MEMBERSHIP
    } else {
        NETLINK_DROP_MEMBERSHIP
    };
    let op = if join {
        "NETLINK_ADD_MEMBERSHIP"
    } else {
        "NETLINK_DROP_MEMBERSHIP"
    };
    let group = i32::try_from(group).map_err(|_| Error::sys(op, Errno::INVAL))?;
    set_netlink_opt(fd, opt, group).map_err(|e| Error::sys(op, e))
}
