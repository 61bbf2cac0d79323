//! Filling tables from kernel dumps: one receive thread and one apply thread per table, all
//! requested tables at once, while the caller keeps draining event sockets.
//!
//! The receive thread only runs `recvmsg` (where the kernel builds each dump chunk) and hands
//! whole datagrams to the apply thread through a bounded channel; the apply thread parses keys
//! and updates the table in order. On two cores this overlaps the kernel's work with ours, so
//! a sync costs about as much as the slower of the two rather than their sum. A dump the
//! kernel flags `NLM_F_DUMP_INTR` is retried (up to [`MAX_ATTEMPTS`]) with a new generation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, IfInfoMsg, MessageBuilder, Messages, NdMsg, NfGenMsg, RtMsg};

use crate::kernel::{KernelSocket, KernelSocketError};
use crate::tables::{TableId, TableSet, Tables};

/// Attempts per table before a still-inconsistent dump is accepted (and logged).
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// The dump request for a table.
pub(crate) fn dump_request(t: TableId) -> (i32, Vec<u8>) {
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
    (proto as i32, b.as_bytes().to_vec())
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

/// Dumps table `t` into `tables`, taking generations from `gen_source`.
fn fill_one(
    tables: &Tables,
    t: TableId,
    gen_source: &AtomicU64,
) -> Result<Filled, KernelSocketError> {
    let (proto, mut req) = dump_request(t);
    let mut sock = KernelSocket::open(proto, 0)?;
    let _ = sock.set_recv_buffer(1 << 20);
    let mut filled = Filled {
        table: t,
        gen: 0,
        attempts: 0,
        messages: 0,
        interrupted: false,
    };
    while filled.attempts < MAX_ATTEMPTS {
        filled.attempts += 1;
        let gen = gen_source.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = sync_channel::<Vec<u8>>(64);
        let end = std::thread::scope(|s| {
            s.spawn(move || {
                for chunk in rx {
                    for m in Messages::new(&chunk).flatten() {
                        tables.apply_dump(t, &m, gen);
                    }
                }
            });
            let r = sock.dump_chunks(&mut req, |chunk| {
                // The apply thread only stops when the channel closes.
                let _ = tx.send(chunk.to_vec());
            });
            // Closing the channel ends the apply thread, which the scope then joins.
            drop(tx);
            r
        })?;
        filled.gen = gen;
        filled.messages = end.messages;
        filled.interrupted = end.interrupted;
        if !end.interrupted {
            break;
        }
        tracing::debug!(table = t.name(), "kernel dump interrupted; retrying");
    }
    if filled.interrupted {
        tracing::warn!(
            table = t.name(),
            "kernel dump still inconsistent after retries"
        );
    }
    Ok(filled)
}

/// Fills every table in `set` concurrently. `idle` is called every few milliseconds on the
/// calling thread while the dumps run (the sync loop drains its event sockets there).
pub(crate) fn fill(
    tables: &Arc<Tables>,
    set: TableSet,
    gen_source: &AtomicU64,
    mut idle: impl FnMut(),
) -> Vec<Result<Filled, KernelSocketError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = set
            .iter()
            .map(|t| {
                let tables = &**tables;
                std::thread::Builder::new()
                    .name(format!("mirror-dump-{}", t.name()))
                    .spawn_scoped(s, move || fill_one(tables, t, gen_source))
            })
            .collect();
        let started = Instant::now();
        loop {
            let pending = handles
                .iter()
                .filter(|h| h.as_ref().is_ok_and(|h| !h.is_finished()))
                .count();
            if pending == 0 {
                break;
            }
            idle();
            if started.elapsed() < Duration::from_millis(2) {
                std::thread::yield_now();
            }
        }
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(KernelSocketError::Io(std::io::Error::other(
                        "dump thread panicked",
                    )))
                }),
                Err(e) => Err(KernelSocketError::Io(e)),
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
        TableId::Conntrack => tables.ct.sweep(g),
    }
}
