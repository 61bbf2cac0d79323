//! The sync loop: event sockets first, then dumps, then the events that arrived meanwhile;
//! overruns and silent kernel deletions become resyncs; conntrack is verified by periodic
//! dumps. Every change is recorded in the feed (`crate::feed::capture`).
//!
//! Threads: one sync thread owns the event sockets and applies events; during a (re)sync it
//! keeps draining the event sockets into a queue while [`fill`](crate::fill) runs the dumps,
//! and applies the queue once the dumps are in, then sweeps what the dumps did not confirm.
//! Every entry an event touches is marked with the newest generation, so the sweep never
//! removes what an event (re)created. IPv6 routes are swept only after a dump during which
//! they did not change (the kernel's IPv6 route dump skips routes silently under churn; see
//! `redump`).
//!
//! Nexthop-object events (`RTNLGRP_NEXTHOP`) are mirrored, and also decide whether the routes
//! must be resynced (see [`nexthops`](crate::nexthops)). Rule events (`RTNLGRP_IPV4_RULE`,
//! `RTNLGRP_IPV6_RULE`) feed the rule lists (see [`rules`](crate::rules)).

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nlkit_wire::consts::*;
use nlkit_wire::Messages;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

use nlkit_socket::{Event, EventSocket, Protocol, RecvBuffer, SocketOptions};

use crate::ct_silent::SilentConns;
use crate::fill::{fill, Filled};

/// Verification dumps of the IPv6 routes before a sweep, at most (see `redump`).
const V6_VERIFY_DUMPS: usize = 3;

/// Whether datagram `d` holds an IPv6 route event (`RTM_NEWROUTE`/`RTM_DELROUTE`).
fn has_ipv6_route_event(d: &[u8]) -> bool {
    Messages::new(d).flatten().any(|m| {
        matches!(m.ty(), RTM_NEWROUTE | RTM_DELROUTE)
            && m.family_header::<nlkit_wire::RtMsg>()
                .is_ok_and(|(h, _)| h.family == AF_INET6)
    })
}
use crate::nexthops::{is_nexthop_event, NexthopIds};
use crate::stop::timespec;
use crate::tables::{TableId, TableSet};
use crate::{MirrorError, Shared};

/// Bytes of queued events beyond which a sync treats the queue as lost (an overrun).
const MAX_QUEUED_BYTES: usize = 256 << 20;

/// Pause before a failed resync is tried again.
const RESYNC_RETRY: Duration = Duration::from_millis(100);
/// A periodic step that is off (a day away, re-armed when reached).
const NEVER: Duration = Duration::from_secs(86_400);

/// What woke [`Syncer::wait`].
#[derive(Debug, Default, Clone, Copy)]
struct Woken {
    /// An event socket is readable.
    events: bool,
    /// The extra descriptor is readable.
    extra: bool,
}

/// One event socket and its overrun policy.
struct EventSource {
    sock: EventSocket,
    /// The last datagram received.
    buf: RecvBuffer,
    /// Tables a lost event may concern.
    tables: TableSet,
    rcvbuf: usize,
    max: usize,
    warned: bool,
}

impl EventSource {
    fn open(
        protocol: Protocol,
        groups: &[u32],
        tables: TableSet,
        rcvbuf: usize,
        max: usize,
    ) -> Result<Self, MirrorError> {
        let opts = SocketOptions {
            rcvbuf,
            ..EventSocket::default_options()
        };
        let sock =
            EventSocket::with_options(protocol, &opts, groups).map_err(MirrorError::EventSocket)?;
        tracing::debug!(requested = rcvbuf, "event socket opened");
        Ok(EventSource {
            sock,
            buf: RecvBuffer::new(),
            tables,
            rcvbuf,
            max: max.max(rcvbuf),
            warned: false,
        })
    }

    /// ENOBUFS: double the buffer up to the cap (warning once at the cap).
    fn grow(&mut self) {
        if self.rcvbuf < self.max {
            self.rcvbuf = (self.rcvbuf * 2).min(self.max);
            let got = self.sock.set_recv_buffer(self.rcvbuf).unwrap_or(0);
            tracing::info!(
                bytes = self.rcvbuf,
                got,
                "event socket overrun: receive buffer grown"
            );
        } else if !self.warned {
            self.warned = true;
            tracing::warn!(
                bytes = self.rcvbuf,
                "event socket overrun at the receive-buffer cap: resyncing after each overrun"
            );
        }
    }
}

