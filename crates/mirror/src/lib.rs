//! # nlkit-mirror
//!
//! A live, consistent copy of the kernel's links, addresses, routes, neighbours and policy rules
//! (IPv4 and IPv6), nexthop objects and conntrack entries, kept in shared-memory tables that
//! local clients can map read-only, and served over a Unix `SOCK_SEQPACKET` socket in the
//! kernel's own Netlink message format. This is the library behind `nlkit mirror`.
//!
//! ## Storage
//! Every table is one `nlkit_shm::SharedMap` in one region (a sealed memfd, [`Tables`]):
//! fixed-capacity type-stable slots on nulls-terminated chains, records inline in the slot
//! when they fit (else in a size-class heap), written under a mutex in the mirror and read lock-free — by the mirror's own server
//! and by clients alike — with generation words validating every read. A record is the
//! kernel's message bytes with a normalised header (conntrack: packed without the tuple
//! nests, `nlkit_view::ct_pack`); the maps' keys and layouts are `nlkit_view::schema`'s. There
//! is one copy of each entry: the map is the table. Capacities ([`Capacities`]) are fixed;
//! slot arrays are sparse in tmpfs, so they cost memory only once used.
//!
//! A client asks for the region with a request of type `nlkit_view::schema::MSG_MAP` (no
//! payload) on the socket: a peer of the mirror's uid or root is answered with one `MSG_MAP`
//! message (payload `MAP_VERSION`, a `u32`) carrying the memfd in `SCM_RIGHTS`; anyone else
//! gets `EPERM` and no descriptor. The seals let it map the region `PROT_READ` only, and the
//! file never shrinks, so a client's mapping never faults; a client that crashes holds
//! nothing (no lock or reference count lives in the region).
//!
//! ## Staying in sync
//! The event sockets join their multicast groups first; then every table is filled from a
//! kernel dump (`nlkit_socket::consistent_dump`; one or two reading threads per table, all
//! tables at once) while
//! the events that arrive meanwhile are queued, and the queue is applied last. `ENOBUFS` on an
//! event socket grows its receive buffer (doubling up to a cap, warning once) and resyncs the
//! tables it feeds: dump again, mark what the dump confirms with a new generation, sweep the
//! rest. Kernel dumps flagged `NLM_F_DUMP_INTR` are retried. Events that imply silent kernel
//! deletions — a link deleted or losing carrier/admin state, an IPv4 address removed, one
//! nexthop of an IPv6 ECMP route deleted, a nexthop object (`ip nexthop`) deleted or changed —
//! trigger a resync of the routes (and neighbours) they may have removed; a link deleted or
//! down also resyncs the nexthop objects (the kernel flushes those through it silently), and
//! rules naming a device or a `goto` target are re-dumped when it may have changed their state. Conntrack entries never expire in the mirror (traffic refreshes the kernel's timer
//! without an event): they leave on a destroy event or when the periodic verification dump
//! ([`MirrorConfig::ct_verify_interval`]) no longer lists them, and their listed timeouts are
//! as of the kernel's last report.
//!
//! ## The change feed
//! Every change applied — kernel events, what a resync dump changed or its sweep removed — is
//! appended after the table write to one bounded log with a position per change and a random
//! epoch per mirror start. On a mirror socket `Socket::join_group` follows it, and
//! `Socket::mirror_subscribe` (`nlkit_socket::feed`) adds a snapshot consistent at one position
//! followed by every later change, or a resume from a position (answered `-ESTALE`, "resync
//! required", once the log no longer holds it). Each event is the kernel's message with a
//! trailing `nlkit_wire::feed::FeedMark` attribute; deletions the kernel never announces are
//! events flagged `FEED_SYNTHESIZED`. A subscriber that stops reading gets an exact overrun
//! notice ([`MirrorConfig::feed_max_lag`]); nobody else is held up. The same changes, at the
//! same positions, are published in a ring in the shared region
//! ([`MirrorConfig::feed_ring_bytes`], `nlkit_view::schema::FEED_OBJECT`) that clients map
//! read-only and follow with a futex wait, once per batch the sync thread applies.
//! Conntrack entries that existed before the mirror started may never send events (with
//! `net.netfilter.nf_conntrack_events = 2`, the default, the kernel gives a connection its
//! event cache only if some ctnetlink listener existed on the host when it was created): while
//! any of them is still in the table, conntrack is re-dumped every ten times the dump's
//! duration (1 s to 60 s), and the sweep drops what the kernel deleted silently.
//! The sync thread waits in one `poll(2)` on its event sockets, the [`Shutdown`] descriptor
//! and the earliest periodic deadline; nothing sleeps.
//!
//! ## Serving
//! Gets and dumps for `RTM_GETLINK`, `RTM_GETADDR`, `RTM_GETROUTE`, `RTM_GETNEIGH`,
//! `RTM_GETNEXTHOP` (the kernel's dump filters, in id order), `RTM_GETRULE` (dumps, in the
//! kernel's order) and ctnetlink `IPCTNL_MSG_CT_GET` are answered from the tables through a handler registry in the
//! spirit of `rtnl_register`; as in the kernel, a get with either bit of `NLM_F_DUMP`
//! (`NLM_F_ROOT` or `NLM_F_MATCH`) is a dump. One epoll thread holds the idle connections and
//! a few serving threads answer the ones with a request pending. A dump spans many reads without any lock: each table has a
//! [`ChangeSeq`], and a dump that overlapped a change carries `NLM_F_DUMP_INTR`
//! (`nlkit_socket::consistent_dump` restarts it, as it does a kernel dump). Writes (new/delete route, address, neighbour, conntrack) go to
//! the kernel through the worker process; the kernel's ack or error, with its extended-ack text,
//! goes back to the client, and the change reaches the tables through events. Writes of
//! different clients are pipelined to the worker; each has a deadline
//! ([`MirrorConfig::write_timeout`]), and a late, stopped or dead worker is replaced.
//!
//! ## Clients
//! Open the socket on the mirror with `nlkit_socket::Socket::connect_unix(path, protocol)` (or
//! a pool of connections with `nlkit_socket::Pool::connect_unix`): it is the same `Socket` as
//! for the kernel, so `transact`, `transact_batch`, `dump`, `SharedDump`, `consistent_dump` and
//! the typed requests of `nlkit-route` and `nlkit-conntrack` work on the mirror unchanged.
//!
//! ```no_run
//! use nlkit_socket::{Protocol, Socket};
//! use nlkit_wire::{consts::*, MessageBuilder, RtMsg};
//!
//! let mut sock = Socket::connect_unix(nlkit_mirror::default_socket_path(), Protocol::Route)?;
//! let mut req = MessageBuilder::new();
//! req.begin(RTM_GETROUTE, NLM_F_DUMP, 0);
//! req.header(&RtMsg { family: AF_INET, ..Default::default() });
//! req.finish().unwrap();
//! let end = sock.dump(&mut req, |_route| Ok::<(), nlkit_socket::Error>(()))?;
//! println!("{} IPv4 routes from the mirror", end.received);
//! # Ok::<(), nlkit_socket::Error>(())
//! ```
//!
//! ## Privileges
//! - The mirror process reads: rtnetlink dumps and groups need no privilege; ctnetlink dumps and
//!   events need `CAP_NET_ADMIN` (in the network namespace's user namespace), as does
//!   `SO_RCVBUFFORCE` (without it the buffer is capped by `net.core.rmem_max`).
//! - The server threads parse client input; they hold no kernel socket and only read the
//!   tables. Clients are checked with `SO_PEERCRED` (same uid or root) and the socket is 0600,
//!   in a directory the mirror creates 0700 (an existing one must be owned by the mirror's
//!   uid or root and not group/other writable: [`MirrorError::UnsafeSocketDir`]). A lock file
//!   beside the socket is held for the mirror's life, so a second mirror on the same path is
//!   refused ([`MirrorError::AlreadyRunning`]); a mirror removes only the socket it bound.
//! - Clients verify the server in turn: `Socket::connect_unix` refuses a server that runs as
//!   neither the client's uid nor root (`nlkit_socket::Error::UntrustedPeer`).
//! - Idle clients cost a descriptor, not a thread, and are closed after
//!   [`MirrorConfig::client_idle_timeout`]; a client over [`MirrorConfig::max_clients`] is
//!   answered with `EBUSY` and a text; one that stops reading is dropped after
//!   [`MirrorConfig::client_send_timeout`].
//! - Kernel writes (which need `CAP_NET_ADMIN`) run in the worker process
//!   ([`WriterMode::Worker`]); with [`WriterMode::Disabled`] the mirror never writes.
//! - Capabilities are per process here: the mirror keeps `CAP_NET_ADMIN` for ctnetlink reads.
//!   See `contrib/nlkit-mirror.service` for the sandboxing the unit applies.
//!
//! ## Use
//! ```no_run
//! use nlkit_mirror::{Mirror, MirrorConfig, Shutdown, WriterMode};
//!
//! // In `main`, before anything else, so the worker process can start:
//! nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry);
//!
//! let shutdown = Shutdown::new()?;
//! // A SIGTERM/SIGINT handler writes the shutdown pipe, e.g. with signal-hook:
//! // signal_hook::low_level::pipe::register(SIGTERM, shutdown.signal_pipe()?)?;
//! let config = MirrorConfig {
//!     metrics_addr: Some("127.0.0.1:9464".parse().unwrap()),
//!     writer: WriterMode::Worker,
//!     ..MirrorConfig::default()
//! };
//! // Returns once the initial sync is done.
//! let mirror = Mirror::start_with(config, shutdown.clone()).unwrap();
//! println!("serving on {}", mirror.socket_path().display());
//! mirror.run().unwrap(); // clean shutdown once `shutdown` is triggered
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

