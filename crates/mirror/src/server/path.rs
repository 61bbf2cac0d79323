//! Claiming the socket path: a directory nobody else can write, a lock held for the mirror's
//! life, a live-mirror probe, and removal of only the socket this mirror bound.
//!
//! Order (see [`PathClaim::acquire`] and [`PathClaim::bind`]):
//! 1. the socket's directory is created 0700, or an existing one must be a real directory
//!    (not a symlink) owned by the mirror's effective uid (or root) and not writable by group
//!    or others — otherwise another user could replace the socket with their own server;
//! 2. `<socket>.lock` in it is locked with `flock(LOCK_EX | LOCK_NB)` for the mirror's life: a
//!    second mirror on the path stops there ([`PathError::AlreadyRunning`]);
//! 3. an existing socket file is probed with a connect (when the lock is taken, and again at
//!    bind time): a live server (a mirror without the lock, such as an older version) is left
//!    alone, a dead one is removed;
//! 4. the socket is created 0600 (the mode is set on the socket before `bind`, so it is never
//!    more open) and its inode recorded; at shutdown the path is removed only if it is still
//!    that inode, then the lock file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation, Mode};
use rustix::io::Errno;
use rustix::net::{
    bind, listen, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType,
};

/// What is wrong with an existing socket directory.
///
/// ```
/// use nlkit_mirror::DirProblem;
/// assert_eq!(DirProblem::Writable { mode: 0o777 }.to_string(),
///            "mode 0777 lets group or others write it");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirProblem {
    /// It is a symbolic link (it could be pointed elsewhere).
    #[error("it is a symbolic link")]
    Symlink,
    /// It is not a directory.
    #[error("it is not a directory")]
    NotADirectory,
    /// It is owned by another user.
    #[error("it is owned by uid {owner}, not by this user (uid {me}) or root")]
    Owner {
        /// The directory's owner.
        owner: u32,
        /// The mirror's effective uid.
        me: u32,
    },
    /// Group or others may write it (create, rename or delete entries in it).
    #[error("mode {mode:04o} lets group or others write it")]
    Writable {
        /// The directory's permission bits.
        mode: u32,
    },
}

/// Why the socket path could not be claimed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PathError {
    #[error("unsafe socket directory {dir}: {problem}")]
    UnsafeDir { dir: PathBuf, problem: DirProblem },
    #[error("another mirror is serving on {0}")]
    AlreadyRunning(PathBuf),
    #[error("mirror socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PathError + '_ {
    move |source| PathError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The socket path, claimed: the lock is held until [`release`](PathClaim::release) or drop.
#[derive(Debug)]
pub(crate) struct PathClaim {
    path: PathBuf,
    lock_path: PathBuf,
    /// Holds the `flock`; closing it releases the lock.
    lock: Option<File>,
    /// `(st_dev, st_ino)` of the socket this mirror bound.
    bound: Option<(u64, u64)>,
}

impl PathClaim {
    /// Secures the directory and takes the lock (steps 1 and 2).
    pub(crate) fn acquire(path: &Path) -> Result<PathClaim, PathError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        secure_dir(&dir)?;
        let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
        lock_name.push(".lock");
        let lock_path = dir.join(lock_name);
        let lock = lock_file(&lock_path, path)?;
        let claim = PathClaim {
            path: path.to_path_buf(),
            lock_path,
            lock: Some(lock),
            bound: None,
        };
        // A live server without the lock (its lock file removed, or an older mirror): fail
        // now rather than after the initial sync (dropping the claim removes our lock file).
        if is_live(path) {
            return Err(PathError::AlreadyRunning(path.to_path_buf()));
        }
        Ok(claim)
    }

    /// Probes and replaces a stale socket, binds, sets 0600 and listens (steps 3 and 4).
    pub(crate) fn bind(&mut self) -> Result<OwnedFd, PathError> {
        let path = self.path.clone();
        let at = || io_at(&path);
        if let Ok(md) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if !md.file_type().is_socket() {
                return Err(at()(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                )));
            }
            if is_live(&path) {
                return Err(PathError::AlreadyRunning(path));
            }
            tracing::info!(socket = %path.display(), "removing a stale mirror socket");
            std::fs::remove_file(&path).map_err(at())?;
        }
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(|e| at()(e.into()))?;
        // The file's mode at bind is the socket inode's mode less the umask: 0600 from the
        // start, never briefly wider.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(|e| at()(e.into()))?;
        let addr = SocketAddrUnix::new(path.as_path()).map_err(|e| at()(e.into()))?;
        bind(&fd, &addr).map_err(|e| at()(e.into()))?;
        let md = std::fs::symlink_metadata(&path).map_err(at())?;
        self.bound = Some((md.dev(), md.ino()));
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(at())?;
        listen(&fd, 128).map_err(|e| at()(e.into()))?;
        Ok(fd)
    }

    /// Removes the socket (only if the path is still the one this mirror bound) and the lock
    /// file, then releases the lock. Idempotent.
    pub(crate) fn release(&mut self) {
        let Some(lock) = self.lock.take() else { return };
        if let Some((dev, ino)) = self.bound.take() {
            match std::fs::symlink_metadata(&self.path) {
                Ok(md) if md.dev() == dev && md.ino() == ino => {
                    let _ = std::fs::remove_file(&self.path);
                }
                Ok(_) => tracing::warn!(
                    socket = %self.path.display(),
                    "the socket path was replaced; leaving it"
                ),
                Err(_) => {}
            }
        }
        // Unlinked while still locked: a mirror that opened it meanwhile sees, once it gets
        // the lock, that the path no longer names its file and starts over (`lock_file`).
        let _ = std::fs::remove_file(&self.lock_path);
        drop(lock);
    }
}

