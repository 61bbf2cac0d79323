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
        .unwrap_or(Err(Error::Unexpected("namespace helper thread panicked")))
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

/// True when this process is root in the initial user namespace (real root: it may create
/// network namespaces without a user namespace of its own).
///
/// ```
/// let _ = nlkit_socket::netns::is_initial_root();
/// ```
pub fn is_initial_root() -> bool {
    rustix::process::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().nth(2) == Some("4294967295"))
            .unwrap_or(false)
}

/// Everything the child needs between `fork` and `exec`, prepared before the fork.
struct PrivateNamespace {
    user_ns: bool,
    files: [(std::ffi::CString, Vec<u8>); 3],
}

impl PrivateNamespace {
    fn new(user_ns: bool) -> Self {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let path = |p: &str| std::ffi::CString::new(p).expect("static path");
        PrivateNamespace {
            user_ns,
            files: [
                (path("/proc/self/setgroups"), b"deny".to_vec()),
                (
                    path("/proc/self/uid_map"),
                    format!("0 {uid} 1\n").into_bytes(),
                ),
                (
                    path("/proc/self/gid_map"),
                    format!("0 {gid} 1\n").into_bytes(),
                ),
            ],
        }
    }

    /// Runs in the child between fork and exec: raw system calls only (async-signal-safe).
    fn enter(&self) -> std::io::Result<()> {
        let flags = if self.user_ns {
            libc::CLONE_NEWUSER | libc::CLONE_NEWNET
        } else {
            libc::CLONE_NEWNET
        };
        // SAFETY: unshare takes no pointers; after fork the child is single-threaded.
        if unsafe { libc::unshare(flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if self.user_ns {
            for (path, data) in &self.files {
                // SAFETY: `path` is NUL-terminated and outlives the call.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: `data` is valid for its length; `fd` was just opened.
                let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
                // SAFETY: `fd` is owned here and closed exactly once.
                unsafe { libc::close(fd) };
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Makes `cmd` start in a fresh network namespace of its own: with only `CLONE_NEWNET` when
/// this process is real root and `user_ns` is false, otherwise inside a new user namespace
/// too, in which the child is mapped to root (so an ordinary user gets a namespace it can
/// configure). The namespace, with every link, route and conntrack entry in it, disappears
/// when the child exits.
///
/// Why in the child: `unshare(CLONE_NEWUSER)` fails with `EINVAL` in a multithreaded process.
/// The child unshares between `fork` and `exec`, where it is single-threaded, making only raw
/// system calls on buffers prepared before the fork.
///
/// ```no_run
/// let mut cmd = std::process::Command::new("ip");
/// cmd.args(["link", "show"]);
/// nlkit_socket::netns::isolate(&mut cmd, false);
/// let out = cmd.output()?; // only `lo`, down
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn isolate(cmd: &mut std::process::Command, user_ns: bool) {
    use std::os::unix::process::CommandExt;
    let setup = PrivateNamespace::new(user_ns || !is_initial_root());
    // SAFETY: the hook performs only raw system calls on data prepared before the fork
    // (async-signal-safe); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || setup.enter());
    }
}
