//! Starting the worker: re-execute the running binary in worker mode.
//!
//! Why re-exec and not `fork()`: after `fork()` in a process that already runs threads, the
//! child may only call async-signal-safe functions until it `exec`s — any lock another thread
//! held (allocator, stdout, the tracing subscriber, a tokio runtime) stays held forever. A daemon
//! cannot promise it has no threads, so the child execs `/proc/self/exe` (the running inode, so
//! a package upgrade cannot swap the binary under us) with [`WORKER_ENV`] set. Between fork and
//! exec it only makes raw system calls: `dup2` of its socket end to fd [`WORKER_FD`],
//! `prctl(PR_SET_PDEATHSIG, SIGTERM)`, and a `getppid()` check for a parent that died before the
//! prctl. The new image starts with one thread and a clean heap, calls
//! [`maybe_run_worker`](crate::maybe_run_worker) at the top of `main`, and never returns to the
//! program's own `main`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Environment variable that puts a re-executed binary in worker mode; its value is the main
/// process's pid.
pub const WORKER_ENV: &str = "NLKIT_WORKER_PPID";

/// Marker argument shown in `ps` for worker processes.
pub const WORKER_ARG: &str = "--nlkit-internal-worker";

/// Descriptor number of the worker's end of the channel.
pub const WORKER_FD: i32 = 3;

/// Spawns `/proc/self/exe` in worker mode with `child_end` as fd [`WORKER_FD`].
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so call this from a
/// long-lived thread (normally the main thread).
pub(crate) fn spawn_worker_process(child_end: OwnedFd) -> io::Result<Child> {
    let parent = std::process::id();
    let raw = child_end.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(WORKER_ARG)
        .env(WORKER_ENV, parent.to_string())
        .stdin(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe raw system
    // calls (dup2, fcntl, prctl, getppid, _exit): no allocation, no locks, no environment access.
    unsafe {
        cmd.pre_exec(move || {
            if raw == WORKER_FD {
                // dup2 onto itself keeps FD_CLOEXEC; clear it so fd 3 survives the exec.
                if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw, WORKER_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then no signal will ever come.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(child_end);
    Ok(child)
}
