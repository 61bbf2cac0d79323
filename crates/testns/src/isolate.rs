//! Private namespaces for child processes: [`isolate()`] a [`Command`] so that it starts in a
//! fresh network namespace (and, unless real root, a fresh user namespace in which it is root).
//!
//! Used by the test harness ([`netns_test!`](crate::netns_test)) and by the command line's
//! sandboxes (`nlkit demo`, `nlkit bench`). It depends on nothing but raw system calls, so the
//! fixtures and the harness stay independent of the socket code they test.
//!
//! Why in the child: `unshare(CLONE_NEWUSER)` fails with `EINVAL` in a multithreaded process
//! (and the test harness runs tests on threads). The child unshares between `fork` and `exec`,
//! where it is single-threaded, making only raw system calls on buffers prepared before the
//! fork.

use std::ffi::CString;
use std::process::Command;

/// True when this process is real root: uid 0 in the initial user namespace, so it may create
/// a network namespace without a user namespace of its own.
///
/// The initial user namespace is recognised by its `uid_map`, which maps all 4294967295 ids.
/// Inside a test's namespace as an ordinary user this is false (the map holds one id).
///
/// ```
/// if nlkit_testns::is_root() {
///     println!("real root: a bare CLONE_NEWNET is enough");
/// }
/// ```
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().nth(2) == Some("4294967295"))
            .unwrap_or(false)
}

/// Everything the child needs between `fork` and `exec`, prepared before the fork.
///
/// Immutable after [`PrivateNamespace::new`]; the child only reads it.
struct PrivateNamespace {
    /// Also unshare a user namespace (and write the id maps below).
    user_ns: bool,
    /// `(path, contents)` written in order once inside the new user namespace: `setgroups`
    /// must be denied before an unprivileged process may write `gid_map`.
    files: [(CString, Vec<u8>); 3],
}

impl PrivateNamespace {
    fn new(user_ns: bool) -> Self {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let path = |p: &str| CString::new(p).expect("static path without NUL");
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
/// Spawning fails (`cmd.spawn()`, `output()`, `status()` return the error) when the kernel
/// refuses the namespaces, e.g. with unprivileged user namespaces disabled.
///
/// ```no_run
/// let mut cmd = std::process::Command::new("ip");
/// cmd.args(["link", "show"]);
/// nlkit_testns::isolate(&mut cmd, false);
/// let out = cmd.output()?; // only `lo`, down
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn isolate(cmd: &mut Command, user_ns: bool) {
    use std::os::unix::process::CommandExt;
    let setup = PrivateNamespace::new(user_ns || !is_root());
    // SAFETY: the hook performs only raw system calls on data prepared before the fork
    // (async-signal-safe); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || setup.enter());
    }
}
