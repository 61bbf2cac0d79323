//! A dump on one socket, streamed to a callback on the calling thread.
//!
//! The single-threaded counterpart of [`SharedDump`](super::SharedDump): no mutex, no pool,
//! one buffer. The typed layers (`nlkit-route`, `nlkit-conntrack`) build their dumps on it.

use nlkit_wire::consts::*;
use nlkit_wire::{DoneMsg, ErrorMsg, Message, MessageBuilder};

use crate::{Error, RecvBuffer, Result, Socket};

/// What a finished dump reports besides its messages or objects: the summary of
/// [`Socket::dump`] and of the typed dumps of `nlkit-route` and `nlkit-conntrack`.
///
/// ```
/// let s = nlkit_socket::DumpSummary { delivered: 2, received: 3, interrupted: false };
/// assert!(s.delivered <= s.received);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Messages (or, for a typed dump, objects) passed to the callback. A raw
    /// [`Socket::dump`] passes every reply message, so this equals `received`; a typed dump
    /// counts only the objects its user-space filter kept.
    pub delivered: u64,
    /// Reply messages received (`NLMSG_DONE` and acknowledgements not counted).
    pub received: u64,
    /// The kernel flagged the dump `NLM_F_DUMP_INTR` (on a message or on `NLMSG_DONE`):
    /// objects changed while it ran. Everything was still delivered; restart the dump (or use
    /// [`consistent_dump`](crate::consistent_dump)) when consistency matters.
    pub interrupted: bool,
}

