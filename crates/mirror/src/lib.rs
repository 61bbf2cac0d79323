//! # nlkit-mirror
//!
//! A live, consistent copy of the kernel's links, addresses, routes, neighbours (IPv4 and IPv6)
//! and conntrack entries, kept in lock-free nulls tables and served to local clients over a
//! Unix `SOCK_SEQPACKET` socket in the kernel's own Netlink message format. This is the library
//! behind `nlkit mirror`.
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
//! trigger a resync of the routes (and neighbours) they may have removed. Conntrack entries expire at the `CTA_TIMEOUT` of their last update.
//!
//! ## Serving
//! Gets and dumps for `RTM_GETLINK`, `RTM_GETADDR`, `RTM_GETROUTE`, `RTM_GETNEIGH` and
//! ctnetlink `IPCTNL_MSG_CT_GET` are answered from the tables through a handler registry in the
//! spirit of `rtnl_register`. A dump spans many reads without any lock: each table has a
//! [`ChangeSeq`], and a dump that overlapped a change carries `NLM_F_DUMP_INTR`
//! (`nlkit_socket::consistent_dump` restarts it, as it does a kernel dump). Writes (new/delete route, address, neighbour, conntrack) go to
//! the kernel through the worker process; the kernel's ack or error, with its extended-ack text,
//! goes back to the client, and the change reaches the tables through events.
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
//!   tables. Clients are checked with `SO_PEERCRED` (same uid or root) and the socket is 0600.
//! - Kernel writes (which need `CAP_NET_ADMIN`) run in the worker process
//!   ([`WriterMode::Worker`]); with [`WriterMode::Disabled`] the mirror never writes.
//! - Capabilities are per process here: the mirror keeps `CAP_NET_ADMIN` for ctnetlink reads.
//!   See `contrib/nlkit-mirror.service` for the sandboxing the unit applies.
//!
//! ## Use
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use nlkit_mirror::{Mirror, MirrorConfig, WriterMode};
//!
//! // In `main`, before anything else, so the worker process can start:
//! nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry);
//!
//! static STOP: AtomicBool = AtomicBool::new(false); // set from a SIGTERM/SIGINT handler
//! let config = MirrorConfig {
//!     metrics_addr: Some("127.0.0.1:9464".parse().unwrap()),
//!     writer: WriterMode::Worker,
//!     ..MirrorConfig::default()
//! };
//! let mirror = Mirror::start(config).unwrap(); // returns once the initial sync is done
//! println!("serving on {}", mirror.socket_path().display());
//! mirror.run_until(&STOP).unwrap();             // clean shutdown when STOP is set
//! ```

#![warn(missing_docs)]

mod conn;
mod ct_pack;
mod fill;
pub mod kernel;
mod keys;
mod metrics;
mod nexthops;
mod notify;
mod route_store;
mod routes;
mod server;
mod store;
mod sync;
mod tables;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use conn::{CtState, CtStore};
pub use keys::{AddrKey, LinkKey, NeighKey, RouteKey, StoreKey};
pub use metrics::Metrics;
pub use nlkit_table::{ChangeSeq, SeqSnapshot, WriteGuard};
pub use notify::sd_notify;
pub use route_store::{Route4Key, RouteStore};
pub use server::{default_socket_path, MAX_PROTOCOL_ERRORS};
pub use store::{Entry, Store};
pub use tables::{Capacities, TableId, TableSet, Tables};
pub use writer::{
    kernel_transact, register_worker_handlers, worker_registry, WriterMode, WORKER_HANDLER_ID,
    WORKER_HANDLER_NAME,
};

