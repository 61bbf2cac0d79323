//! Metrics: counters updated with `Relaxed` adds, rendered in the Prometheus text format, and
//! a tiny HTTP responder for scrapes.
//!
//! The responder is written by hand on a `std::net::TcpListener`: it answers every request on
//! the connection with the metrics page and closes it, which is all a Prometheus scrape needs,
//! and an HTTP framework would be the largest dependency of the crate.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

use crate::stop::{timespec, Shutdown};
use crate::tables::{TableId, Tables};

/// Upper bounds (seconds) of the served-dump duration histogram.
const DUMP_BUCKETS: [f64; 7] = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0];

/// The mirror's counters.
///
/// Concurrency contract: every field is an independent counter or gauge, written with
/// `Relaxed` atomics from any thread; a scrape reads each one once (no cross-field snapshot).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Event messages applied.
    pub events: AtomicU64,
    /// `ENOBUFS` overruns on event sockets.
    pub overruns: AtomicU64,
    /// Resyncs after the initial sync (overruns, silent deletions, partial ECMP deletes).
    pub resyncs: AtomicU64,
    /// Kernel dumps retried because they were flagged inconsistent.
    pub dump_retries: AtomicU64,
    /// Initial sync duration in milliseconds.
    pub initial_sync_ms: AtomicU64,
    /// Duration of the last (re)sync in microseconds.
    pub last_sync_us: AtomicU64,
    /// Client requests handled.
    pub queries: AtomicU64,
    /// Client dumps served.
    pub dumps: AtomicU64,
    /// Served dumps flagged `NLM_F_DUMP_INTR`.
    pub dumps_interrupted: AtomicU64,
    dump_hist: [AtomicU64; DUMP_BUCKETS.len() + 1],
    dump_us_total: AtomicU64,
    /// Write requests passed to the kernel.
    pub writes: AtomicU64,
    /// Clients connected (total) and refused.
    pub clients: AtomicU64,
    /// Clients refused (uid, limit).
    pub clients_refused: AtomicU64,
    /// Clients disconnected for protocol errors or not reading.
    pub clients_dropped: AtomicU64,
    /// Clients disconnected after the idle timeout.
    pub clients_idle_closed: AtomicU64,
    /// Client protocol errors answered.
    pub client_errors: AtomicU64,
    /// Worker process restarts.
    pub restarts: AtomicU64,
    /// Bytes of the tables collapsed into huge pages (`MirrorConfig::huge_pages`).
    pub huge_page_bytes: AtomicU64,
    /// Huge pages the kernel did not make.
    pub huge_page_failures: AtomicU64,
    /// Passes of the huge-page thread completed (`Release` after each; the first one right
    /// after the initial sync).
    pub huge_page_passes: AtomicU64,
    /// Whether a failure was logged (once).
    pub(crate) huge_page_warned: std::sync::atomic::AtomicBool,
}