/// The sync side of the mirror.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    sources: Vec<EventSource>,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    queue_lost: TableSet,
    pending: TableSet,
    /// When a failed resync may be tried again.
    retry_at: Option<Instant>,
    /// When the next conntrack verification dump is due.
    next_gc: Instant,
    next_neigh: Option<Instant>,
    /// Existing nexthop objects (which of their events change routes silently).
    nexthops: NexthopIds,
    /// Tables this kernel cannot fill (nexthop objects before Linux 5.3).
    off: TableSet,
    /// Conntrack entries that may never send events (re-dumped until gone).
    silent: SilentConns,
}

impl Syncer {
    /// Opens the event sockets (joining the groups *before* any dump).
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Self, MirrorError> {
        let c = &shared.config;
        let first_verify = Instant::now() + c.ct_verify_interval.unwrap_or(NEVER);
        let mut sources = vec![EventSource::open(
            Protocol::Route,
            &[
                RTNLGRP_LINK,
                RTNLGRP_NEIGH,
                RTNLGRP_IPV4_IFADDR,
                RTNLGRP_IPV4_ROUTE,
                RTNLGRP_IPV6_IFADDR,
                RTNLGRP_IPV6_ROUTE,
                RTNLGRP_IPV4_RULE,
                RTNLGRP_IPV6_RULE,
            ],
            TableSet::all_rtnl(),
            c.event_rcvbuf,
            c.event_rcvbuf_max,
        )?];
        // Nexthop objects (kernels since 5.3): their deletion or change alters routes
        // without route notifications. Joined apart so an older kernel still mirrors.
        let mut off = TableSet::default();
        if let Err(e) = sources[0].sock.join(RTNLGRP_NEXTHOP) {
            tracing::info!(error = %e, "no nexthop-object events (kernel without nexthop objects?)");
            off.add(TableId::Nexthops);
            sources[0].tables.remove(TableId::Nexthops);
        }
        if c.conntrack {
            let mut t = TableSet::default();
            t.add(TableId::Conntrack);
            match EventSource::open(
                Protocol::Netfilter,
                &[
                    NFNLGRP_CONNTRACK_NEW,
                    NFNLGRP_CONNTRACK_UPDATE,
                    NFNLGRP_CONNTRACK_DESTROY,
                ],
                t,
                c.event_rcvbuf,
                c.event_rcvbuf_max,
            ) {
                Ok(s) => sources.push(s),
                Err(e) => {
                    tracing::warn!(error = %e, "conntrack events unavailable: not mirroring conntrack");
                    shared.conntrack_on.store(false, Ordering::Relaxed);
                }
            }
        }
        Ok(Syncer {
            shared,
            sources,
            queue: VecDeque::new(),
            queued_bytes: 0,
            queue_lost: TableSet::default(),
            pending: TableSet::default(),
            retry_at: None,
            next_gc: first_verify,
            next_neigh: None,
            nexthops: NexthopIds::default(),
            off,
            silent: SilentConns::default(),
        })
    }

    fn all_tables(&self) -> TableSet {
        let mut s = TableSet(TableSet::all_rtnl().0 & !self.off.0);
        if self.shared.conntrack_on.load(Ordering::Relaxed) {
            s.add(TableId::Conntrack);
        }
        s
    }

    /// The initial sync: every table dumped, queued events applied.
    pub(crate) fn initial_sync(&mut self) -> Result<(), MirrorError> {
        let t0 = Instant::now();
        let set = self.all_tables();
        if set.contains(TableId::Conntrack) {
            self.silent.before_initial_dump(&self.shared.tables.ct);
        }
        let synced = self.resync(set);
        if set.contains(TableId::Conntrack) {
            // Also after a failure: later dumps must not flag connections.
            self.silent.seed(&self.shared.tables.ct, t0.elapsed());
        }
        synced?;
        let ms = t0.elapsed().as_millis() as u64;
        self.shared
            .metrics
            .initial_sync_ms
            .store(ms, Ordering::Relaxed);
        self.shared.metrics.resyncs.store(0, Ordering::Relaxed);
        tracing::info!(ms, "mirror initial sync complete");
        Ok(())
    }

