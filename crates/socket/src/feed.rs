//! Following the nlkit mirror's change feed on a [`SocketTransport::Unix`] socket.
//!
//! On a socket connected to the mirror, [`Socket::join_group`] subscribes to the group's
//! changes as on a kernel socket, and [`Socket::mirror_subscribe`] adds a consistent snapshot
//! before the follow, or a resume from a position. Events are then read with
//! [`Socket::recv`] like kernel events: the kernel's messages, in the order the mirror applied
//! them, each ending with a [`FeedMark`] trailer attribute (its position, the mirror's epoch,
//! whether the mirror synthesized it) that code reading kernel events skips as an unknown
//! attribute. See `nlkit_wire::feed` for the wire format.
//!
//! Answers that are not events, all `NLMSG_ERROR` with a [`FeedMark`]:
//! * `-ENOBUFS` with `FEED_OVERRUN`: the client fell too
//!   far behind; the mark's position is the last event it was sent, the subscription is over,
//!   and [`MirrorStart::Resume`] from it continues without a gap while the mirror's log still
//!   holds it;
//! * `-ESTALE` with `FEED_RESYNC_REQUIRED` (the answer
//!   to a resume, as [`Subscribed::ResyncRequired`]): the position is no longer in the log or
//!   belongs to another mirror run; take a new snapshot.

use nlkit_wire::consts::*;
use nlkit_wire::feed::{FeedRequest, FEED_RESYNC_REQUIRED, NLKIT_MSG_FEED_SUBSCRIBE};
use nlkit_wire::{ErrorMsg, Message, MessageHeader, NLMSG_HDRLEN};

pub use nlkit_wire::feed::{FeedMark, FeedStart as MirrorStart};

use crate::recv::RecvBuffer;
use crate::socket::SocketTransport;
use crate::{Error, Result, Socket};

/// How a subscription started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// Events after `mark.position` follow (for a snapshot: the snapshot is the state at
    /// that position).
    Following(FeedMark),
    /// The resume position is gone (`-ESTALE`): take a snapshot. `mark.position` is the
    /// log's head, `mark.epoch` the mirror's current epoch.
    ResyncRequired(FeedMark),
}

impl Subscribed {
    /// The mark of the answer.
    pub fn mark(&self) -> FeedMark {
        match self {
            Subscribed::Following(m) | Subscribed::ResyncRequired(m) => *m,
        }
    }
}

