//! A dump on one socket, streamed to a callback on the calling thread.
//!
//! The single-threaded counterpart of [`SharedDump`](super::SharedDump): no mutex, no pool,
//! one buffer. The typed layers (`nlkit-route`, `nlkit-conntrack`) build their dumps on it.

use nlkit_wire::consts::*;
use nlkit_wire::{DoneMsg, ErrorMsg, Message, MessageBuilder};

use crate::{Error, RecvBuffer, Socket};

/// What a finished [`Socket::dump`] reports besides its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpEnd {
    /// Reply messages passed to the callback.
    pub received: u64,
    /// The kernel flagged the dump `NLM_F_DUMP_INTR` (on a message or on `NLMSG_DONE`):
    /// objects changed while it ran. Everything was still delivered; restart the dump (or use
    /// [`consistent_dump`](crate::consistent_dump)) when consistency matters.
    pub interrupted: bool,
}

impl Socket {
    /// Runs the dump request in `req` (one finished message; `NLM_F_REQUEST | NLM_F_DUMP` and
    /// a fresh sequence number are set here) and calls `f` for each reply message, streaming:
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
    ) -> Result<DumpEnd, E> {
        let bytes = req.as_bytes_mut();
        if bytes.len() < 16 {
            return Err(Error::Unexpected("a dump request must be one finished message").into());
        }
        let seq = self.alloc_seq(1);
        let flags = u16::from_ne_bytes([bytes[6], bytes[7]]) | NLM_F_REQUEST | NLM_F_DUMP;
        bytes[6..8].copy_from_slice(&flags.to_ne_bytes());
        bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.send(req.as_bytes())?;
        let mut buf = RecvBuffer::new();
        let mut end = DumpEnd::default();
        let mut failed: Option<E> = None;
        loop {
            self.recv(&mut buf)?;
            while let Some(m) = buf.next_message() {
                let m = m.map_err(E::from)?;
                if m.seq() != seq {
                    continue;
                }
                end.interrupted |= m.flags() & NLM_F_DUMP_INTR != 0;
                match m.ty() {
                    NLMSG_DONE => {
                        let d = DoneMsg::parse(&m).map_err(|e| E::from(Error::Protocol(e)))?;
                        end.interrupted |= d.interrupted;
                        if let Some(e) = failed {
                            return Err(e);
                        }
                        return match d.to_error() {
                            Some(k) => Err(Error::Kernel(k).into()),
                            None => Ok(end),
                        };
                    }
                    NLMSG_ERROR => {
                        let e = ErrorMsg::parse(&m).map_err(|e| E::from(Error::Protocol(e)))?;
                        if let Some(k) = e.to_error() {
                            return Err(failed.unwrap_or_else(|| Error::Kernel(k).into()));
                        }
                    }
                    NLMSG_NOOP => {}
                    _ if failed.is_some() => {}
                    _ => {
                        end.received += 1;
                        if let Err(e) = f(&m) {
                            failed = Some(e);
                        }
                    }
                }
            }
        }
    }
}
