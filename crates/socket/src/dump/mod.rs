//! Dumps shared by many threads, and consistent dumps.
//!
//! # Route and address dumps: ask per family
//! Request `AF_INET` and `AF_INET6` route and address dumps separately, never `AF_UNSPEC`.
//! On current kernels (6.9 and later) the per-family handlers (`inet_dump_fib`,
//! `inet6_dump_fib`, `inet_dump_ifaddr`, `inet6_dump_ifaddr`) run without the RTNL mutex,
//! while an `AF_UNSPEC` `RTM_GETROUTE`/`RTM_GETADDR` dump goes through `rtnl_dump_all`, which
//! takes RTNL around every chunk and so serialises against every route, address and link
//! writer on the machine. Link dumps (`RTM_GETLINK`) take RTNL whatever the family.
//! [`family_dumps`] is where this crate makes that choice for its callers.

pub mod consistent;
pub mod core;
mod request;
pub mod stream;

use nlkit_wire::consts::{AF_INET, AF_INET6, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLM_F_DUMP_INTR};
use nlkit_wire::{DoneMsg, ErrorMsg, Message, MessageBuilder, Messages};

use self::core::{Class, DumpCore, DumpSource, Refilled};
use crate::pool::{Pool, PooledSocket};
use crate::recv::{DumpBuffer, RecvBuffer};
use crate::sync::{AtomicU64, Ordering};
use crate::{Error, Result};

/// The address families to dump routes or addresses for, one dump each, so that every dump
/// runs without RTNL (see the [module docs](self)).
///
/// ```
/// assert_eq!(nlkit_socket::dump::family_dumps(), [2, 10]);
/// ```
pub fn family_dumps() -> [u8; 2] {
    [AF_INET, AF_INET6]
}

/// Immutable parameters of a socket dump, read by every thread without a lock.
#[derive(Debug)]
pub struct SocketDumpKey {
    /// The dump request's sequence number; replies carrying another one are skipped.
    seq: u32,
    /// Messages skipped for a foreign sequence number (statistics only: `Relaxed`).
    seq_skipped: AtomicU64,
}

/// A [`DumpSource`] reading a kernel socket into [`DumpBuffer`]s.
#[derive(Debug)]
pub struct SocketSource {
    sock: PooledSocket,
}

impl DumpSource for SocketSource {
    type Buffer = RecvBuffer;
    type Key = SocketDumpKey;
    type Item<'b> = Message<'b>;

    fn refill(&mut self, key: &SocketDumpKey, buf: &mut RecvBuffer) -> Result<Refilled> {
        self.sock.recv(buf)?;
        // Walk the headers now, under the mutex, so the end of the dump (or its error) is
        // known before any other thread could try to read past it.
        let mut r = Refilled::default();
        // The prefix of messages the consumer takes as they are (this dump's sequence number,
        // not an ack, no-op or end): `classify` need not look at them again.
        let mut items_to = 0;
        let mut prefix = true;
        let mut at = 0;
        for m in Messages::new(buf.unread()) {
            let m = m?;
            at += nlkit_wire::align(m.len());
            let item =
                m.seq() == key.seq && !matches!(m.ty(), NLMSG_NOOP | NLMSG_ERROR | NLMSG_DONE);
            prefix &= item;
            if prefix {
                items_to = at;
            }
            if m.seq() != key.seq {
                continue;
            }
            r.interrupted |= m.flags() & NLM_F_DUMP_INTR != 0;
            match m.ty() {
                NLMSG_DONE => {
                    r.end = true;
                    if let Some(e) = DoneMsg::parse(&m)?.to_error() {
                        return Err(Error::Kernel(e));
                    }
                }
                NLMSG_ERROR => {
                    if let Some(e) = ErrorMsg::parse(&m)?.to_error() {
                        return Err(Error::Kernel(e));
                    }
                }
                _ => {}
            }
        }
        buf.items_to = items_to.min(buf.unread().len());
        Ok(r)
    }

    fn is_empty(buf: &RecvBuffer) -> bool {
        buf.is_empty()
    }

    fn clear(buf: &mut RecvBuffer) {
        buf.clear()
    }

    fn classify(key: &SocketDumpKey, buf: &mut RecvBuffer) -> Class {
        if buf.pos() < buf.items_to.min(buf.filled()) {
            return Class::Item;
        }
        loop {
            let h = match buf.unread() {
                [] => return Class::Empty,
                bytes => match Message::parse(bytes) {
                    Ok((m, _)) => m.header(),
                    Err(e) => {
                        buf.clear();
                        return Class::Fail(Error::Protocol(e));
                    }
                },
            };
            let skip = if h.seq != key.seq {
                key.seq_skipped.fetch_add(1, Ordering::Relaxed);
                true
            } else {
                matches!(h.ty, NLMSG_NOOP | NLMSG_ERROR)
            };
            if h.ty == NLMSG_DONE && !skip {
                buf.clear();
                return Class::End;
            }
            if !skip {
                return Class::Item;
            }
            // An ack (errors were caught by the refill) or a foreign message: step over it.
            let _ = buf.next_message();
        }
    }