impl Socket {
    /// Subscribes to `groups` of the socket's protocol on the mirror (`RTNLGRP_LINK`,
    /// `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV6_IFADDR`, `RTNLGRP_IPV4_ROUTE`,
    /// `RTNLGRP_IPV6_ROUTE`, `RTNLGRP_NEIGH` on a [`Protocol::Route`](crate::Protocol)
    /// socket; `NFNLGRP_CONNTRACK_NEW`, `_UPDATE`, `_DESTROY` on a `Protocol::Netfilter` one),
    /// starting as `start` says, and waits for the answer. With [`MirrorStart::Snapshot`] the
    /// snapshot's records (one entry's messages each, as a dump's) are given to `on_record`
    /// in order — a later record of an object replaces an earlier one, and a `RTM_DEL*` /
    /// `IPCTNL_MSG_CT_DELETE` record removes it (objects that changed while the snapshot was
    /// taken) — and the answer's position is the one the snapshot is the state at.
    ///
    /// A new subscription on a socket that follows already replaces it (events still queued
    /// before the answer are discarded). Then read events with [`recv`](Socket::recv).
    ///
    /// ```no_run
    /// use nlkit_socket::feed::{FeedMark, MirrorStart, Subscribed};
    /// use nlkit_socket::{Protocol, RecvBuffer, Socket};
    /// use nlkit_wire::consts::*;
    ///
    /// let mut sock = Socket::connect_unix(nlkit_socket::unix::default_mirror_path(), Protocol::Route)?;
    /// let mut routes = 0;
    /// let Subscribed::Following(at) =
    ///     sock.mirror_subscribe(&[RTNLGRP_IPV4_ROUTE], MirrorStart::Snapshot, |_| routes += 1)?
    /// else { unreachable!("a snapshot needs no resync") };
    /// println!("{routes} routes at position {}", at.position);
    /// let mut buf = RecvBuffer::new();
    /// sock.recv(&mut buf)?;
    /// for m in buf.messages() {
    ///     let m = m?;
    ///     let mark = FeedMark::of(m.bytes()).expect("feed events carry their position");
    ///     println!("type {} at {}", m.ty(), mark.position);
    /// }
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn mirror_subscribe(
        &mut self,
        groups: &[u32],
        start: MirrorStart,
        mut on_record: impl FnMut(&Message<'_>),
    ) -> Result<Subscribed> {
        let was_poisoned = self.poisoned;
        let seq = self.send_subscribe(groups, start, true)?;
        self.mirror_following = true;
        // A refused subscription leaves the socket as it was (its answer is read whole).
        let refused = |s: &mut Socket| {
            s.poisoned = was_poisoned;
            s.mirror_following = false;
        };
        let mut buf = RecvBuffer::new();
        loop {
            self.recv(&mut buf)?;
            for m in buf.messages() {
                let m = m?;
                if m.seq() != seq {
                    continue; // events of an earlier subscription
                }
                match m.ty() {
                    NLMSG_ERROR => {
                        let e = ErrorMsg::parse(&m)?;
                        let mark = FeedMark::of(m.bytes()).unwrap_or_default();
                        if e.errno == libc::ESTALE && mark.flags & FEED_RESYNC_REQUIRED != 0 {
                            refused(self);
                            return Ok(Subscribed::ResyncRequired(mark));
                        }
                        if let Some(err) = e.to_error() {
                            refused(self);
                            return Err(Error::Kernel(err));
                        }
                        return Ok(Subscribed::Following(mark));
                    }
                    NLMSG_DONE => {
                        let mark = FeedMark::of(m.bytes()).unwrap_or_default();
                        return Ok(Subscribed::Following(mark));
                    }
                    _ => on_record(&m),
                }
            }
        }
    }

    /// Sends a subscribe request; returns its sequence number.
    fn send_subscribe(&mut self, groups: &[u32], start: MirrorStart, ack: bool) -> Result<u32> {
        if self.transport() != SocketTransport::Unix {
            return Err(Error::Unexpected(
                "the feed is the mirror's: connect with Socket::connect_unix",
            ));
        }
        let payload = FeedRequest {
            protocol: self.protocol().raw() as u32,
            start,
            groups: groups.to_vec(),
        }
        .encode();
        let seq = self.alloc_seq(1);
        let mut flags = NLM_F_REQUEST;
        if ack {
            flags |= NLM_F_ACK;
        }
        let hdr = MessageHeader {
            len: (NLMSG_HDRLEN + payload.len()) as u32,
            ty: NLKIT_MSG_FEED_SUBSCRIBE,
            flags,
            seq,
            pid: 0,
        };
        let mut b = vec![0u8; NLMSG_HDRLEN];
        hdr.write(&mut b);
        b.extend_from_slice(&payload);
        self.poisoned = true; // a following socket is never pooled
        self.send(&b)?;
        Ok(seq)
    }

    /// [`join_group`](Socket::join_group) on a mirror socket: the first join waits for the
    /// mirror's answer (events follow from then on); later ones add their group without
    /// waiting (events of the socket's stream are not held up).
    pub(crate) fn mirror_join(&mut self, group: u32) -> Result<()> {
        if self.mirror_following {
            self.send_subscribe(&[group], MirrorStart::Now, false)?;
            return Ok(());
        }
        match self.mirror_subscribe(&[group], MirrorStart::Now, |_| {})? {
            Subscribed::Following(_) => Ok(()),
            Subscribed::ResyncRequired(_) => Err(Error::Unexpected("resync answer to a join")),
        }
    }
}
