//! The query server: a Unix `SOCK_SEQPACKET` socket speaking Netlink framing.
//!
//! Concurrency model (see `poller`): one epoll thread holds every connected client that has
//! no request pending — an idle client costs a descriptor, not a thread — and closes clients
//! idle longer than `client_idle_timeout`; a fixed pool of `server_threads` serving threads
//! takes clients with a pending request. A serving thread reads the client's queued requests,
//! runs their handlers and writes the replies in datagrams of about 32 KiB, then hands the
//! client back. A dump streams straight from the lock-free tables, walking a shared map's
//! slot array on the serving thread's stack; at most one datagram per client is buffered
//! (plus the socket's send buffer) and no lock is held between reads. A client whose socket stays full for
//! `client_send_timeout` is dropped (one deadline per stall, see `out`); a client that sends
//! garbage gets an `NLMSG_ERROR` and, after [`MAX_PROTOCOL_ERRORS`], is disconnected. A client
//! refused (another uid, over `max_clients`) gets the reason as an `NLMSG_ERROR` answering
//! its first request. A stalled client holds one serving thread for at most the send
//! timeout; everyone else is served by the others.
//!
//! A `nlkit_view::schema::MSG_MAP` request is answered with the region's memfd (`map`).
//!
//! Requests are classified as the kernel does: a message type with a dump handler (the
//! `GET` types) is a dump when any of `NLM_F_DUMP`'s bits (`NLM_F_ROOT`, `NLM_F_MATCH`) is
//! set; other types ignore those bits (they mean `NLM_F_REPLACE`/`NLM_F_EXCL` there).

mod handlers;
mod map;
mod nexthop_rules;
mod out;
pub(crate) mod path;
mod poller;
mod registry;
mod subscribe;

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nlkit_wire::consts::*;
use nlkit_wire::{MessageHeader, Messages, NLMSG_HDRLEN};
use rustix::io::Errno;
use rustix::net::{recv, RecvFlags};

pub use path::DirProblem;
pub(crate) use path::{PathClaim, PathError};
pub(crate) use poller::run;
pub(crate) use registry::{Ctx, Registry};

use self::out::{Link, Out};
use self::poller::Conn;
use self::registry::NEEDS_SERVER_LOCK;
use crate::stop::Shutdown;

/// Largest request datagram accepted: what `nlkit_socket::Socket` sends at most on a Unix
/// transport (it splits larger batches).
const MAX_REQUEST: usize = nlkit_socket::UNIX_MAX_REQUEST;
/// Protocol errors after which a client is disconnected.
pub const MAX_PROTOCOL_ERRORS: u32 = 16;
/// Request datagrams a serving thread answers on one client before handing it back (so a
/// client that pipelines cannot keep a thread to itself).
const DATAGRAMS_PER_TURN: usize = 8;

/// The default socket path (`nlkit_socket::unix::default_mirror_path`, where clients find
/// it without depending on the mirror).
///
/// ```
/// let p = nlkit_mirror::default_socket_path();
/// assert!(p.ends_with("mirror.sock"));
/// ```
pub use nlkit_socket::unix::default_mirror_path as default_socket_path;

/// Server settings (from `MirrorConfig`).
#[derive(Debug, Clone)]
pub(crate) struct ServerConfig {
    pub max_clients: usize,
    pub send_timeout: Duration,
    pub idle_timeout: Duration,
    pub serve_threads: usize,
    /// Most events a feed subscriber may lag behind the head before its overrun.
    pub feed_max_lag: u64,
}

/// What to do with a client after its turn.
pub(crate) enum Served {
    /// Nothing more is queued: park it.
    Keep,
    /// It hung up, failed or misbehaved: close it.
    Close,
}

/// Answers the requests queued on a ready client (at most [`DATAGRAMS_PER_TURN`]).
pub(crate) fn serve_ready(
    conn: &mut Conn,
    buf: &mut [u8],
    ctx: &Ctx,
    registry: &Registry,
    cfg: &ServerConfig,
    shutdown: &Shutdown,
) -> Served {
    let link = Link::new(conn.fd.as_fd(), shutdown.fd(), cfg.send_timeout);
    for _ in 0..DATAGRAMS_PER_TURN {
        let n = match recv(
            &conn.fd,
            &mut buf[..],
            RecvFlags::TRUNC | RecvFlags::DONTWAIT,
        ) {
            Ok((_, 0)) => return Served::Close, // orderly hang-up
            Ok((_, n)) => n,
            Err(Errno::AGAIN) => return Served::Keep,
            Err(Errno::INTR) => continue,
            Err(_) => return Served::Close,
        };
        let result = if n > buf.len() {
            // Answer with the first request's header (it arrived), so the client can match
            // the error to its sequence number instead of waiting for a reply.
            let hdr = MessageHeader::parse(&buf[..]).unwrap_or_default();
            let mut out = Out::new(&link, hdr.seq, hdr.pid);
            conn.errors += 1;
            out.error(&hdr, libc::EMSGSIZE, "request larger than 64 KiB")
                .and_then(|_| out.flush())
        } else {
            handle_datagram(
                &link,
                &buf[..n],
                ctx,
                registry,
                &mut conn.errors,
                &mut conn.sub,
            )
        };
        if result.is_err() || link.is_dead() || conn.errors >= MAX_PROTOCOL_ERRORS {
            // The client stopped reading (the send timed out), went away mid-reply, the
            // mirror is stopping, or it sent too much garbage.
            ctx.metrics.clients_dropped.fetch_add(1, Ordering::Relaxed);
            return Served::Close;
        }
    }
    Served::Keep
}

/// Handles every message of one request datagram.
fn handle_datagram(
    link: &Link<'_>,
    data: &[u8],
    ctx: &Ctx,
    registry: &Registry,
    errors: &mut u32,
    sub: &mut Option<crate::feed::subscriber::Subscription>,
) -> io::Result<()> {
    for m in Messages::new(data) {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                // Malformed framing: answer once and drop the rest of the datagram.
                *errors += 1;
                ctx.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
                let hdr = MessageHeader::parse(data).unwrap_or_default();
                let mut out = Out::new(link, hdr.seq, hdr.pid);
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
        let mut out = Out::new(link, hdr.seq, hdr.pid);
        let wants_ack = hdr.flags & NLM_F_ACK != 0;
        if hdr.flags & NLM_F_REQUEST == 0 || hdr.ty < NLMSG_MIN_TYPE {
            // Like the kernel: not a request, or a control message — only acked if asked.
            if wants_ack {
                out.error(&hdr, 0, "")?;
            }
            out.flush()?;
            continue;
        }
        if hdr.ty == nlkit_view::schema::MSG_MAP {
            map::answer(ctx, link, &hdr, &mut out)?;
            out.flush()?;
            continue;
        }
        if hdr.ty == nlkit_wire::feed::NLKIT_MSG_FEED_SUBSCRIBE {
            subscribe::subscribe(ctx, &m, &mut out, sub)?;
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
        // As the kernel: for a type with a dump handler, either bit of NLM_F_DUMP
        // (NLM_F_ROOT, NLM_F_MATCH) makes a dump.
        let is_dump = reg.dumpit.is_some() && hdr.flags & NLM_F_DUMP != 0;
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