impl Metrics {
    /// Records a served dump's duration.
    pub fn observe_dump(&self, d: Duration, interrupted: bool) {
        self.dumps.fetch_add(1, Ordering::Relaxed);
        if interrupted {
            self.dumps_interrupted.fetch_add(1, Ordering::Relaxed);
        }
        let s = d.as_secs_f64();
        let i = DUMP_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DUMP_BUCKETS.len());
        self.dump_hist[i].fetch_add(1, Ordering::Relaxed);
        self.dump_us_total
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of these counters and the tables' sizes.
    ///
    /// ```
    /// use nlkit_mirror::{Capacities, Metrics, Tables};
    /// let t = Tables::new(&Capacities { routes: 64, conntrack: 64, ..Default::default() }).unwrap();
    /// let text = Metrics::default().render(&t);
    /// assert!(text.contains("nlkit_mirror_entries{table=\"routes4\"} 0"));
    /// ```
    pub fn render(&self, tables: &Tables) -> String {
        let mut o = String::new();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        o.push_str("# HELP nlkit_mirror_entries Entries in each mirror table.\n");
        o.push_str("# TYPE nlkit_mirror_entries gauge\n");
        for t in TableId::ALL {
            let _ = writeln!(
                o,
                "nlkit_mirror_entries{{table=\"{}\"}} {}",
                t.name(),
                tables.len(t)
            );
        }
        o.push_str(
            "# HELP nlkit_mirror_table_memory_bytes Shared memory each table uses (slots, buckets, records).\n",
        );
        o.push_str("# TYPE nlkit_mirror_table_memory_bytes gauge\n");
        for t in TableId::ALL {
            let _ = writeln!(
                o,
                "nlkit_mirror_table_memory_bytes{{table=\"{}\"}} {}",
                t.name(),
                tables.memory_bytes(t)
            );
        }
        o.push_str("# HELP nlkit_mirror_region_bytes Size of the shared region's file (sparse).\n");
        o.push_str("# TYPE nlkit_mirror_region_bytes gauge\n");
        let _ = writeln!(o, "nlkit_mirror_region_bytes {}", tables.region_bytes());
        o.push_str("# HELP nlkit_mirror_table_changes_total Changes applied to each table.\n");
        o.push_str("# TYPE nlkit_mirror_table_changes_total counter\n");
        for t in TableId::ALL {
            let _ = writeln!(
                o,
                "nlkit_mirror_table_changes_total{{table=\"{}\"}} {}",
                t.name(),
                tables.seq(t).changes()
            );
        }
        let counters: [(&str, &str, &AtomicU64); 15] = [
            (
                "events_total",
                "Kernel event messages applied.",
                &self.events,
            ),
            (
                "overruns_total",
                "ENOBUFS overruns on event sockets.",
                &self.overruns,
            ),
            (
                "resyncs_total",
                "Resyncs after the initial sync.",
                &self.resyncs,
            ),
            (
                "kernel_dump_retries_total",
                "Kernel dumps retried (NLM_F_DUMP_INTR).",
                &self.dump_retries,
            ),
            ("queries_total", "Client requests handled.", &self.queries),
            (
                "dumps_interrupted_total",
                "Served dumps flagged NLM_F_DUMP_INTR.",
                &self.dumps_interrupted,
            ),
            (
                "writes_total",
                "Write requests passed to the kernel.",
                &self.writes,
            ),
            (
                "clients_total",
                "Client connections accepted.",
                &self.clients,
            ),
            (
                "clients_refused_total",
                "Client connections refused.",
                &self.clients_refused,
            ),
            (
                "clients_dropped_total",
                "Clients disconnected by the server.",
                &self.clients_dropped,
            ),
            (
                "clients_idle_closed_total",
                "Clients disconnected after the idle timeout.",
                &self.clients_idle_closed,
            ),
            (
                "client_errors_total",
                "Client protocol errors answered.",
                &self.client_errors,
            ),
            ("restarts_total", "Worker process restarts.", &self.restarts),
            (
                "huge_page_bytes_total",
                "Bytes of the tables collapsed into huge pages.",
                &self.huge_page_bytes,
            ),
            (
                "huge_page_failures_total",
                "Huge pages the kernel did not make for the tables.",
                &self.huge_page_failures,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP nlkit_mirror_{name} {help}");
            let _ = writeln!(o, "# TYPE nlkit_mirror_{name} counter");
            let _ = writeln!(o, "nlkit_mirror_{name} {}", l(v));
        }
        o.push_str("# HELP nlkit_mirror_initial_sync_seconds Duration of the initial sync.\n");
        o.push_str("# TYPE nlkit_mirror_initial_sync_seconds gauge\n");
        let _ = writeln!(
            o,
            "nlkit_mirror_initial_sync_seconds {}",
            l(&self.initial_sync_ms) as f64 / 1e3
        );
        o.push_str("# HELP nlkit_mirror_last_sync_seconds Duration of the last (re)sync.\n");
        o.push_str("# TYPE nlkit_mirror_last_sync_seconds gauge\n");
        let _ = writeln!(
            o,
            "nlkit_mirror_last_sync_seconds {}",
            l(&self.last_sync_us) as f64 / 1e6
        );
        o.push_str("# HELP nlkit_mirror_dump_duration_seconds Served dump durations.\n");
        o.push_str("# TYPE nlkit_mirror_dump_duration_seconds histogram\n");
        let mut cum = 0;
        for (i, b) in DUMP_BUCKETS.iter().enumerate() {
            cum += l(&self.dump_hist[i]);
            let _ = writeln!(
                o,
                "nlkit_mirror_dump_duration_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        cum += l(&self.dump_hist[DUMP_BUCKETS.len()]);
        let _ = writeln!(
            o,
            "nlkit_mirror_dump_duration_seconds_bucket{{le=\"+Inf\"}} {cum}"
        );
        let _ = writeln!(
            o,
            "nlkit_mirror_dump_duration_seconds_sum {}",
            l(&self.dump_us_total) as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "nlkit_mirror_dump_duration_seconds_count {}",
            l(&self.dumps)
        );
        o
    }
}

/// Serves the metrics page on `listener` until the shutdown: waits in `poll(2)` on the
/// listener and the shutdown descriptor (no timeout), one scrape at a time.
pub(crate) fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    tables: Arc<Tables>,
    shutdown: Shutdown,
) {
    let _ = listener.set_nonblocking(true);
    let stop_fd = shutdown.fd();
    loop {
        let mut fds = [
            PollFd::new(&listener, PollFlags::IN),
            PollFd::new(&stop_fd, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "metrics poll failed; metrics stop");
                return;
            }
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        match listener.accept() {
            Ok((conn, _)) => scrape(conn, &metrics, &tables, &shutdown),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                // Out of descriptors, most likely: back off (waking at once on shutdown)
                // instead of spinning on a listener that stays readable.
                tracing::warn!(error = %e, "metrics accept failed");
                if shutdown.wait_timeout(Duration::from_millis(200)) {
                    return;
                }
            }
        }
    }
}

/// Answers one scrape: waits up to 2 s for the request (or the shutdown), answers with the
/// page (writes time out after 5 s) and closes.
fn scrape(mut conn: TcpStream, metrics: &Metrics, tables: &Tables, shutdown: &Shutdown) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let stop_fd = shutdown.fd();
    let mut fds = [
        PollFd::new(&conn, PollFlags::IN),
        PollFd::new(&stop_fd, PollFlags::IN),
    ];
    let ready = matches!(poll(&mut fds, Some(&timespec(Duration::from_secs(2)))), Ok(n) if n > 0);
    if !ready || !fds[1].revents().is_empty() {
        return;
    }
    let mut req = [0u8; 2048];
    let n = conn.read(&mut req).unwrap_or(0);
    let head = String::from_utf8_lossy(&req[..n]);
    let (status, body) = if head.starts_with("GET ") || head.starts_with("HEAD ") {
        ("200 OK", metrics.render(tables))
    } else {
        ("405 Method Not Allowed", String::from("GET only\n"))
    };
    let _ = write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Binds the metrics listener.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}
