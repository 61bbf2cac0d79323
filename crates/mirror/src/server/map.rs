//! `MSG_MAP` (`nlkit_view::schema`): hands the region holding the tables to a client.
//!
//! The request has no payload. A peer whose `SO_PEERCRED` uid is the mirror's effective uid
//! or root is answered with one message of type `MSG_MAP`, the request's sequence number, a
//! `u32` payload [`MAP_VERSION`] (native byte order) and the region's memfd in `SCM_RIGHTS`;
//! it maps the memfd read-only (`nlkit_shm::RegionView`: the seals forbid any writable
//! mapping, growth never shrinks the file). Anyone else gets `NLMSG_ERROR` `-EPERM` and no
//! descriptor. (Connections of other uids are refused when they connect already; this check
//! stands on its own, so the descriptor can never leak through a change there.)

use std::io;

use nlkit_view::schema::{MAP_VERSION, MSG_MAP};
use nlkit_wire::{MessageBuilder, MessageHeader, MessageHeaderMut};
use rustix::net::sockopt::socket_peercred;

use super::out::{Link, Out};
use super::registry::Ctx;

/// Whether the peer on `link` may map the region: the mirror's own uid or root.
fn may_map(link: &Link<'_>) -> bool {
    let me = rustix::process::geteuid();
    socket_peercred(link.fd()).is_ok_and(|c| c.uid == me || c.uid.is_root())
}

/// Answers a `MSG_MAP` request (see the module docs).
pub(crate) fn answer(
    ctx: &Ctx,
    link: &Link<'_>,
    req: &MessageHeader,
    out: &mut Out<'_>,
) -> io::Result<()> {
    if !may_map(link) {
        return out.error(
            req,
            libc::EPERM,
            "the mirror hands its tables to its own user and root only",
        );
    }
    // Whatever is buffered goes first: the descriptor rides on its own datagram.
    out.flush()?;
    let mut b = MessageBuilder::with_capacity(32);
    b.begin(MSG_MAP, 0, req.seq);
    b.raw(&MAP_VERSION.to_ne_bytes());
    if b.finish().is_err() {
        return out.error(req, libc::EINVAL, "cannot build the answer");
    }
    let mut msg = b.as_bytes().to_vec();
    if let Ok(mut h) = MessageHeaderMut::new(&mut msg) {
        h.set_pid(req.pid);
    }
    link.send_passing(&msg, Some(ctx.tables.region().fd()))?;
    if req.flags & nlkit_wire::consts::NLM_F_ACK != 0 {
        out.error(req, 0, "")?;
    }
    Ok(())
}
