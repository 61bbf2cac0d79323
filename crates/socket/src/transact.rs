//! Requests and their replies: `transact` and `transact_batch`.

use nlkit_wire::consts::{
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use nlkit_wire::{
    align, DoneMsg, ErrorMsg, MessageBuilder, MessageHeaderMut, Messages, NLMSG_HDRLEN,
};
use rustix::io::Errno;

use crate::recv::RecvBuffer;
use crate::{Error, Result, Socket};

/// The reply to one request: the messages the kernel sent before its acknowledgement (none
/// for most `NEW`/`DEL` requests, one for a `GET`, many for a dump sent this way), owned.
///
/// ```
/// let r = nlkit_socket::TransactReply::default();
/// assert!(r.is_empty());
/// assert_eq!(r.messages().count(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactReply {
    bytes: Vec<u8>,
    count: usize,
    warning: Option<String>,
    interrupted: bool,
}

impl TransactReply {
    /// The reply messages (acknowledgement and `NLMSG_DONE` excluded).
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(&self.bytes)
    }
    /// How many reply messages there are.
    pub fn len(&self) -> usize {
        self.count
    }
    /// True for a bare acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// A warning the kernel attached to its successful acknowledgement (extended ack).
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }
    /// For a dump sent through a transaction: the kernel flagged it `NLM_F_DUMP_INTR`.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }
    /// The raw reply bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Outstanding state of one request of a batch.
#[derive(Debug)]
pub(crate) struct Pending {
    reply: TransactReply,
    dump: bool,
    pub(crate) result: Option<Result<TransactReply>>,
}

impl Pending {
    pub(crate) fn new(dump: bool) -> Self {
        Pending {
            reply: TransactReply::default(),
            dump,
            result: None,
        }
    }
}

/// Byte offsets of the messages in a request buffer; sets `NLM_F_REQUEST | NLM_F_ACK` on each.
fn mark_requests(bytes: &mut [u8]) -> Result<Vec<(usize, usize, bool)>> {
    let total = bytes.len();
    let mut out = Vec::new();
    MessageHeaderMut::for_each(bytes, |off, mut h| {
        let hdr = h.get();
        h.insert_flags(NLM_F_REQUEST | NLM_F_ACK);
        let end = (off + align(hdr.len as usize)).min(total);
        out.push((off, end, hdr.flags & NLM_F_DUMP == NLM_F_DUMP));
    })?;
    Ok(out)
}

/// Sets the sequence number of the request at `off` (an offset from [`mark_requests`]).
fn set_seq_at(bytes: &mut [u8], off: usize, seq: u32) -> Result<()> {
    MessageHeaderMut::new(&mut bytes[off..])?.set_seq(seq);
    Ok(())
}