    fn take<'b>(buf: &'b mut RecvBuffer) -> Option<Message<'b>> {
        buf.next_message().and_then(|m| m.ok())
    }
}

/// One kernel dump consumed by any number of threads, each with its own [`DumpBuffer`].
///
/// `SharedDump` is `Sync`: share it by reference (for example with `std::thread::scope`).
/// Each thread calls [`next`](SharedDump::next) with its own buffer and gets message views
/// borrowing that buffer. Refills are serialised under the dump's mutex (the kernel
/// misbehaves when two threads `recvmsg` one dump socket at once), a thread that still holds
/// messages keeps consuming them after another thread saw the end, and an error ends the
/// dump for every thread. [`finish`](SharedDump::finish) reports the outcome and returns the
/// socket to its pool if it is clean; dropping an unfinished dump finishes it and discards
/// the outcome.
///
/// ```no_run
/// use nlkit_socket::{DumpBuffer, Pool, Protocol, SharedDump};
/// use nlkit_wire::{consts::*, MessageBuilder, RtMsg};
///
/// let mut req = MessageBuilder::new();
/// req.begin(RTM_GETROUTE, NLM_F_DUMP, 0);
/// req.header(&RtMsg { family: AF_INET, ..Default::default() }); // per family: no RTNL
/// req.finish().unwrap();
/// let dump = SharedDump::start(Pool::shared(Protocol::Route), &mut req)?;
/// let counts: Vec<usize> = std::thread::scope(|s| {
///     let workers: Vec<_> = (0..2)
///         .map(|_| s.spawn(|| {
///             let mut buf = DumpBuffer::new();
///             let mut n = 0;
///             while let Some(_route) = dump.next(&mut buf)? {
///                 n += 1;
///             }
///             Ok::<_, nlkit_socket::Error>(n)
///         }))
///         .collect();
///     workers.into_iter().map(|w| w.join().unwrap().unwrap()).collect()
/// });
/// dump.finish()?; // Err(Error::Inconsistent) if the kernel flagged NLM_F_DUMP_INTR
/// println!("{} routes", counts.iter().sum::<usize>());
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedDump {
    /// `Some` until finished.
    core: Option<DumpCore<SocketSource>>,
}

impl SharedDump {
    /// Starts a dump on a socket from `pool`: `request` (one message) gets
    /// `NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK` and a fresh sequence number, and is sent.
    pub fn start(pool: &Pool, request: &mut MessageBuilder) -> Result<SharedDump> {
        SharedDump::start_on(pool.get()?, request)
    }

    /// Starts a dump on a socket already taken from a pool.
    pub fn start_on(mut sock: PooledSocket, request: &mut MessageBuilder) -> Result<SharedDump> {
        let seq = match sock.send_dump(request) {
            Ok(seq) => seq,
            Err(e) => {
                sock.discard();
                return Err(e);
            }
        };
        let key = SocketDumpKey {
            seq,
            seq_skipped: AtomicU64::new(0),
        };
        Ok(SharedDump {
            core: Some(DumpCore::new(SocketSource { sock }, key)),
        })
    }

    fn core(&self) -> &DumpCore<SocketSource> {
        self.core
            .as_ref()
            .expect("a SharedDump holds its core until finished")
    }

    /// The next message for the calling thread, from its own `buf`. `Ok(None)` when the
    /// dump has ended and `buf` is exhausted; `Err` when the dump failed (every thread gets
    /// the same error). Whether the dump was consistent is reported by
    /// [`finish`](SharedDump::finish).
    pub fn next<'b>(&self, buf: &'b mut DumpBuffer) -> Result<Option<Message<'b>>> {
        self.core().next(buf)
    }

    /// The dump request's sequence number.
    pub fn seq(&self) -> u32 {
        self.core().key().seq
    }

    /// Messages skipped so far because of a foreign sequence number.
    pub fn seq_skipped(&self) -> u64 {
        self.core().key().seq_skipped.load(Ordering::Relaxed)
    }

    /// Ends the dump. If it is still in progress the rest is read and discarded, so the
    /// kernel stops producing. The socket goes back to its pool only if it is clean (it is
    /// closed otherwise). Returns `Ok(())`, the dump's error (the kernel's, with extended-ack
    /// text, including an error carried on `NLMSG_DONE`), or [`Error::Inconsistent`].
    pub fn finish(mut self) -> Result<()> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<()> {
        let Some(core) = self.core.take() else {
            return Ok(());
        };
        let mut scratch = RecvBuffer::new();
        let (source, outcome) = core.finish(&mut scratch);
        let mut sock = source.sock;
        match &outcome {
            Ok(()) | Err(Error::Inconsistent) | Err(Error::Kernel(_)) => {}
            // The stream is in an unknown state: never hand the socket to someone else.
            Err(_) => sock.discard(),
        }
        drop(sock);
        outcome
    }
}

impl Drop for SharedDump {
    fn drop(&mut self) {
        if let Err(e) = self.finish_inner() {
            tracing::debug!(error = %e, "unfinished shared dump dropped");
        }
    }
}
