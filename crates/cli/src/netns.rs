//! Network namespaces for the command line: `--netns NAME` (enter a named namespace, as
//! `ip -n` does) and the private namespace `nlkit demo` and `nlkit bench` run in.
//!
//! The private namespace is a re-execution of `nlkit` itself: the child unshares a network
//! namespace (and a user namespace when not root, in which it maps itself to root) between
//! `fork` and `exec`, where it is single-threaded — `unshare(CLONE_NEWUSER)` fails in a
//! multithreaded process. When the child exits, for any reason including Ctrl-C, the kernel
//! destroys the namespace with every link, route and conntrack entry in it: cleanup cannot be
//! forgotten.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};

use anyhow::Context;

/// Set in the re-executed child so that it knows it already is in its private namespace.
pub const PRIVATE_ENV: &str = "NLKIT_PRIVATE_NETNS";

/// Moves this process into the named network namespace `/run/netns/NAME`.
///
/// Called first thing in `main`, before any thread exists, so every later thread inherits it.
pub fn enter_named(name: &str) -> anyhow::Result<()> {
    if name.contains('/') {
        anyhow::bail!("invalid namespace name \"{name}\"");
    }
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path)
        .with_context(|| format!("cannot open network namespace \"{name}\" ({path})"))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&f),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .with_context(|| format!("cannot enter network namespace \"{name}\""))?;
    Ok(())
}

/// True when this process was started by [`run_private`].
pub fn in_private() -> bool {
    std::env::var_os(PRIVATE_ENV).is_some()
}

/// True when running as real root (uid 0 in the initial user namespace).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().nth(2) == Some("4294967295"))
            .unwrap_or(false)
}

/// Re-executes this program with the same arguments in a fresh private network namespace and
/// waits for it. Ctrl-C reaches the child too (same process group); the namespace dies with it.
pub fn run_private() -> anyhow::Result<ExitStatus> {
    let exe = std::env::current_exe().context("cannot find own executable")?;
    let setup = Setup::new();
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(PRIVATE_ENV, "1");
    // SAFETY: the hook performs only raw system calls on buffers prepared before the fork
    // (async-signal-safe); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || setup.enter());
    }
    // Ctrl-C: the child handles it and exits; the parent only waits.
    let status = cmd
        .status()
        .context("cannot start a private network namespace")?;
    Ok(status)
}

struct Setup {
    user_ns: bool,
    files: [(CString, Vec<u8>); 3],
}

impl Setup {
    fn new() -> Self {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let c = |s: &str| CString::new(s).expect("static path");
        Setup {
            user_ns: !is_root(),
            files: [
                (c("/proc/self/setgroups"), b"deny".to_vec()),
                (c("/proc/self/uid_map"), format!("0 {uid} 1\n").into_bytes()),
                (c("/proc/self/gid_map"), format!("0 {gid} 1\n").into_bytes()),
            ],
        }
    }

    fn enter(&self) -> std::io::Result<()> {
        let flags = if self.user_ns {
            libc::CLONE_NEWUSER | libc::CLONE_NEWNET
        } else {
            libc::CLONE_NEWNET
        };
        // SAFETY: unshare takes no pointers; after fork this process is single-threaded.
        if unsafe { libc::unshare(flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if self.user_ns {
            for (path, data) in &self.files {
                write_all(path, data)?;
            }
        }
        Ok(())
    }
}

fn write_all(path: &CString, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `data` is valid for its length; `fd` was just opened.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    // SAFETY: `fd` is closed exactly once.
    unsafe { libc::close(fd) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `body` in a private network namespace: directly when this process already is the
/// re-executed child, otherwise by re-executing `nlkit` with the same arguments in a new
/// namespace and exiting with the child's status.
pub fn private(body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if in_private() {
        return body();
    }
    let status = run_private()?;
    std::process::exit(status.code().unwrap_or(1));
}
