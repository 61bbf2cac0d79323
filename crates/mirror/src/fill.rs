//! Filling tables from kernel dumps: every requested table at once, each read by one or two
//! threads through one `nlkit_socket::SharedDump`, while the caller keeps draining event
//! sockets.
//!
//! Each reading thread receives a whole dump chunk into its own buffer (refills are serialised
//! by the shared dump; the kernel builds the chunk inside that `recvmsg`) and applies its
//! messages straight from the buffer: no copy, no hand-off between threads. With two readers
//! the kernel's work on the next chunk overlaps ours on the current one. Inserts run in batches
//! under one change-sequence write guard. A dump the kernel flags `NLM_F_DUMP_INTR` is
//! restarted (`nlkit_socket::consistent_dump`, up to [`MAX_ATTEMPTS`]) with a new generation.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustix::event::{eventfd, EventfdFlags};

use nlkit_socket::{consistent_dump, DumpBuffer, Error, Pool, Protocol, SharedDump, SocketOptions};
use nlkit_wire::consts::*;
use nlkit_wire::{FibRuleHdr, IfAddrMsg, IfInfoMsg, MessageBuilder, NdMsg, NfGenMsg, NhMsg, RtMsg};

use crate::tables::{TableId, TableSet, Tables};

/// Attempts per table before a still-inconsistent dump is accepted (and logged).
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// The dump request for a table (see [`TableId::dump_request`]).
pub(crate) fn dump_request(t: TableId) -> (Protocol, MessageBuilder) {
    let mut b = MessageBuilder::new();
    let flags = NLM_F_REQUEST | NLM_F_DUMP;
    let proto = match t {
        TableId::Links => {
            b.begin(RTM_GETLINK, flags, 0);
            b.header(&IfInfoMsg::default());
            NETLINK_ROUTE
        }
        TableId::Addrs4 | TableId::Addrs6 => {
            b.begin(RTM_GETADDR, flags, 0);
            let family = if t == TableId::Addrs4 {
                AF_INET
            } else {
                AF_INET6
            };
            b.header(&IfAddrMsg {
                family,
                ..Default::default()
            });
            NETLINK_ROUTE
        }
        TableId::Routes4 | TableId::Routes6 => {
            b.begin(RTM_GETROUTE, flags, 0);
            let family = if t == TableId::Routes4 {
                AF_INET
            } else {
                AF_INET6
            };
            b.header(&RtMsg {
                family,
                ..Default::default()
            });
            NETLINK_ROUTE
        }
        TableId::Neigh4 | TableId::Neigh6 => {
            b.begin(RTM_GETNEIGH, flags, 0);
            let family = if t == TableId::Neigh4 {
                AF_INET
            } else {
                AF_INET6
            };
            b.header(&NdMsg {
                family,
                ..Default::default()
            });
            NETLINK_ROUTE
        }
        TableId::Nexthops => {
            b.begin(RTM_GETNEXTHOP, flags, 0);
            b.header(&NhMsg::default());
            NETLINK_ROUTE
        }
        TableId::Rules4 | TableId::Rules6 => {
            b.begin(RTM_GETRULE, flags, 0);
            let family = if t == TableId::Rules4 {
                AF_INET
            } else {
                AF_INET6
            };
            b.header(&FibRuleHdr {
                family,
                ..Default::default()
            });
            NETLINK_ROUTE
        }
        TableId::Conntrack => {
            b.begin(
                nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET),
                flags,
                0,
            );
            b.header(&NfGenMsg {
                family: AF_UNSPEC,
                version: NFNETLINK_V0,
                res_id: 0,
            });
            NETLINK_NETFILTER
        }
    };
    // The builder cannot fail on a header-only message.
    let _ = b.finish();
    let proto = if proto == NETLINK_NETFILTER {
        Protocol::Netfilter
    } else {
        Protocol::Route
    };
    (proto, b)
}

/// Result of filling one table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filled {
    pub table: TableId,
    /// Generation of the last (accepted) attempt: sweep below it.
    pub gen: u64,
    pub attempts: u32,
    pub messages: usize,
    pub interrupted: bool,
}

/// Reads messages of a shared dump on the calling thread and applies them. No write guard is
/// held here: each store takes one around the changes it actually makes, so re-dumping a
/// table that did not change flags no client dump as interrupted, and a thread blocked in
/// `recvmsg` never holds a table "in flight".
fn consume(tables: &Tables, t: TableId, dump: &SharedDump, gen: u64) -> Result<usize, Error> {
    let mut buf = DumpBuffer::with_capacity(64 * 1024);
    let mut n = 0;
    while let Some(m) = dump.next(&mut buf)? {
        tables.apply_dump(t, &m, gen);
        n += 1;
    }
    Ok(n)
}

/// Threads reading one table's dump: two for the tables that can be large (the kernel builds
/// the next chunk in one thread's `recvmsg` while the other applies its chunk), one otherwise.
fn consumers(t: TableId) -> usize {
    match t {
        TableId::Routes4 | TableId::Routes6 | TableId::Conntrack => 2,
        _ => 1,
    }
}