impl Socket {
    /// Sends one request with `NLM_F_REQUEST | NLM_F_ACK` and a fresh sequence number, and
    /// waits for its reply: the reply messages, or the kernel's error with its extended-ack
    /// text.
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// use nlkit_wire::{consts::*, MessageBuilder, RtMsg};
    /// let mut sock = Socket::open(Protocol::Route)?;
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, 0);
    /// req.header(&RtMsg { family: AF_INET, dst_len: 32, table: RT_TABLE_MAIN, ..Default::default() });
    /// req.attr_bytes(RTA_DST, &[10, 9, 9, 9]);
    /// req.attr_bytes(RTA_GATEWAY, &[192, 0, 2, 1]);
    /// req.finish().unwrap();
    /// match sock.transact(&mut req) {
    ///     Ok(_) => println!("added"),
    ///     Err(e) => println!("{e}"), // e.g. "Error: Nexthop has invalid gateway."
    /// }
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn transact(&mut self, request: &mut MessageBuilder) -> Result<TransactReply> {
        if request.message_count() != 1 {
            return Err(Error::InvalidRequest(
                "transact takes exactly one finished message; use transact_batch for more",
            ));
        }
        let mut results = self.transact_batch(request)?;
        results
            .pop()
            .unwrap_or(Err(Error::Unexpected("no result for the request")))
    }

    /// Sends every message in `requests` (each with `NLM_F_REQUEST | NLM_F_ACK` and its own
    /// sequence number), as few `sendmsg` calls as the receive buffer allows, and returns one
    /// result per request, in order, matched by sequence number.
    ///
    /// The outer `Err` means the socket itself failed (send or receive error, malformed
    /// reply). A request whose reply the kernel dropped because the receive queue overflowed
    /// (`ENOBUFS`) gets [`Error::ReplyLost`]: it may or may not have been applied. To make
    /// overflow unlikely, requests are sent in windows sized from the granted receive buffer,
    /// and each window's replies are read before the next is sent (the idea of Open vSwitch's
    /// `nl_transact_multiple`).
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// use nlkit_wire::{consts::*, IfAddrMsg, MessageBuilder};
    /// let mut sock = Socket::open(Protocol::Route)?;
    /// let mut batch = MessageBuilder::new();
    /// for i in 1..=3u8 {
    ///     batch.begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, 0);
    ///     batch.header(&IfAddrMsg { family: AF_INET, prefixlen: 24, index: 1, ..Default::default() });
    ///     batch.attr_bytes(IFA_LOCAL, &[10, 0, i, 1]);
    ///     batch.finish().unwrap();
    /// }
    /// for (i, r) in sock.transact_batch(&mut batch)?.into_iter().enumerate() {
    ///     println!("request {i}: {:?}", r.map(|_| ()));
    /// }
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn transact_batch(
        &mut self,
        requests: &mut MessageBuilder,
    ) -> Result<Vec<Result<TransactReply>>> {
        let offsets = mark_requests(requests.as_bytes_mut())?;
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = self.scratch.take().unwrap_or_default();
        let window = (self.applied().rcvbuf / 1024).clamp(16, 4096);
        // The kernel refuses a sendmsg longer than sk_sndbuf - 32 bytes (EMSGSIZE).
        let sndbuf =
            rustix::net::sockopt::socket_send_buffer_size(&*self).map_err(|errno| Error::Sys {
                op: "getsockopt(SO_SNDBUF)",
                errno,
            })?;
        let mut max_bytes = sndbuf.saturating_sub(64).max(4096);
        if self.transport() == crate::SocketTransport::Unix {
            // One window is one datagram, and a Unix peer takes at most this much at once.
            max_bytes = max_bytes.min(crate::UNIX_MAX_REQUEST);
        }
        let mut results = Vec::with_capacity(offsets.len());
        let outcome = (|| {
            for range in windows(&offsets, window, max_bytes) {
                let chunk = &offsets[range];
                let first = self.alloc_seq(chunk.len() as u32);
                let start = chunk[0].0;
                let end = chunk[chunk.len() - 1].1;
                for (i, &(off, _, _)) in chunk.iter().enumerate() {
                    let seq = first.wrapping_add(i as u32);
                    set_seq_at(requests.as_bytes_mut(), off, seq)?;
                }
                let mut pending: Vec<Pending> = chunk
                    .iter()
                    .map(|&(_, _, dump)| Pending::new(dump))
                    .collect();
                self.send(&requests.as_bytes()[start..end])?;
                self.collect(&mut buf, first, &mut pending)?;
                results.extend(pending.into_iter().map(|p| {
                    p.result
                        .unwrap_or(Err(Error::Unexpected("request left without a reply")))
                }));
            }
            Ok(())
        })();
        if outcome.is_err() {
            self.poisoned = true;
        }
        self.scratch = Some(buf);
        outcome.map(|()| results)
    }

    /// Reads replies until every request of the window `first..first + pending.len()` has
    /// its result.
    fn collect(&mut self, buf: &mut RecvBuffer, first: u32, pending: &mut [Pending]) -> Result<()> {
        let mut open = pending.len();
        let mut overflowed = false;
        while open > 0 {
            match self.recv_flags(buf, overflowed) {
                Ok(()) => open -= self.absorb(buf, first, pending)?,
                Err(Error::Sys {
                    errno: Errno::NOBUFS,
                    ..
                }) => {
                    // The queue overflowed and some replies were dropped. The kernel answers
                    // a sendmsg's requests before the call returns, so everything still
                    // queued can be read without waiting; whatever is missing after that
                    // was lost.
                    tracing::warn!("netlink receive queue overflow during a transaction");
                    overflowed = true;
                }
                Err(Error::Sys {
                    errno: Errno::AGAIN,
                    ..
                }) if overflowed => break,
                Err(e) => return Err(e),
            }
        }
        if overflowed {
            self.mark_lost(first, pending);
        }
        Ok(())
    }

    /// Gives every request still without a result [`Error::ReplyLost`].
    pub(crate) fn mark_lost(&mut self, first: u32, pending: &mut [Pending]) {
        for (i, p) in pending.iter_mut().enumerate() {
            if p.result.is_none() {
                if p.dump {
                    // A dump keeps producing on later reads: the socket's state is unknown.
                    self.poisoned = true;
                }
                p.result = Some(Err(Error::ReplyLost {
                    seq: first.wrapping_add(i as u32),
                }));
            }
        }
    }

    /// Matches the messages of one received datagram to the window's requests; returns how
    /// many requests it completed.
    pub(crate) fn absorb(
        &mut self,
        buf: &mut RecvBuffer,
        first: u32,
        pending: &mut [Pending],
    ) -> Result<usize> {
        let mut completed = 0;
        while let Some(msg) = buf.next_message() {
            let msg = msg?;
            let idx = msg.seq().wrapping_sub(first) as usize;
            let Some(p) = pending.get_mut(idx).filter(|p| p.result.is_none()) else {
                self.stats.seq_skipped += 1;
                continue;
            };
            match msg.ty() {
                NLMSG_ERROR => {
                    let e = ErrorMsg::parse(&msg)?;
                    p.result = Some(match e.to_error() {
                        Some(k) => Err(Error::Kernel(k)),
                        None => {
                            let mut r = std::mem::take(&mut p.reply);
                            r.warning = e.warning().map(str::to_owned);
                            Ok(r)
                        }
                    });
                    completed += 1;
                }
                NLMSG_DONE => {
                    let d = DoneMsg::parse(&msg)?;
                    p.result = Some(match d.to_error() {
                        Some(k) => Err(Error::Kernel(k)),
                        None => {
                            let mut r = std::mem::take(&mut p.reply);
                            r.interrupted |= d.interrupted;
                            Ok(r)
                        }
                    });
                    completed += 1;
                }
                NLMSG_NOOP => {}
                _ => {
                    p.reply.interrupted |= msg.flags() & NLM_F_DUMP_INTR != 0;
                    p.reply.bytes.extend_from_slice(msg.bytes());
                    let pad = align(msg.len()) - msg.len();
                    p.reply.bytes.extend(std::iter::repeat_n(0, pad));
                    p.reply.count += 1;
                }
            }
        }
        Ok(completed)
    }

    /// Relays request bytes built elsewhere (one or more whole messages, for example a
    /// client's request passed on by a proxy such as the nlkit mirror) and returns the
    /// kernel's reply messages verbatim: reply messages, `NLMSG_DONE`, and each request's
    /// `NLMSG_ERROR` acknowledgement with its extended-ack TLVs.
    ///
    /// The requests are sent with `NLM_F_REQUEST | NLM_F_ACK` and this socket's own fresh
    /// sequence numbers, so a reply is matched to its request by sequence number and by port
    /// (the datagram's sender must be the kernel, port 0, and on a kernel socket the reply
    /// must be addressed to this socket's port id): never by arrival order, and never by a
    /// sequence number that someone else chose. In the returned bytes each message's sequence
    /// number (and the echoed request header of an acknowledgement) is restored to the value
    /// the caller's request carried. Datagrams from other senders are dropped and counted in
    /// [`SocketStats::foreign_dropped`](crate::SocketStats); stale replies in
    /// [`SocketStats::seq_skipped`](crate::SocketStats).
    ///
    /// The outer `Err` means the transaction failed as a whole (send or receive error,
    /// malformed reply, [`Error::ReplyLost`] when the receive queue overflowed); a kernel
    /// refusal is an `NLMSG_ERROR` inside the returned bytes.
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder, Messages};
    /// let mut sock = Socket::open(Protocol::Route)?;
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETLINK, NLM_F_REQUEST, 42); // the client's own sequence number
    /// req.header(&IfInfoMsg { index: 1, ..Default::default() });
    /// req.finish().unwrap();
    /// let reply = sock.transact_raw(req.as_bytes())?;
    /// for m in Messages::new(&reply) {
    ///     assert_eq!(m?.seq(), 42); // RTM_NEWLINK for lo, then the ack
    /// }
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn transact_raw(&mut self, requests: &[u8]) -> Result<Vec<u8>> {
        let mut bytes = requests.to_vec();
        let offsets = mark_requests(&mut bytes)?;
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.alloc_seq(offsets.len() as u32);
        let mut original = Vec::with_capacity(offsets.len());
        for (i, &(off, _, _)) in offsets.iter().enumerate() {
            let mut h = MessageHeaderMut::new(&mut bytes[off..])?;
            original.push(h.get().seq);
            h.set_seq(first.wrapping_add(i as u32));
        }
        let mut buf = self.scratch.take().unwrap_or_default();
        let outcome = self
            .send(&bytes)
            .and_then(|()| self.collect_raw(&mut buf, first, &original));
        if outcome.is_err() {
            self.poisoned = true;
        }
        self.scratch = Some(buf);
        outcome
    }

    /// Reads replies to the raw requests `first..first + original.len()` until each has its
    /// acknowledgement, error or `NLMSG_DONE`; returns the reply messages with the callers'
    /// sequence numbers restored.
    fn collect_raw(
        &mut self,
        buf: &mut RecvBuffer,
        first: u32,
        original: &[u32],
    ) -> Result<Vec<u8>> {
        let mut open = vec![true; original.len()];
        let mut left = original.len();
        let mut out = Vec::new();
        let mut overflowed = false;
        // On a kernel socket a reply is addressed to our port id; a Unix peer has none.
        let own_port =
            (self.transport() == crate::SocketTransport::Netlink).then_some(self.port_id());
        while left > 0 {
            match self.recv_flags(buf, overflowed) {
                Ok(()) => {}
                Err(Error::Sys {
                    errno: Errno::NOBUFS,
                    ..
                }) => {
                    tracing::warn!("netlink receive queue overflow during a relayed transaction");
                    overflowed = true;
                    continue;
                }
                Err(Error::Sys {
                    errno: Errno::AGAIN,
                    ..
                }) if overflowed => {
                    let i = open.iter().position(|o| *o).unwrap_or(0);
                    return Err(Error::ReplyLost { seq: original[i] });
                }
                Err(e) => return Err(e),
            }
            while let Some(msg) = buf.next_message() {
                let msg = msg?;
                let idx = msg.seq().wrapping_sub(first) as usize;
                let ours = own_port.is_none_or(|p| msg.pid() == p);
                if !ours || !open.get(idx).copied().unwrap_or(false) {
                    self.stats.seq_skipped += 1;
                    continue;
                }
                let start = out.len();
                out.extend_from_slice(msg.bytes());
                out.resize(start + align(msg.len()), 0);
                MessageHeaderMut::new(&mut out[start..])?.set_seq(original[idx]);
                match msg.ty() {
                    NLMSG_ERROR => {
                        // The acknowledgement echoes the request's header: restore it too.
                        let echoed = start + NLMSG_HDRLEN + 4;
                        if let Some(Ok(mut r)) = out
                            .get_mut(echoed..start + msg.len())
                            .map(MessageHeaderMut::new)
                        {
                            r.set_seq(original[idx]);
                        }
                        open[idx] = false;
                        left -= 1;
                    }
                    NLMSG_DONE => {
                        open[idx] = false;
                        left -= 1;
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Prepares a single request for sending: flags, a fresh sequence number, its pending
    /// slot. Used by the async wrapper.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn prepare_one(&mut self, request: &mut MessageBuilder) -> Result<(u32, Pending)> {
        let offsets = mark_requests(request.as_bytes_mut())?;
        let [(off, _, dump)] = offsets[..] else {
            return Err(Error::InvalidRequest(
                "transact takes exactly one finished message; use transact_batch for more",
            ));
        };
        let seq = self.alloc_seq(1);
        set_seq_at(request.as_bytes_mut(), off, seq)?;
        Ok((seq, Pending::new(dump)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_request_and_ack_flags() {
        let mut b = MessageBuilder::new();
        b.begin(20, 0, 0);
        b.finish().unwrap();
        b.begin(22, NLM_F_DUMP, 0);
        b.raw(&[1, 2, 3]);
        b.finish().unwrap();
        let offs = mark_requests(b.as_bytes_mut()).unwrap();
        assert_eq!(offs, vec![(0, 16, false), (16, 36, true)]);
        for m in Messages::new(b.as_bytes()) {
            assert_eq!(m.unwrap().flags() & (NLM_F_REQUEST | NLM_F_ACK), 5);
        }
    }

    #[test]
    fn malformed_request_buffer_is_an_error() {
        let mut bytes = [8u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(mark_requests(&mut bytes), Err(Error::Protocol(_))));
    }
}

/// Splits the requests (`(start, end, is_dump)` byte ranges, in order) into windows of at most
/// `max_count` requests and `max_bytes` bytes (a single larger request gets a window alone;
/// the kernel then answers EMSGSIZE for it).
fn windows(
    offsets: &[(usize, usize, bool)],
    max_count: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut first = 0;
    for (i, &(_, end, _)) in offsets.iter().enumerate() {
        let too_many = i - first >= max_count;
        let too_big = i > first && end - offsets[first].0 > max_bytes;
        if too_many || too_big {
            out.push(first..i);
            first = i;
        }
    }
    if first < offsets.len() {
        out.push(first..offsets.len());
    }
    out
}

#[cfg(test)]
mod window_tests {
    #[test]
    fn windows_respect_count_and_bytes() {
        let offs: Vec<(usize, usize, bool)> =
            (0..10).map(|i| (i * 100, i * 100 + 100, false)).collect();
        assert_eq!(super::windows(&offs, 4, 10_000), [0..4, 4..8, 8..10]);
        assert_eq!(
            super::windows(&offs, 100, 250),
            [0..2, 2..4, 4..6, 6..8, 8..10]
        );
        assert_eq!(
            super::windows(&offs, 100, 50),
            (0..10).map(|i| i..i + 1).collect::<Vec<_>>()
        );
        assert!(super::windows(&[], 4, 100).is_empty());
    }
}