mod conn;
/// The compact conntrack record format, shared with the clients (`nlkit-view`).
mod ct_pack {
    pub use nlkit_view::ct_pack::*;
}
mod ct_silent;
mod feed;
mod fill;
/// The keys of the tables, shared with the clients (`nlkit-view`).
mod keys {
    pub use nlkit_view::keys::*;
    pub use nlkit_view::TableId;
}
mod metrics;
mod nexthops;
mod notify;
mod route_store;
mod routes;
mod rules;
mod server;
mod stop;
mod store;
mod sync;
mod tables;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use conn::CtStore;
pub use keys::{AddrKey, LinkKey, NeighKey, NexthopKey, Route4Key, RouteKey, StoreKey};
pub use metrics::Metrics;
pub use nlkit_table::{ChangeSeq, SeqSnapshot, WriteGuard};
pub use notify::sd_notify;
pub use route_store::RouteStore;
pub use rules::RuleList;
pub use server::{default_socket_path, DirProblem, MAX_PROTOCOL_ERRORS};
pub use stop::Shutdown;
pub use store::{Store, StoredEntry};
pub use tables::{dump_request, Capacities, TableId, TableSet, Tables};
pub use writer::{
    kernel_transact, register_worker_handlers, worker_registry, WriterMode, WORKER_HANDLER_ID,
    WORKER_HANDLER_NAME,
};