/// Dumps table `t` into `tables`, taking generations from `gen_source`; a dump the kernel
/// flags inconsistent is restarted (up to [`MAX_ATTEMPTS`]).
fn fill_one(tables: &Tables, t: TableId, gen_source: &AtomicU64) -> Result<Filled, Error> {
    let (proto, req) = dump_request(t);
    let opts = SocketOptions {
        rcvbuf: 1 << 20,
        ..SocketOptions::default()
    };
    let pool = Pool::new(proto, opts);
    let mut last_gen = 0;
    let t0 = Instant::now();
    let done = consistent_dump(&pool, &req, MAX_ATTEMPTS, |dump, attempt| {
        if attempt > 1 {
            tracing::debug!(
                table = t.name(),
                attempt,
                "kernel dump interrupted; retrying"
            );
        }
        let gen = gen_source.fetch_add(1, Ordering::Relaxed) + 1;
        last_gen = gen;
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..consumers(t))
                .map(|_| s.spawn(|| consume(tables, t, dump, gen)))
                .collect();
            let mut n = consume(tables, t, dump, gen);
            for h in helpers {
                let r = h
                    .join()
                    .unwrap_or(Err(Error::ThreadPanicked { thread: "dump" }));
                n = match (n, r) {
                    (Ok(a), Ok(b)) => Ok(a + b),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
            }
            n
        })
    })?;
    if std::env::var_os("NLKIT_MIRROR_PROFILE").is_some() {
        eprintln!(
            "PROFILE fill {} {:?} {} msgs",
            t.name(),
            t0.elapsed(),
            done.value
        );
    }
    tables.dump_done(t, last_gen);
    if !done.consistent {
        tracing::warn!(
            table = t.name(),
            "kernel dump still inconsistent after retries"
        );
    }
    Ok(Filled {
        table: t,
        gen: last_gen,
        attempts: done.attempts,
        messages: done.value,
        interrupted: !done.consistent,
    })
}

/// Counts a dump thread as finished when dropped (also when it panics), then wakes the
/// caller through the eventfd: the count is bumped before the write, so a caller that saw
/// the count short and then waits on the eventfd is woken.
struct FinishedSignal<'a> {
    finished: &'a AtomicUsize,
    wake: &'a OwnedFd,
}

impl Drop for FinishedSignal<'_> {
    fn drop(&mut self) {
        self.finished.fetch_add(1, Ordering::Release);
        // An eventfd write fails only when the counter would overflow (it is then readable).
        let _ = rustix::io::write(self.wake, &1u64.to_ne_bytes());
    }
}

/// Fills every table in `set` concurrently. While the dumps run, `idle` is called on the
/// calling thread with a descriptor that becomes readable when a dump thread finishes: it
/// waits on that descriptor together with its own (the sync loop drains its event sockets
/// there) and returns; it is called again until every dump is done. No timeout, no polling.
pub(crate) fn fill(
    tables: &Arc<Tables>,
    set: TableSet,
    gen_source: &AtomicU64,
    mut idle: impl FnMut(BorrowedFd<'_>),
) -> Vec<Result<Filled, Error>> {
    let wake = match eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK) {
        Ok(fd) => Some(fd),
        Err(e) => {
            // Without it the dumps still run; events wait in the socket queue meanwhile
            // (an overflow there is an overrun, which resyncs).
            tracing::warn!(error = %e, "eventfd failed: not draining events during the dumps");
            None
        }
    };
    let finished = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = set
            .iter()
            .map(|t| {
                let tables = &**tables;
                let (finished, wake) = (&finished, wake.as_ref());
                std::thread::Builder::new()
                    .name(format!("mirror-dump-{}", t.name()))
                    .spawn_scoped(s, move || {
                        let _done = wake.map(|wake| FinishedSignal { finished, wake });
                        fill_one(tables, t, gen_source)
                    })
            })
            .collect();
        let started = handles.iter().filter(|h| h.is_ok()).count();
        if let Some(wake) = &wake {
            while finished.load(Ordering::Acquire) < started {
                idle(wake.as_fd());
                // Reset the counter (EAGAIN: nothing finished, `idle` woke for its own fds).
                let _ = rustix::io::read(wake, &mut [0u8; 8]);
            }
        }
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or(Err(Error::ThreadPanicked { thread: "dump" })),
                Err(e) => Err(Error::Sys {
                    op: "spawn a dump thread",
                    errno: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::AGAIN),
                }),
            })
            .collect()
    })
}

/// Removes what a fill did not confirm.
pub(crate) fn sweep(tables: &Tables, f: &Filled) -> usize {
    let g = f.gen;
    match f.table {
        TableId::Links => tables.links.sweep(g, |_, _| true),
        TableId::Addrs4 => tables.addrs[0].sweep(g, |_, _| true),
        TableId::Addrs6 => tables.addrs[1].sweep(g, |_, _| true),
        TableId::Routes4 => tables.routes[0].sweep(g, |_, _| true),
        TableId::Routes6 => tables.routes[1].sweep(g, |_, _| true),
        TableId::Neigh4 => tables.neigh[0].sweep(g, |_, _| true),
        TableId::Neigh6 => tables.neigh[1].sweep(g, |_, _| true),
        TableId::Nexthops => tables.nexthops.sweep(g, |_, _| true),
        // Published whole when their dump ended (`Tables::dump_done`).
        TableId::Rules4 | TableId::Rules6 => 0,
        TableId::Conntrack => tables.ct.sweep(g),
    }
}
