//! Sockets opened inside another network namespace.
//!
//! A Netlink socket belongs to the network namespace it was created in, for its whole life,
//! whichever thread later uses it. So to get a socket in namespace X, this module starts a
//! short-lived helper thread, moves that thread into X with `setns(fd, CLONE_NEWNET)` (which
//! only affects the calling thread), opens and binds the socket there, and lets the thread
//! exit. The calling thread and the rest of the process never change namespace.
//!
//! `setns` needs `CAP_SYS_ADMIN` over the target namespace's user namespace: root, or a
//! process inside the user namespace that owns it. Named namespaces live under
//! `/run/netns/NAME` (created by `ip netns add`, which needs real root).
//!
//! Creating a fresh private namespace for a child process (as the tests and `nlkit demo` do)
//! is not this module's job: that is `nlkit_testns::isolate`, which needs no socket code.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

use crate::options::{Protocol, SocketOptions};
use crate::{Error, Result, Socket};

/// Where named network namespaces are mounted.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`, …), close-on-exec.
///
/// ```no_run
/// let ns = nlkit_socket::netns::open_path("/proc/self/ns/net")?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn open_path(path: impl AsRef<Path>) -> Result<OwnedFd> {
    let path = path.as_ref();
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|errno| {
        Error::Netns {
            path: path.display().to_string(),
            errno,
        }
    })
}

/// Opens the named namespace `/run/netns/NAME`.
///
/// ```no_run
/// let ns = nlkit_socket::netns::open_named("blue")?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn open_named(name: &str) -> Result<OwnedFd> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Netns {
            path: name.to_owned(),
            errno: rustix::io::Errno::INVAL,
        });
    }
    open_path(Path::new(NETNS_RUN_DIR).join(name))
}

/// Runs `f` on a helper thread that has entered the network namespace `ns`, and returns its
/// result. The calling thread's namespace does not change.
///
/// ```no_run
/// use std::os::fd::AsFd;
/// let ns = nlkit_socket::netns::open_named("blue")?;
/// let n = nlkit_socket::netns::run_in(ns.as_fd(), || Ok(42))?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn run_in<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(ns, Some(LinkNameSpaceType::Network))
                .map_err(|errno| Error::Netns {
                    path: format!("fd {ns:?}"),
                    errno,
                })?;
            f()
        })
        .join()
        .unwrap_or(Err(Error::ThreadPanicked {
            thread: "namespace helper",
        }))
    })
}

/// Opens a socket of `protocol` inside the namespace `ns` (see the [module docs](self)).
///
/// ```no_run
/// use nlkit_socket::{netns, Protocol, SocketOptions};
/// let ns = netns::open_path("/proc/1/ns/net")?;
/// let sock = netns::open_socket(&ns, Protocol::Route, &SocketOptions::default())?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn open_socket(ns: impl AsFd, protocol: Protocol, opts: &SocketOptions) -> Result<Socket> {
    run_in(ns.as_fd(), || Socket::with_options(protocol, opts))
}

/// Opens a socket of `protocol` inside the named namespace `/run/netns/NAME`.
///
/// ```no_run
/// use nlkit_socket::{netns, Protocol, SocketOptions};
/// let sock = netns::open_socket_named("blue", Protocol::Route, &SocketOptions::default())?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn open_socket_named(name: &str, protocol: Protocol, opts: &SocketOptions) -> Result<Socket> {
    let ns = open_named(name)?;
    open_socket(&ns, protocol, opts)
}

/// Creates a new, unnamed network namespace and returns its namespace file; the namespace
/// lives as long as that descriptor (or anything else in it that holds it) stays open.
///
/// A helper thread unshares its network namespace and opens `/proc/thread-self/ns/net`;
/// the calling thread's namespace does not change. Needs `CAP_SYS_ADMIN` (root, or root
/// of a user namespace). Combine with [`open_socket`] to configure it, and with
/// `IFLA_NET_NS_FD` (`nlkit_route::ops::move_link_to_netns`) to move links into it.
///
/// ```no_run
/// let ns = nlkit_socket::netns::create()?;
/// let sock = nlkit_socket::netns::open_socket(&ns, nlkit_socket::Protocol::Route, &Default::default())?;
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn create() -> Result<OwnedFd> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: only CLONE_NEWNET, on a short-lived helper thread that exits right
            // after opening its namespace file: no other thread's namespace, file table or
            // filesystem state changes.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .map_err(|errno| Error::Netns {
                    path: "unshare(CLONE_NEWNET)".to_owned(),
                    errno,
                })?;
            open_path("/proc/thread-self/ns/net")
        })
        .join()
        .unwrap_or(Err(Error::ThreadPanicked {
            thread: "namespace helper",
        }))
    })
}