    /// Waits until an event socket or `extra` is readable, or until `deadline` (`None`:
    /// no deadline). Returns early, with nothing set, on a signal.
    fn wait(&self, extra: Option<BorrowedFd<'_>>, deadline: Option<Instant>) -> Woken {
        let mut fds: Vec<PollFd<'_>> = self
            .sources
            .iter()
            .map(|s| PollFd::new(&s.sock, PollFlags::IN))
            .collect();
        if let Some(fd) = &extra {
            fds.push(PollFd::from_borrowed_fd(*fd, PollFlags::IN));
        }
        let ts = deadline.map(|d| timespec(d.saturating_duration_since(Instant::now())));
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) if n > 0 => {
                let ready = |f: &PollFd<'_>| !f.revents().is_empty();
                let n_src = self.sources.len();
                Woken {
                    events: fds[..n_src].iter().any(ready),
                    extra: fds[n_src..].iter().any(ready),
                }
            }
            Ok(_) | Err(Errno::INTR) => Woken::default(),
            Err(e) => {
                // poll on descriptors we own fails only without memory: report nothing
                // readable; the caller's loop comes back here.
                tracing::warn!(error = %e, "poll failed");
                Woken::default()
            }
        }
    }

    /// Reads every queued datagram from every source. `apply`: apply now, else queue.
    fn drain(&mut self, apply: bool) {
        for i in 0..self.sources.len() {
            loop {
                let src = &mut self.sources[i];
                let tables = src.tables;
                let got = match src.sock.try_recv_event(&mut src.buf) {
                    Ok(Some(Event::Messages { .. })) => Ok(true),
                    Ok(Some(Event::Overrun)) => Ok(false),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                match got {
                    Ok(true) => {
                        let d = src.buf.unread().to_vec();
                        if apply {
                            self.apply_datagram(&d);
                        } else if self.queued_bytes + d.len() > MAX_QUEUED_BYTES {
                            for t in tables.iter() {
                                self.queue_lost.add(t);
                            }
                        } else {
                            self.queued_bytes += d.len();
                            self.queue.push_back(d);
                        }
                    }
                    Ok(false) => {
                        self.shared.metrics.overruns.fetch_add(1, Ordering::Relaxed);
                        src.grow();
                        for t in tables.iter() {
                            self.pending.add(t);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event socket receive failed");
                        break;
                    }
                }
            }
        }
    }

    fn apply_datagram(&mut self, d: &[u8]) {
        let gen = self.shared.gen.load(Ordering::Relaxed);
        let mut n = 0u64;
        for m in Messages::new(d) {
            let Ok(m) = m else { break };
            if is_nexthop_event(m.ty()) && self.nexthops.on_event(&m) {
                self.pending.add(TableId::Routes4);
                self.pending.add(TableId::Routes6);
            }
            let f =
                crate::feed::capture::apply_event(&self.shared.tables, &self.shared.feed, &m, gen);
            for t in f.resync.iter() {
                self.pending.add(t);
            }
            n += 1;
        }
        self.shared.metrics.events.fetch_add(n, Ordering::Relaxed);
    }

    /// Re-dumps `set`, applies what arrived meanwhile, sweeps what the dumps did not confirm.
    fn resync(&mut self, set: TableSet) -> Result<(), MirrorError> {
        self.redump(set, true)
    }

    /// [`resync`](Self::resync); `count`: whether it counts in the `resyncs` metric (a
    /// routine conntrack verification does not: it is no recovery).
    fn redump(&mut self, set: TableSet, count: bool) -> Result<(), MirrorError> {
        let set = TableSet(set.0 & !self.off.0);
        let t0 = Instant::now();
        let shared = self.shared.clone();
        if set.contains(TableId::Routes4) || set.contains(TableId::Routes6) {
            // Before the route dumps: a nexthop created after this dump sends an event.
            self.nexthops.reload();
        }
        // A table empty before its dump holds only what that dump (or a later event) put
        // there: after a single-attempt dump there is nothing to sweep, and sweeping a large
        // table is a full pass over it (most of an initial sync's time otherwise).
        let mut was_empty = TableSet::default();
        for t in set.iter() {
            if shared.tables.len(t) == 0 {
                was_empty.add(t);
            }
        }
        let (results, quiet6) = self.fill_and_apply(set);
        tracing::debug!(us = t0.elapsed().as_micros() as u64, "dumps applied");
        let sweeps = |f: &Filled| !(f.attempts == 1 && was_empty.contains(f.table));
        // The kernel's IPv6 route dump can silently miss routes: when the fib6 tree changes
        // between two parts of a dump, routes present throughout are skipped and the dump is
        // not flagged NLM_F_DUMP_INTR (measured here: 3,700 of 15,000 routes missed by one
        // dump while routes it had sent were deleted and others added; IPv4 dumps, which
        // resume by key, missed none). A sweep after such a dump removes routes the kernel
        // still has (the churn test's block of missing IPv6 routes, right after the deleted
        // ones). Consecutive dumps under the same churn skip the same block, so agreement
        // between dumps proves nothing; a dump during which the IPv6 routes did not change
        // is exact. So IPv6 routes are swept only after a quiet dump (no IPv6 route event
        // and no event loss while it ran): the first one, or one of up to
        // `V6_VERIFY_DUMPS` verification dumps (each confirms what it sees; the sweep,
        // below the first dump's generation, removes only what no dump and no event
        // confirmed). Without one the table is left unswept and resynced shortly: a stale
        // route may stay a while, a live one never goes.
        let mut v6_verified = true;
        let v6_gen = results.iter().find_map(|r| match r {
            Ok(f) if f.table == TableId::Routes6 && sweeps(f) => Some(f.gen),
            _ => None,
        });
        if v6_gen.is_some() {
            let mut only = TableSet::default();
            only.add(TableId::Routes6);
            v6_verified = quiet6;
            for _ in 0..V6_VERIFY_DUMPS {
                if v6_verified {
                    break;
                }
                let (r, quiet) = self.fill_and_apply(only);
                if let Some(e) = r.into_iter().find_map(Result::err) {
                    tracing::warn!(error = %e, "IPv6 route verification dump failed: not sweeping");
                    break;
                }
                v6_verified = quiet;
            }
            if !v6_verified {
                tracing::debug!("IPv6 routes changed during every dump: not sweeping them now");
                self.pending.add(TableId::Routes6);
                self.retry_at = Instant::now().checked_add(RESYNC_RETRY);
            }
        }
        let lost = std::mem::take(&mut self.queue_lost);
        let mut first_err = None;
        for r in results {
            match r {
                Ok(f) => {
                    let swept = if !sweeps(&f) || (f.table == TableId::Routes6 && !v6_verified) {
                        0
                    } else {
                        crate::feed::capture::sweep(&shared.tables, &shared.feed, &f)
                    };
                    if f.attempts > 1 {
                        shared
                            .metrics
                            .dump_retries
                            .fetch_add(u64::from(f.attempts - 1), Ordering::Relaxed);
                    }
                    tracing::debug!(
                        table = f.table.name(),
                        messages = f.messages,
                        interrupted = f.interrupted,
                        swept,
                        "table synced"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "table dump failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        for t in lost.iter() {
            self.pending.add(t);
        }
        if set.contains(TableId::Conntrack) {
            self.silent.after_dump(&shared.tables.ct, t0.elapsed());
        }
        shared.feed.notify();
        let m = &shared.metrics;
        if count {
            m.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        m.last_sync_us
            .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        match first_err {
            Some(e) => Err(MirrorError::Dump(e)),
            None => Ok(()),
        }
    }

    /// Fills `set` (draining the event sockets into the queue meanwhile), then applies the
    /// events that arrived during the dumps, in order, marked with the newest generation.
    /// Also returns whether the IPv6 routes were quiet meanwhile: no IPv6 route event
    /// arrived, none was lost, no event socket overran.
    fn fill_and_apply(
        &mut self,
        set: TableSet,
    ) -> (Vec<Result<Filled, nlkit_socket::Error>>, bool) {
        let shared = self.shared.clone();
        let overruns = shared.metrics.overruns.load(Ordering::Relaxed);
        let results = fill(&shared.tables, &shared.feed, set, &shared.gen, |finished| {
            if self.wait(Some(finished), None).events {
                self.drain(false);
            }
        });
        // The notification of a change made during the dumps is queued on the event
        // socket before the change's system call returns: read what is there.
        self.drain(false);
        let quiet6 = shared.metrics.overruns.load(Ordering::Relaxed) == overruns
            && !self.queue_lost.contains(TableId::Routes6)
            && !self.queue.iter().any(|d| has_ipv6_route_event(d));
        while let Some(d) = self.queue.pop_front() {
            self.apply_datagram(&d);
        }
        self.queued_bytes = 0;
        (results, quiet6)
    }

    /// The earliest of the periodic steps' deadlines (`None`: nothing periodic is due).
    fn next_deadline(&self, ct_on: bool) -> Option<Instant> {
        let retry = if self.pending.is_empty() {
            None
        } else {
            self.retry_at
        };
        [
            retry,
            ct_on.then_some(self.next_gc),
            self.next_neigh,
            // Already pending (perhaps waiting for a retry): not a deadline of its own.
            self.silent
                .due()
                .filter(|_| !self.pending.contains(TableId::Conntrack)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs until the mirror's [`Shutdown`](crate::Shutdown) is triggered: waits in one
    /// `poll(2)` on the event sockets and the shutdown descriptor, with the earliest periodic
    /// deadline (conntrack gc, neighbour resync, conntrack verification, a resync retry) as
    /// its timeout. No fixed sleep, no stop flag polled.
    pub(crate) fn run(&mut self) {
        let shared = self.shared.clone();
        let shutdown = shared.shutdown.fd();
        let ct_on = shared.conntrack_on.load(Ordering::Relaxed);
        if let Some(every) = shared.config.neigh_resync_interval {
            self.next_neigh = Instant::now().checked_add(every);
        }
        loop {
            let pending_now = !self.pending.is_empty() && self.retry_at.is_none();
            let deadline = if pending_now {
                Some(Instant::now())
            } else {
                self.next_deadline(ct_on)
            };
            let woken = self.wait(Some(shutdown), deadline);
            if woken.extra {
                return;
            }
            if woken.events {
                self.drain(true);
                self.shared.feed.notify();
            }
            let now = Instant::now();
            if self.retry_at.is_some_and(|t| now >= t) {
                self.retry_at = None;
            }
            if !self.pending.is_empty() && self.retry_at.is_none() {
                let set = std::mem::take(&mut self.pending);
                if let Err(e) = self.resync(set) {
                    tracing::warn!(error = %e, "resync failed; retrying shortly");
                    for t in set.iter() {
                        self.pending.add(t);
                    }
                    self.retry_at = Instant::now().checked_add(RESYNC_RETRY);
                }
            }
            let now = Instant::now();
            if let (Some(every), Some(due)) = (shared.config.neigh_resync_interval, self.next_neigh)
            {
                if now >= due {
                    self.pending.add(TableId::Neigh4);
                    self.pending.add(TableId::Neigh6);
                    self.next_neigh = now.checked_add(every);
                }
            }
            if self.silent.due().is_some_and(|t| now >= t)
                && !self.pending.contains(TableId::Conntrack)
            {
                let mut set = TableSet::default();
                set.add(TableId::Conntrack);
                // Its `after_dump` schedules the next one, also after a failure.
                if let Err(e) = self.redump(set, false) {
                    tracing::warn!(error = %e, "conntrack verification dump failed");
                }
            }
            if ct_on && now >= self.next_gc {
                // The periodic verification dump: conntrack entries never expire in the
                // mirror (see `conn`), so this dump's sweep removes what the kernel deleted
                // without an event, and its corrections in both directions become
                // synthesized feed events.
                if !self.pending.contains(TableId::Conntrack) {
                    let mut set = TableSet::default();
                    set.add(TableId::Conntrack);
                    if let Err(e) = self.redump(set, false) {
                        tracing::warn!(error = %e, "conntrack verification dump failed");
                    }
                }
                // At least 1 s apart: a zero interval must not make the loop spin.
                let every = shared.config.ct_verify_interval.unwrap_or(NEVER);
                self.next_gc = Instant::now() + every.max(Duration::from_secs(1));
            }
        }
    }
}