impl Socket {
    /// Runs the dump request in `req` (one finished message; prepared by
    /// [`send_dump`](Socket::send_dump): `NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK` and a fresh
    /// sequence number) and calls `f` for each reply message, streaming:
    /// memory stays one receive buffer whatever the table's size.
    ///
    /// If `f` fails, the rest of the dump is read and discarded, so the socket stays usable,
    /// and `f`'s error is returned. A kernel error (on `NLMSG_ERROR` or carried by
    /// `NLMSG_DONE`) is returned as [`Error::Kernel`], converted into the callback's error type.
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
    /// let mut sock = Socket::open(Protocol::Route)?;
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETLINK, 0, 0);
    /// req.header(&IfInfoMsg::default());
    /// req.finish().unwrap();
    /// let end = sock.dump(&mut req, |m| {
    ///     println!("message of type {}", m.ty());
    ///     Ok::<(), nlkit_socket::Error>(())
    /// })?;
    /// println!("{} links, interrupted: {}", end.received, end.interrupted);
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn dump<E: From<Error>>(
        &mut self,
        req: &mut MessageBuilder,
        mut f: impl FnMut(&Message<'_>) -> Result<(), E>,
    ) -> Result<DumpSummary, E> {
        let seq = self.send_dump(req)?;
        let mut buf = RecvBuffer::new();
        let mut state = Absorb::new(seq);
        loop {
            self.recv(&mut buf)?;
            if let Some(r) = state.absorb(&mut buf, &mut f) {
                return r;
            }
        }
    }

    /// Like [`dump`](Self::dump), with the kernel and the caller working at the same time: a
    /// helper thread keeps a `recvmsg` outstanding (during which the kernel produces the next
    /// chunk) while the calling thread runs `f` on the previous datagram. Messages still reach
    /// `f` in the kernel's order, on the calling thread; three buffers circulate, so memory
    /// stays flat.
    ///
    /// This is what an ordered listing wants on a machine with two cores: a single thread
    /// pays for the kernel's chunk production and its own per-message work one after the
    /// other; here they overlap. (A [`SharedDump`](crate::SharedDump) spreads the per-message
    /// work over threads instead, and gives up the order.)
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// use nlkit_wire::{consts::*, RtMsg, MessageBuilder};
    /// let mut sock = Socket::open(Protocol::Route)?;
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETROUTE, 0, 0);
    /// req.header(&RtMsg { family: AF_INET, ..Default::default() });
    /// req.finish().unwrap();
    /// let end = sock.dump_pipelined(&mut req, |_m| Ok::<(), nlkit_socket::Error>(()))?;
    /// println!("{} routes", end.received);
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn dump_pipelined<E: From<Error>>(
        &mut self,
        req: &mut MessageBuilder,
        mut f: impl FnMut(&Message<'_>) -> Result<(), E>,
    ) -> Result<DumpSummary, E> {
        use std::sync::mpsc::sync_channel;
        let seq = self.send_dump(req)?;
        // Filled buffers go to the caller in order; empty ones come back for reuse.
        let (full_tx, full_rx) = sync_channel::<Result<RecvBuffer>>(2);
        let (free_tx, free_rx) = sync_channel::<RecvBuffer>(3);
        for _ in 0..3 {
            let _ = free_tx.send(RecvBuffer::new());
        }
        let sock = &mut *self;
        std::thread::scope(|s| {
            s.spawn(move || {
                // Until the caller stops taking buffers or the dump ends.
                while let Ok(mut buf) = free_rx.recv() {
                    let r = sock.recv(&mut buf).map(|()| {
                        let last = ends_dump(&buf, seq);
                        (buf, last)
                    });
                    match r {
                        Ok((buf, last)) => {
                            if full_tx.send(Ok(buf)).is_err() || last {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = full_tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
            let mut state = Absorb::new(seq);
            for item in full_rx.iter() {
                let mut buf = item?;
                if let Some(r) = state.absorb(&mut buf, &mut f) {
                    return r;
                }
                let _ = free_tx.send(buf);
            }
            Err(Error::Unexpected("dump ended without NLMSG_DONE").into())
        })
    }
}

/// True when the datagram in `buf` ends dump `seq` (its `NLMSG_DONE` or an error), or is
/// malformed (nothing after it can be read either). One walk over the headers.
fn ends_dump(buf: &RecvBuffer, seq: u32) -> bool {
    buf.messages().any(|m| match m {
        Ok(m) => m.seq() == seq && matches!(m.ty(), NLMSG_DONE | NLMSG_ERROR),
        Err(_) => true,
    })
}

/// The per-datagram part of a dump: deliver messages, remember a callback's error, finish on
/// `NLMSG_DONE` or a kernel error.
pub(crate) struct Absorb<E> {
    seq: u32,
    end: DumpSummary,
    /// The callback's first error; the rest of the dump is then read and discarded.
    failed: Option<E>,
}

impl<E: From<Error>> Absorb<E> {
    pub(crate) fn new(seq: u32) -> Self {
        Absorb {
            seq,
            end: DumpSummary::default(),
            failed: None,
        }
    }

    /// Handles one datagram; returns the dump's outcome once it is over.
    pub(crate) fn absorb(
        &mut self,
        buf: &mut RecvBuffer,
        f: &mut impl FnMut(&Message<'_>) -> Result<(), E>,
    ) -> Option<Result<DumpSummary, E>> {
        while let Some(m) = buf.next_message() {
            let m = match m {
                Ok(m) => m,
                Err(e) => return Some(Err(e.into())),
            };
            if m.seq() != self.seq {
                continue;
            }
            self.end.interrupted |= m.flags() & NLM_F_DUMP_INTR != 0;
            match m.ty() {
                NLMSG_DONE => {
                    let d = match DoneMsg::parse(&m) {
                        Ok(d) => d,
                        Err(e) => return Some(Err(Error::Protocol(e).into())),
                    };
                    self.end.interrupted |= d.interrupted;
                    if let Some(e) = self.failed.take() {
                        return Some(Err(e));
                    }
                    return Some(match d.to_error() {
                        Some(k) => Err(Error::Kernel(k).into()),
                        None => Ok(self.end),
                    });
                }
                NLMSG_ERROR => {
                    let e = match ErrorMsg::parse(&m) {
                        Ok(e) => e,
                        Err(e) => return Some(Err(Error::Protocol(e).into())),
                    };
                    if let Some(k) = e.to_error() {
                        return Some(Err(self
                            .failed
                            .take()
                            .unwrap_or_else(|| Error::Kernel(k).into())));
                    }
                }
                NLMSG_NOOP => {}
                _ if self.failed.is_some() => {}
                _ => {
                    self.end.received += 1;
                    self.end.delivered += 1;
                    if let Err(e) = f(&m) {
                        self.failed = Some(e);
                    }
                }
            }
        }
        None
    }
}