/// Errors starting or running the mirror.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Talking to the kernel failed (sockets, dumps).
    #[error("kernel: {0}")]
    Kernel(String),
    /// The server socket could not be set up.
    #[error("mirror socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another I/O failure (threads, metrics listener, writer).
    #[error("{0}")]
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
    /// Initial receive buffer of each event socket, in bytes.
    pub event_rcvbuf: usize,
    /// Cap for event receive buffers grown after overruns.
    pub event_rcvbuf_max: usize,
    /// Most clients served at once; more are refused with `EBUSY`.
    pub max_clients: usize,
    /// A client whose socket stays full this long (it does not read) is disconnected.
    pub client_send_timeout: Duration,
    /// Interval between conntrack gc steps.
    pub ct_gc_interval: Duration,
    /// Interval between neighbour re-dumps: the kernel creates some neighbours (multicast and
    /// other `NUD_NOARP` entries) without a notification. `None`: never.
    pub neigh_resync_interval: Option<Duration>,
    /// Send `READY=1`/`STOPPING=1` to `$NOTIFY_SOCKET` (systemd).
    pub notify_systemd: bool,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            socket_path: None,
            metrics_addr: None,
            writer: WriterMode::Worker,
            conntrack: true,
            capacities: Capacities::default(),
            event_rcvbuf: 4 << 20,
            event_rcvbuf_max: 64 << 20,
            max_clients: 256,
            client_send_timeout: Duration::from_secs(10),
            ct_gc_interval: Duration::from_secs(1),
            neigh_resync_interval: Some(Duration::from_secs(30)),
            notify_systemd: true,
        }
    }
}

/// State shared by the mirror's threads.
///
/// Concurrency contract: `config` and `tables` are immutable after construction (the tables
/// synchronise internally); `gen` hands out generations (`Relaxed` `fetch_add`, read by the
/// sync thread only for marking); the flags are `Relaxed` booleans polled by loops.
pub(crate) struct Shared {
    pub config: MirrorConfig,
    pub tables: Arc<Tables>,
    pub metrics: Arc<Metrics>,
    pub gen: AtomicU64,
    pub conntrack_on: AtomicBool,
    pub stopping: AtomicBool,
}

/// A running mirror.
pub struct Mirror {
    shared: Arc<Shared>,
    socket_path: PathBuf,
    metrics_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    active_clients: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
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
    pub fn start(config: MirrorConfig) -> Result<Mirror, MirrorError> {
        let tables = Arc::new(Tables::new(&config.capacities));
        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared {
            conntrack_on: AtomicBool::new(config.conntrack),
            config: config.clone(),
            tables: tables.clone(),
            metrics: metrics.clone(),
            gen: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
        });
        let mut syncer = sync::Syncer::new(shared.clone())?;
        syncer.initial_sync()?;
        let writer = writer::Writer::start(config.writer, metrics.clone())?;
        let socket_path = config
            .socket_path
            .clone()
            .unwrap_or_else(default_socket_path);
        let listener =
            server::bind_listener(&socket_path).map_err(|source| MirrorError::Socket {
                path: socket_path.clone(),
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let active_clients = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(server::Ctx {
            tables: tables.clone(),
            metrics: metrics.clone(),
            writer,
            server_lock: parking_lot::Mutex::new(()),
            conntrack: shared.conntrack_on.load(Ordering::Relaxed),
        });
        let mut threads = Vec::new();
        let (st, ac) = (stop.clone(), active_clients.clone());
        let cfg = server::ServerConfig {
            max_clients: config.max_clients,
            send_timeout: config.client_send_timeout,
        };
        threads.push(
            std::thread::Builder::new()
                .name("mirror-accept".into())
                .spawn(move || {
                    server::accept_loop(
                        listener,
                        ctx,
                        Arc::new(server::Registry::standard()),
                        cfg,
                        st,
                        ac,
                    )
                })?,
        );
        let st = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("mirror-sync".into())
                .spawn(move || syncer.run(&st))?,
        );
        let mut metrics_addr = None;
        if let Some(addr) = config.metrics_addr {
            let l = metrics::bind(addr)?;
            metrics_addr = Some(l.local_addr()?);
            let (m, t, st) = (metrics.clone(), tables.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("mirror-metrics".into())
                    .spawn(move || metrics::serve(l, m, t, st))?,
            );
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
            stop,
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

    /// Serves until `shutdown` is set (e.g. by a SIGTERM/SIGINT handler), then shuts down.
    pub fn run_until(self, shutdown: &AtomicBool) -> Result<(), MirrorError> {
        while !shutdown.load(Ordering::Relaxed) && !self.threads.iter().any(|t| t.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.shutdown();
        Ok(())
    }

    /// Stops every thread, waits (up to two seconds) for client threads, removes the socket.
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
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.active_clients.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop_all();
    }
}