/// Errors starting or running the mirror: the one error type of this crate.
///
/// A variant that wraps a lower layer's error says what the mirror was doing and leads to
/// the cause through `source()` (print it with `{:#}` of `anyhow`, or walk the chain):
///
/// ```
/// use std::error::Error as _;
/// let kernel = nlkit_wire::KernelError { errno: 1, ..Default::default() };
/// let e = nlkit_mirror::MirrorError::EventSocket(nlkit_socket::Error::Kernel(kernel));
/// assert_eq!(e.to_string(), "cannot open an event socket");
/// let socket = e.source().unwrap().downcast_ref::<nlkit_socket::Error>().unwrap();
/// assert_eq!(socket.errno(), Some(1));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// An event socket could not be opened (or joined to its groups).
    #[error("cannot open an event socket")]
    EventSocket(#[source] nlkit_socket::Error),
    /// Dumping the kernel's tables failed (the first failure; the others are logged).
    #[error("cannot dump the kernel's tables")]
    Dump(#[source] nlkit_socket::Error),
    /// The worker process for kernel writes ([`WriterMode::Worker`]) could not be started.
    #[error("cannot start the mirror's worker process")]
    WorkerStart(#[source] nlkit_worker::WorkerError),
    /// The worker process started but lacks the mirror's handler: the binary must call
    /// `nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry)` first thing in `main`.
    #[error("the worker process lacks {WORKER_HANDLER_NAME}: call nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry) first thing in main")]
    WorkerHandlerMissing(#[source] nlkit_worker::WorkerError),
    /// The socket's directory exists but is not safe: another user could replace the socket
    /// with their own server. Use a directory of your own (mode 0700), or let the mirror
    /// create it.
    #[error("unsafe mirror socket directory {dir}: {problem}")]
    UnsafeSocketDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: DirProblem,
    },
    /// Another mirror holds the socket path (its lock file is locked, or a server answers on
    /// the socket).
    #[error("another mirror is already serving on {path}")]
    AlreadyRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The server socket could not be set up.
    #[error("mirror socket {path}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The shared region holding the tables could not be set up (`memfd_create`, `mmap`,
    /// sealing).
    #[error("cannot allocate the mirror's shared tables")]
    Tables(#[source] nlkit_shm::ShmError),
    /// Another I/O failure (threads, metrics listener, writer).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How to run a mirror.
///
/// ```
/// let c = nlkit_mirror::MirrorConfig::default();
/// assert!(c.conntrack && c.event_rcvbuf <= c.event_rcvbuf_max);
/// ```
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// The server socket; `None` for [`default_socket_path`].
    pub socket_path: Option<PathBuf>,
    /// Serve Prometheus metrics on this TCP address (port 0 picks one; see
    /// [`Mirror::metrics_addr`]).
    pub metrics_addr: Option<SocketAddr>,
    /// Where kernel writes run.
    pub writer: WriterMode,
    /// Mirror conntrack entries (needs `CAP_NET_ADMIN`; turned off with a warning otherwise).
    pub conntrack: bool,
    /// Table capacities.
    pub capacities: Capacities,
    /// Keep the tables' memory in use in huge pages (default true): right after the initial
    /// sync (in a thread of its own: readiness does not wait), then every
    /// [`HUGE_PAGES_INTERVAL`] as they grow, the mirror collapses every whole
    /// 2 MiB page of its tables that is in use (`nlkit_shm::SharedMap::collapse`: slots below
    /// the high-water mark, bucket arrays once dense) into a huge page. A client's lookup over
    /// a large table then makes one TLB miss where it made a page walk per random load; it
    /// costs no memory (only pages in use are collapsed) and works whatever the host's
    /// `shmem_enabled` setting is, unless it is `deny` (then nothing changes; see the metric
    /// `nlkit_mirror_huge_page_failures_total`). A writer or reader touching a page while it is
    /// collapsed waits a few milliseconds.
    pub huge_pages: bool,
    /// Initial receive buffer of each event socket, in bytes.
    pub event_rcvbuf: usize,
    /// Cap for event receive buffers grown after overruns.
    pub event_rcvbuf_max: usize,
    /// Most clients connected at once (default 1024); more are refused with `EBUSY` and a
    /// text (answering their first request). An idle client costs a descriptor, not a
    /// thread; the mirror raises its soft `RLIMIT_NOFILE` towards what this needs.
    pub max_clients: usize,
    /// A client whose socket stays full this long (it does not read) is disconnected: one
    /// deadline for the whole stall (default 10 s).
    pub client_send_timeout: Duration,
    /// A client with no request for this long is disconnected (default 60 s). Pools of
    /// `nlkit_socket` drop such connections when they are next taken.
    pub client_idle_timeout: Duration,
    /// Threads that serve requests (default 4). A client that stops reading holds one for
    /// at most `client_send_timeout`.
    pub server_threads: usize,
    /// Interval between conntrack verification dumps (default 60 s; `None`: never). Entries
    /// leave the mirror only on a destroy event or when such a dump no longer lists them
    /// (traffic refreshes the kernel's timer without an event, so the mirror never expires
    /// entries itself); the dump also adds what the mirror missed. Each correction becomes a
    /// feed event flagged synthesized. Cost: one full ctnetlink dump, compared entry by entry:
    /// about 0.3 s and 0.43 s of CPU per 100,000 entries here (so ~3 s / 4.3 s at 1,000,000;
    /// `cargo bench -p nlkit-mirror --bench feed`).
    pub ct_verify_interval: Option<Duration>,
    /// Most events the feed's log holds (default 1,000,000).
    pub feed_max_events: usize,
    /// Most bytes of messages the feed's log holds (default 256 MiB; the smaller of the two
    /// bounds wins).
    pub feed_max_bytes: usize,
    /// Bytes of the feed's ring in the shared region (default 64 MiB): every change of the
    /// feed is also published there, for clients that map the region (`nlkit-view`) and
    /// follow the feed with no system call. Pages of the region's file are used only once
    /// written, so a large ring costs memory only as the feed fills it; a change larger than
    /// a quarter of the ring is recorded there without its bytes (flagged truncated).
    pub feed_ring_bytes: u64,
    /// Most events a feed subscriber may fall behind the head (plus what its socket buffer
    /// holds) before it is sent an overrun notice (default: the log's event bound).
    pub feed_max_lag: usize,
    /// Interval between neighbour re-dumps: the kernel creates some neighbours (multicast and
    /// other `NUD_NOARP` entries) without a notification. `None`: never.
    pub neigh_resync_interval: Option<Duration>,
    /// Send `READY=1`/`STOPPING=1` to `$NOTIFY_SOCKET` (systemd).
    pub notify_systemd: bool,
    /// Deadline of one client write (from its submission to the kernel's answer). A write
    /// not answered in time fails with `ETIMEDOUT` (it may or may not have been applied), and
    /// in [`WriterMode::Worker`] the worker, stopped or stuck in the kernel, is killed and
    /// replaced; writes queued behind it run on the fresh worker.
    pub write_timeout: Duration,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            socket_path: None,
            metrics_addr: None,
            writer: WriterMode::Worker,
            conntrack: true,
            capacities: Capacities::default(),
            huge_pages: true,
            event_rcvbuf: 4 << 20,
            event_rcvbuf_max: 64 << 20,
            max_clients: 1024,
            client_send_timeout: Duration::from_secs(10),
            client_idle_timeout: Duration::from_secs(60),
            server_threads: 4,
            ct_verify_interval: Some(Duration::from_secs(60)),
            feed_max_events: 1_000_000,
            feed_max_bytes: 256 << 20,
            feed_ring_bytes: 64 << 20,
            feed_max_lag: 1_000_000,
            neigh_resync_interval: Some(Duration::from_secs(30)),
            notify_systemd: true,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// State shared by the mirror's threads.
///
/// Concurrency contract: `config` and `tables` are immutable after construction (the tables
/// synchronise internally); `gen` hands out generations (`Relaxed` `fetch_add`, read by the
/// sync thread only for marking); the flags are `Relaxed` booleans (`stopping`: shutdown has
/// begun; every waiting thread wakes on the [`Shutdown`] descriptor instead).
pub(crate) struct Shared {
    pub config: MirrorConfig,
    pub tables: Arc<Tables>,
    pub metrics: Arc<Metrics>,
    /// The change feed: written by the sync thread and its dump threads (see `feed`).
    pub feed: Arc<feed::Feed>,
    pub gen: AtomicU64,
    pub conntrack_on: AtomicBool,
    pub stopping: AtomicBool,
    /// The mirror's stop signal: a loop polls [`Shutdown::fd`] with its other descriptors, or
    /// waits between periodic steps with [`Shutdown::wait_timeout`].
    pub shutdown: Shutdown,
}

/// A running mirror.
pub struct Mirror {
    shared: Arc<Shared>,
    socket_path: PathBuf,
    metrics_addr: Option<SocketAddr>,
    /// The socket path's lock; releasing it removes our socket.
    claim: server::PathClaim,
    active_clients: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl From<server::PathError> for MirrorError {
    fn from(e: server::PathError) -> Self {
        match e {
            server::PathError::UnsafeDir { dir, problem } => {
                MirrorError::UnsafeSocketDir { dir, problem }
            }
            server::PathError::AlreadyRunning(path) => MirrorError::AlreadyRunning { path },
            server::PathError::Io { path, source } => MirrorError::Socket { path, source },
        }
    }
}

/// How often the mirror collapses what its tables grew into ([`MirrorConfig::huge_pages`]).
pub const HUGE_PAGES_INTERVAL: Duration = Duration::from_secs(10);

/// One pass of [`MirrorConfig::huge_pages`]: the tables' new whole pages in use made huge.
fn collapse_tables(tables: &Tables, metrics: &Metrics) {
    let t = std::time::Instant::now();
    let c = tables.collapse();
    metrics
        .huge_page_bytes
        .fetch_add(c.bytes, Ordering::Relaxed);
    metrics
        .huge_page_failures
        .fetch_add(c.failed, Ordering::Relaxed);
    metrics.huge_page_passes.fetch_add(1, Ordering::Release);
    if c.bytes > 0 || c.failed > 0 {
        tracing::debug!(mib = c.bytes >> 20, failed = c.failed, elapsed = ?t.elapsed(), "tables collapsed into huge pages");
    }
    if let Some(e) = c.error {
        if !metrics.huge_page_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, failed = c.failed, "the kernel did not back the tables with huge pages (clients' lookups make more page walks); shmem_enabled may be 'deny'");
        }
    }
}

/// Spawns a named thread that triggers `shutdown` when it ends, however it ends.
fn spawn_guarded(
    name: &str,
    shutdown: &Shutdown,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let guard = stop::TriggerOnExit(shutdown.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _guard = guard;
            f()
        })
}

/// Raises the soft descriptor limit towards `needed` (never above the hard limit).
fn raise_nofile(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    let (Some(cur), hard) = (lim.current, lim.maximum) else {
        return; // unlimited
    };
    if cur >= needed {
        return;
    }
    let want = hard.map_or(needed, |h| needed.min(h));
    if want > cur {
        let mut new = lim;
        new.current = Some(want);
        if let Err(e) = setrlimit(Resource::Nofile, new) {
            tracing::warn!(error = %e, "cannot raise RLIMIT_NOFILE");
        }
    }
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("socket_path", &self.socket_path)
            .finish()
    }
}

impl Mirror {
    /// Joins the event groups, runs the initial sync, starts the writer, the server and the
    /// metrics endpoint, and reports readiness. Returns once clients can be served.
    ///
    /// The socket path is claimed first (its directory secured, its lock taken), so a second
    /// mirror on the same path fails at once with [`MirrorError::AlreadyRunning`].
    pub fn start(config: MirrorConfig) -> Result<Mirror, MirrorError> {
        Mirror::start_with(config, Shutdown::new()?)
    }

    /// [`start`](Mirror::start) with a shutdown signal made beforehand (so a signal handler
    /// can be installed before the initial sync). Triggering it stops the mirror; see
    /// [`run`](Mirror::run).
    pub fn start_with(config: MirrorConfig, shutdown: Shutdown) -> Result<Mirror, MirrorError> {
        let socket_path = config
            .socket_path
            .clone()
            .unwrap_or_else(default_socket_path);
        let mut claim = server::PathClaim::acquire(&socket_path)?;
        raise_nofile(config.max_clients as u64 + 256);
        let tables = Arc::new(Tables::new(&config.capacities).map_err(MirrorError::Tables)?);
        let metrics = Arc::new(Metrics::default());
        let mut feed = feed::Feed::new(config.feed_max_events, config.feed_max_bytes)?;
        feed.attach_ring(tables.region(), config.feed_ring_bytes)
            .map_err(MirrorError::Tables)?;
        let feed = Arc::new(feed);
        let shared = Arc::new(Shared {
            feed: feed.clone(),
            conntrack_on: AtomicBool::new(config.conntrack),
            config: config.clone(),
            tables: tables.clone(),
            metrics: metrics.clone(),
            gen: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            shutdown: shutdown.clone(),
        });
        let mut syncer = sync::Syncer::new(shared.clone())?;
        syncer.initial_sync()?;
        // From here on every change is recorded (no client could have subscribed before).
        feed.start_recording();
        let writer = writer::Writer::start(config.writer, config.write_timeout, metrics.clone())?;
        let listener = claim.bind()?;
        let active_clients = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(server::Ctx {
            tables: tables.clone(),
            metrics: metrics.clone(),
            writer,
            server_lock: parking_lot::Mutex::new(()),
            conntrack: shared.conntrack_on.load(Ordering::Relaxed),
            feed: feed.clone(),
        });
        let mut threads = Vec::new();
        let (sd, ac) = (shutdown.clone(), active_clients.clone());
        let cfg = server::ServerConfig {
            max_clients: config.max_clients,
            send_timeout: config.client_send_timeout,
            idle_timeout: config.client_idle_timeout,
            serve_threads: config.server_threads,
            feed_max_lag: config.feed_max_lag as u64,
        };
        threads.push(spawn_guarded("mirror-server", &shutdown, move || {
            let registry = Arc::new(server::Registry::standard());
            if let Err(e) = server::run(listener, ctx, registry, cfg, sd, ac) {
                tracing::error!(error = %e, "mirror server failed");
            }
        })?);
        threads.push(spawn_guarded("mirror-sync", &shutdown, move || {
            syncer.run()
        })?);
        if config.huge_pages {
            let (t, m, sd) = (tables.clone(), metrics.clone(), shutdown.clone());
            threads.push(spawn_guarded("mirror-pages", &shutdown, move || {
                // The first pass at once (about 1 s at 1M routes + 1M connections, off the
                // path to readiness), then what the tables grew into.
                loop {
                    collapse_tables(&t, &m);
                    if sd.wait_timeout(HUGE_PAGES_INTERVAL) {
                        break;
                    }
                }
            })?);
        }
        let mut metrics_addr = None;
        if let Some(addr) = config.metrics_addr {
            let l = metrics::bind(addr)?;
            metrics_addr = Some(l.local_addr()?);
            let (m, t, sd) = (metrics.clone(), tables.clone(), shutdown.clone());
            threads.push(spawn_guarded("mirror-metrics", &shutdown, move || {
                metrics::serve(l, m, t, sd)
            })?);
        }
        if config.notify_systemd {
            if let Err(e) = sd_notify("READY=1") {
                tracing::warn!(error = %e, "sd_notify READY=1 failed");
            }
        }
        tracing::info!(socket = %socket_path.display(), "mirror ready");
        Ok(Mirror {
            shared,
            socket_path,
            metrics_addr,
            claim,
            active_clients,
            threads,
        })
    }

    /// The server socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The metrics endpoint's bound address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The tables (read-only use: lookups, iteration, sizes).
    pub fn tables(&self) -> &Tables {
        &self.shared.tables
    }

    /// The shared region's memfd: the tables and the feed ring, which clients map read-only
    /// (`nlkit_shm::RegionView::map`; the feed ring is under `nlkit_view::schema::FEED_OBJECT`).
    pub fn region_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.tables.region().fd()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Whether conntrack is mirrored (it is turned off when ctnetlink is not available).
    pub fn mirrors_conntrack(&self) -> bool {
        self.shared.conntrack_on.load(Ordering::Relaxed)
    }

    /// Clients currently connected.
    pub fn clients(&self) -> usize {
        self.active_clients.load(Ordering::Relaxed)
    }

    /// The mirror's shutdown signal: [`trigger`](Shutdown::trigger) it (from any thread, or
    /// a signal handler through [`Shutdown::signal_pipe`]) to make [`run`](Mirror::run)
    /// return.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shared.shutdown.clone()
    }

    /// Serves until the shutdown signal is triggered — by the caller, or because one of the
    /// mirror's threads ended — then shuts down. Waits in `poll(2)` on the shutdown
    /// descriptor: no timeout, no sleep.
    ///
    /// ```no_run
    /// let mirror = nlkit_mirror::Mirror::start(Default::default()).unwrap();
    /// let stop = mirror.shutdown_handle();
    /// std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_secs(5));
    ///     stop.trigger();
    /// });
    /// mirror.run().unwrap();
    /// ```
    pub fn run(self) -> Result<(), MirrorError> {
        self.shared.shutdown.wait();
        if let Some(t) = self.threads.iter().find(|t| t.is_finished()) {
            tracing::warn!(thread = ?t.thread().name(), "a mirror thread ended; stopping");
        }
        self.shutdown();
        Ok(())
    }

    /// Stops every thread (each wakes on the shutdown descriptor), closes the clients and
    /// removes the socket if it is still the one this mirror bound.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if self.shared.stopping.swap(true, Ordering::Relaxed) {
            return;
        }
        if self.shared.config.notify_systemd {
            let _ = sd_notify("STOPPING=1");
        }
        self.shared.shutdown.trigger();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.claim.release();
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop_all();
    }
}
