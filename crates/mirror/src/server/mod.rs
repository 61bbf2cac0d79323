//! The query server: a Unix `SOCK_SEQPACKET` socket speaking Netlink framing.
//!
//! Concurrency model: one accept thread, and one thread per connected client (at most
//! `max_clients`). A client thread reads a request, runs its handler and writes the reply in
//! datagrams of about 32 KiB; a dump sends a table's pre-rendered chunks (see `render`) or,
//! when they are stale or being rebuilt, streams straight from the lock-free tables; at most
//! one datagram per client is buffered (plus the socket's send buffer) and no lock is held between
//! reads. A client that does not read is dropped when a send blocks longer than
//! `client_send_timeout`; a client that sends garbage gets an `NLMSG_ERROR` and, after
//! [`MAX_PROTOCOL_ERRORS`], is disconnected. Nothing a client does reaches another client's
//! thread. Threads were chosen over an epoll loop because a dump then keeps its table iterator
//! on its own stack across reads (the nulls table iterates with pinned handles, not a
//! resumable bucket cursor).

mod handlers;
mod out;
mod registry;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nlkit_wire::consts::*;
use nlkit_wire::{MessageHeader, Messages, NLMSG_HDRLEN};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::sockopt::{set_socket_timeout, socket_peercred, Timeout};
use rustix::net::{
    accept_with, bind, listen, recv, socket_with, AddressFamily, RecvFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

pub(crate) use registry::{Ctx, Registry};

use self::out::Out;
use self::registry::NEEDS_SERVER_LOCK;

/// Largest request datagram accepted: what `nlkit_socket::Socket` sends at most on a Unix
/// transport (it splits larger batches).
const MAX_REQUEST: usize = nlkit_socket::UNIX_MAX_REQUEST;
/// Protocol errors after which a client is disconnected.
pub const MAX_PROTOCOL_ERRORS: u32 = 16;

/// The default socket path (`nlkit_socket::unix::default_mirror_path`, where clients find
/// it without depending on the mirror).
///
/// ```
/// let p = nlkit_mirror::default_socket_path();
/// assert!(p.ends_with("mirror.sock"));
/// ```
pub use nlkit_socket::unix::default_mirror_path as default_socket_path;

/// Creates the socket's directory (0700 when created), removes a stale socket, binds, sets
/// mode 0600 before listening.
pub(crate) fn bind_listener(path: &Path) -> io::Result<OwnedFd> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if let Ok(md) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if md.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
    }
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    bind(&fd, &SocketAddrUnix::new(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listen(&fd, 128)?;
    Ok(fd)
}

/// Server settings.
#[derive(Debug, Clone)]
pub(crate) struct ServerConfig {
    pub max_clients: usize,
    pub send_timeout: Duration,
}

fn ts(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Accepts clients until `stop`; each accepted client gets its own thread.
pub(crate) fn accept_loop(
    listener: OwnedFd,
    ctx: Arc<Ctx>,
    registry: Arc<Registry>,
    cfg: ServerConfig,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
) {
    let me = rustix::process::geteuid();
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        if !matches!(poll(&mut fds, Some(&ts(Duration::from_millis(100)))), Ok(n) if n > 0) {
            continue;
        }
        let conn = match accept_with(&listener, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(Errno::AGAIN | Errno::INTR | Errno::CONNABORTED) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "mirror accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let refuse = |errno: i32, text: &str| {
            ctx.metrics.clients_refused.fetch_add(1, Ordering::Relaxed);
            let mut out = Out::new(conn.as_fd(), 0, 0);
            let _ = set_socket_timeout(&conn, Timeout::Send, Some(Duration::from_millis(100)));
            let _ = out.error(&MessageHeader::default(), errno, text);
            let _ = out.flush();
        };
        match socket_peercred(&conn) {
            Ok(cred) if cred.uid == me || cred.uid.is_root() => {}
            Ok(cred) => {
                tracing::info!(
                    uid = cred.uid.as_raw(),
                    pid = cred.pid.as_raw_nonzero().get(),
                    "mirror client refused: uid"
                );
                refuse(
                    libc::EACCES,
                    "permission denied: the mirror serves its own user and root only",
                );
                continue;
            }
            Err(e) => {
                refuse(libc::EACCES, &format!("cannot check peer credentials: {e}"));
                continue;
            }
        }
        if active.load(Ordering::Relaxed) >= cfg.max_clients {
            refuse(libc::EBUSY, "too many mirror clients");
            continue;
        }
        ctx.metrics.clients.fetch_add(1, Ordering::Relaxed);
        active.fetch_add(1, Ordering::Relaxed);
        let (ctx, registry, stop, active2) =
            (ctx.clone(), registry.clone(), stop.clone(), active.clone());
        let send_timeout = cfg.send_timeout;
        let spawned = std::thread::Builder::new()
            .name("mirror-client".into())
            .spawn(move || {
                serve_client(conn, &ctx, &registry, send_timeout, &stop);
                active2.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!("cannot start a client thread");
        }
    }
}

/// Serves one client until it hangs up, misbehaves or the server stops.
fn serve_client(
    conn: OwnedFd,
    ctx: &Ctx,
    registry: &Registry,
    send_timeout: Duration,
    stop: &AtomicBool,
) {
    let _ = set_socket_timeout(&conn, Timeout::Send, Some(send_timeout));
    let _ = set_socket_timeout(&conn, Timeout::Recv, Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut errors = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let n = match recv(&conn, &mut buf[..], RecvFlags::TRUNC) {
            Ok((_, 0)) => return, // orderly hang-up
            Ok((_, n)) => n,
            Err(Errno::AGAIN | Errno::INTR) => continue,
            Err(_) => return,
        };
        let result = if n > buf.len() {
            // Answer with the first request's header (it arrived), so the client can match
            // the error to its sequence number instead of waiting for a reply.
            let hdr = MessageHeader::parse(&buf[..]).unwrap_or_default();
            let mut out = Out::new(conn.as_fd(), hdr.seq, hdr.pid);
            errors += 1;
            out.error(&hdr, libc::EMSGSIZE, "request larger than 64 KiB")
                .and_then(|_| out.flush())
        } else {
            handle_datagram(conn.as_fd(), &buf[..n], ctx, registry, &mut errors)
        };
        if result.is_err() {
            // The client stopped reading (send timed out) or went away mid-reply.
            ctx.metrics.clients_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if errors >= MAX_PROTOCOL_ERRORS {
            ctx.metrics.clients_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

/// Handles every message of one request datagram.
fn handle_datagram(
    fd: BorrowedFd<'_>,
    data: &[u8],
    ctx: &Ctx,
    registry: &Registry,
    errors: &mut u32,
) -> io::Result<()> {
    for m in Messages::new(data) {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                // Malformed framing: answer once and drop the rest of the datagram.
                *errors += 1;
                ctx.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
                let hdr = MessageHeader::parse(data).unwrap_or_default();
                let mut out = Out::new(fd, hdr.seq, hdr.pid);
                out.error(
                    &hdr,
                    libc::EINVAL,
                    &format!("malformed netlink message: {e}"),
                )?;
                return out.flush();
            }
        };
        ctx.metrics.queries.fetch_add(1, Ordering::Relaxed);
        let hdr = m.header();
        let mut out = Out::new(fd, hdr.seq, hdr.pid);
        let wants_ack = hdr.flags & NLM_F_ACK != 0;
        if hdr.flags & NLM_F_REQUEST == 0 || hdr.ty < NLMSG_MIN_TYPE {
            // Like the kernel: not a request, or a control message — only acked if asked.
            if wants_ack {
                out.error(&hdr, 0, "")?;
            }
            out.flush()?;
            continue;
        }
        let Some(reg) = registry.get(hdr.ty) else {
            *errors += 1;
            ctx.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
            out.error(
                &hdr,
                libc::EOPNOTSUPP,
                &format!("message type {:#x} is not supported by the mirror", hdr.ty),
            )?;
            out.flush()?;
            continue;
        };
        let is_dump = hdr.flags & NLM_F_DUMP == NLM_F_DUMP;
        let handler = if is_dump { reg.dumpit } else { reg.doit };
        let Some(handler) = handler else {
            out.error(
                &hdr,
                libc::EOPNOTSUPP,
                "operation not supported for this message type",
            )?;
            out.flush()?;
            continue;
        };
        let result = if reg.flags & NEEDS_SERVER_LOCK != 0 {
            let _g = ctx.server_lock.lock();
            handler(ctx, &m, &mut out)
        } else {
            handler(ctx, &m, &mut out)
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                if wants_ack {
                    out.error(&hdr, 0, "")?;
                }
            }
            Err((errno, text)) => {
                if m.len() < NLMSG_HDRLEN {
                    *errors += 1;
                }
                out.error(&hdr, errno, &text)?;
            }
        }
        out.flush()?;
    }
    Ok(())
}
