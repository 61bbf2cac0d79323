//! ctnetlink requests run on sockets: streaming dumps, get, create, update, delete, flushes,
//! counts, statistics, the streaming "delete everything that matches", and events.
//!
//! ```no_run
//! use nlkit_socket::{Protocol, Socket};
//! use nlkit_conntrack::{fmt::entry_text, ops, request::DumpFilter};
//! let mut sock = Socket::open(Protocol::Netfilter)?;
//! ops::dump(&mut sock, &DumpFilter::mark(7), |e| {
//!     println!("{}", entry_text(&e));
//!     Ok(())
//! })?;
//! # Ok::<(), nlkit_conntrack::Error>(())
//! ```

use nlkit_socket::{Event, EventSocket, Protocol, RecvBuffer, Socket, SocketOptions};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder};

use crate::request::{self, DumpFilter};
use crate::{CpuStats, CtEntry, CtEntryView, Error, EventKind, GlobalStats, Result, Tuple};

pub use nlkit_socket::DumpSummary;

/// Opens a ctnetlink request socket with the default options.
pub fn open() -> Result<Socket> {
    Ok(Socket::open(Protocol::Netfilter)?)
}

/// Runs the dump request in `req` on `sock` and calls `f` for every reply message; if `f`
/// fails, the rest of the dump is drained and `f`'s error returned. ctnetlink dumps never set
/// `NLM_F_DUMP_INTR`.
pub fn dump_raw(
    sock: &mut Socket,
    req: &mut MessageBuilder,
    f: impl FnMut(&Message<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    sock.dump(req, f)
}

/// Streams the conntrack table with kernel-side filters (re-checked in user space); `f` gets
/// each matching entry as a view into the receive buffer.
pub fn dump(
    sock: &mut Socket,
    filter: &DumpFilter,
    mut f: impl FnMut(CtEntryView<'_>) -> Result<()>,
) -> Result<DumpSummary> {
    let mut req = MessageBuilder::new();
    request::dump(&mut req, 0, filter)?;
    let mut delivered = 0;
    let mut s = dump_raw(sock, &mut req, |m| {
        let e = CtEntryView::parse(m)?;
        if filter.matches(&e) {
            delivered += 1;
            f(e)?;
        }
        Ok(())
    })?;
    s.delivered = delivered;
    Ok(s)
}

fn is_enoent(e: &Error) -> bool {
    e.errno() == Some(libc::ENOENT)
}

/// Gets one entry by original tuple and zone; `Ok(None)` when it does not exist.
pub fn get(sock: &mut Socket, orig: &Tuple, zone: Option<u16>) -> Result<Option<CtEntry>> {
    let mut req = MessageBuilder::new();
    request::get(&mut req, 0, orig, zone)?;
    let reply = match sock.transact(&mut req) {
        Ok(r) => r,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match reply.messages().next() {
        Some(m) => Ok(CtEntryView::parse(&m?)?.to_owned()),
        None => Ok(None),
    }
}

/// Creates an entry (both tuples and a timeout are required).
pub fn create(sock: &mut Socket, e: &CtEntry) -> Result<()> {
    let mut req = MessageBuilder::new();
    request::create(&mut req, 0, e)?;
    sock.transact(&mut req)?;
    Ok(())
}

/// Creates many entries with batched requests (many per `sendmsg`); returns one result per
/// entry, in order.
pub fn create_many(sock: &mut Socket, entries: &[CtEntry]) -> Result<Vec<Result<()>>> {
    let mut req = MessageBuilder::with_capacity(entries.len() * 160);
    for e in entries {
        request::create(&mut req, 0, e)?;
    }
    let out = sock.transact_batch(&mut req)?;
    Ok(out
        .into_iter()
        .map(|r| r.map(|_| ()).map_err(Error::from))
        .collect())
}

/// Changes an existing entry (timeout, mark, status, TCP state, labels).
pub fn update(sock: &mut Socket, e: &CtEntry) -> Result<()> {
    let mut req = MessageBuilder::new();
    request::update(&mut req, 0, e)?;
    sock.transact(&mut req)?;
    Ok(())
}

/// Deletes one entry; `Ok(false)` when it did not exist.
pub fn delete(sock: &mut Socket, orig: &Tuple, zone: Option<u16>) -> Result<bool> {
    let mut req = MessageBuilder::new();
    request::delete(&mut req, 0, orig, zone, None)?;
    match sock.transact(&mut req) {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = Error::from(e);
            if is_enoent(&e) {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Flushes every entry of `family` (0 = all) in the socket's namespace.
pub fn flush(sock: &mut Socket, family: u8) -> Result<()> {
    let mut req = MessageBuilder::new();
    request::flush(&mut req, 0, family)?;
    sock.transact(&mut req)?;
    Ok(())
}

/// Flushes, kernel-side, the entries with `mark & mask == value`.
pub fn flush_mark(sock: &mut Socket, family: u8, value: u32, mask: u32) -> Result<()> {
    let mut req = MessageBuilder::new();
    request::flush_mark(&mut req, 0, family, value, mask)?;
    sock.transact(&mut req)?;
    Ok(())
}

/// Deletes the entries of `zone`. Kernels differ in whether a zone-filtered flush is
/// honoured (an older one would flush everything), so this always goes through
/// [`delete_matching`]: a zone-filtered dump on `dump_sock` with batched deletes on
/// `del_sock`.
pub fn flush_zone(
    dump_sock: &mut Socket,
    del_sock: &mut Socket,
    zone: u16,
) -> Result<DeleteSummary> {
    delete_matching(
        dump_sock,
        del_sock,
        &DumpFilter::zone(zone),
        |_| true,
        DEFAULT_DELETE_BATCH,
    )
}

/// The number of entries in the socket's namespace (`conntrack -C`).
pub fn count(sock: &mut Socket) -> Result<u32> {
    let mut req = MessageBuilder::new();
    request::count(&mut req, 0)?;
    let reply = sock.transact(&mut req)?;
    match reply.messages().next() {
        Some(m) => Ok(GlobalStats::parse(&m?)?.entries),
        None => Err(Error::Missing("IPCTNL_MSG_CT_GET_STATS reply")),
    }
}

/// Per-CPU statistics (`conntrack -S`), one element per CPU.
pub fn stats_cpu(sock: &mut Socket) -> Result<Vec<CpuStats>> {
    let mut req = MessageBuilder::new();
    request::stats_cpu(&mut req, 0)?;
    let mut out = Vec::new();
    dump_raw(sock, &mut req, |m| {
        out.push(CpuStats::parse(m)?);
        Ok(())
    })?;
    Ok(out)
}

/// How many deletes [`delete_matching`] sends per batch by default.
pub const DEFAULT_DELETE_BATCH: usize = 256;

/// What [`delete_matching`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteSummary {
    /// Entries the dump returned that matched the filter and the predicate.
    pub matched: u64,
    /// Entries deleted.
    pub deleted: u64,
    /// Entries that were already gone (`ENOENT`) when their delete arrived.
    pub vanished: u64,
}

/// Deletes every entry that matches `filter` (kernel-side where supported) and `pred`,
/// streaming: entries are read from a dump on `dump_sock`, and a delete request (original
/// tuple, zone and id, so a newer entry reusing the tuple survives) is appended to a batch
/// that is sent on `del_sock` whenever it holds `batch` requests. Memory stays bounded by one
/// receive buffer plus one batch, never the table (kube-proxy reached 12 GB collecting 7.5
/// million entries first).
///
/// Two sockets are needed: replies to the deletes must not interleave with the dump's stream.
pub fn delete_matching(
    dump_sock: &mut Socket,
    del_sock: &mut Socket,
    filter: &DumpFilter,
    mut pred: impl FnMut(&CtEntryView<'_>) -> bool,
    batch: usize,
) -> Result<DeleteSummary> {
    let batch = batch.max(1);
    let mut sum = DeleteSummary::default();
    let mut dels = MessageBuilder::with_capacity(batch * 128);
    let flush = |dels: &mut MessageBuilder, del_sock: &mut Socket, sum: &mut DeleteSummary| {
        if dels.message_count() == 0 {
            return Ok::<(), Error>(());
        }
        for r in del_sock.transact_batch(dels)? {
            match r {
                Ok(_) => sum.deleted += 1,
                Err(e) if e.errno() == Some(libc::ENOENT) => sum.vanished += 1,
                Err(e) => return Err(e.into()),
            }
        }
        dels.clear();
        Ok(())
    };
    dump(dump_sock, filter, |e| {
        if !pred(&e) {
            return Ok(());
        }
        sum.matched += 1;
        request::delete_entry(&mut dels, 0, &e)?;
        if dels.message_count() >= batch {
            flush(&mut dels, del_sock, &mut sum)?;
        }
        Ok(())
    })?;
    flush(&mut dels, del_sock, &mut sum)?;
    Ok(sum)
}

/// The multicast group of each event kind.
pub fn event_group(kind: EventKind) -> u32 {
    match kind {
        EventKind::New => NFNLGRP_CONNTRACK_NEW,
        EventKind::Update => NFNLGRP_CONNTRACK_UPDATE,
        EventKind::Destroy => NFNLGRP_CONNTRACK_DESTROY,
    }
}

/// What one [`Events::recv`] call delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// This many events were passed to the callback.
    Events(usize),
    /// The receive queue overflowed and events were lost: a mirror must resynchronise.
    Overrun,
}

/// Conntrack events (`conntrack -E`) on their own socket.
///
/// In reliable mode (`NETLINK_BROADCAST_ERROR` + `NETLINK_NO_ENOBUFS`, as conntrackd's
/// `NetlinkEventsReliable`) the kernel does not drop events for a full listener silently:
/// delivery failures are reported back to the conntrack core, which keeps destroy events
/// pending and retries them, at the price of CPU under load.
pub struct Events {
    sock: EventSocket,
    buf: RecvBuffer,
}

impl Events {
    /// Subscribes to `kinds` (e.g. all three), optionally in reliable mode.
    pub fn open(kinds: &[EventKind], reliable: bool) -> Result<Events> {
        let mut opts: SocketOptions = EventSocket::default_options();
        if reliable {
            opts.broadcast_error = true;
            opts.no_enobufs = true;
        }
        let groups: Vec<u32> = kinds.iter().map(|&k| event_group(k)).collect();
        Ok(Events {
            sock: EventSocket::with_options(Protocol::Netfilter, &opts, &groups)?,
            buf: RecvBuffer::new(),
        })
    }

    /// The underlying event socket (for polling, non-blocking mode or statistics).
    pub fn socket(&mut self) -> &mut EventSocket {
        &mut self.sock
    }

    /// Waits for the next datagram of events and passes each entry to `f`. With
    /// `nonblocking`, returns `Ok(Received::Events(0))` when nothing is queued.
    pub fn recv(
        &mut self,
        nonblocking: bool,
        mut f: impl FnMut(CtEntryView<'_>),
    ) -> Result<Received> {
        let ev = if nonblocking {
            match self.sock.try_recv_event(&mut self.buf)? {
                Some(ev) => ev,
                None => return Ok(Received::Events(0)),
            }
        } else {
            self.sock.recv_event(&mut self.buf)?
        };
        match ev {
            Event::Overrun => Ok(Received::Overrun),
            Event::Messages { messages, .. } => {
                let mut n = 0;
                for m in messages {
                    let m = m?;
                    if EventKind::of(&m).is_some() {
                        f(CtEntryView::parse(&m)?);
                        n += 1;
                    }
                }
                Ok(Received::Events(n))
            }
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}