impl Drop for PathClaim {
    fn drop(&mut self) {
        self.release();
    }
}

/// Creates `dir` 0700, or checks that an existing one is safe.
fn secure_dir(dir: &Path) -> Result<(), PathError> {
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_at(dir)(e)),
    }
    let md = std::fs::symlink_metadata(dir).map_err(io_at(dir))?;
    let problem = check_dir(&md, rustix::process::geteuid().as_raw());
    match problem {
        None => Ok(()),
        Some(problem) => Err(PathError::UnsafeDir {
            dir: dir.to_path_buf(),
            problem,
        }),
    }
}

/// Why a directory is not safe for the socket, if it is not.
fn check_dir(md: &std::fs::Metadata, me: u32) -> Option<DirProblem> {
    let ft = md.file_type();
    if ft.is_symlink() {
        return Some(DirProblem::Symlink);
    }
    if !ft.is_dir() {
        return Some(DirProblem::NotADirectory);
    }
    if md.uid() != me && md.uid() != 0 {
        return Some(DirProblem::Owner {
            owner: md.uid(),
            me,
        });
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(DirProblem::Writable { mode });
    }
    None
}

/// Opens and locks the lock file; retries when the locked file was unlinked meanwhile (its
/// previous holder released it).
fn lock_file(lock_path: &Path, socket: &Path) -> Result<File, PathError> {
    for _ in 0..8 {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(lock_path)
            .map_err(io_at(lock_path))?;
        loop {
            match flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) => return Err(PathError::AlreadyRunning(socket.into())),
                Err(e) => return Err(io_at(lock_path)(e.into())),
            }
        }
        let held = f.metadata().map_err(io_at(lock_path))?;
        match std::fs::symlink_metadata(lock_path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(f),
            _ => continue,
        }
    }
    Err(io_at(lock_path)(io::Error::other(
        "the lock file keeps being replaced",
    )))
}

/// Whether a server accepts connections on `path` (a non-blocking connect: a full backlog
/// also counts as live).
fn is_live(path: &Path) -> bool {
    let Ok(fd) = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    ) else {
        return false;
    };
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return false;
    };
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => return true,
            Err(Errno::INTR) => continue,
            // ECONNREFUSED: nobody listens; EPROTOTYPE: a socket of another type (not ours).
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn refuses_group_writable_dir() {
        let d = std::env::temp_dir().join(format!("nlkit-path-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o770)).unwrap();
        let r = PathClaim::acquire(&d.join("mirror.sock"));
        assert!(
            matches!(
                r,
                Err(PathError::UnsafeDir {
                    problem: DirProblem::Writable { mode: 0o770 },
                    ..
                })
            ),
            "{r:?}"
        );
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut c = PathClaim::acquire(&d.join("mirror.sock")).unwrap();
        assert!(matches!(
            PathClaim::acquire(&d.join("mirror.sock")),
            Err(PathError::AlreadyRunning(_))
        ));
        c.release();
        PathClaim::acquire(&d.join("mirror.sock")).unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }
}
