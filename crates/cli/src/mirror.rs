//! `nlkit mirror`: the mirror as a service.
//!
//! Starts [`nlkit_mirror::Mirror`] (it returns once the initial sync is complete, and only
//! then reports readiness to systemd), serves until SIGTERM or SIGINT, then shuts down
//! cleanly: the listening socket is removed and the worker process exits with us.

use anyhow::{Context, Result};
use nlkit_mirror::{Mirror, MirrorConfig, Shutdown, WriterMode};

use crate::cli::MirrorArgs;

/// Runs the mirror until SIGTERM or SIGINT, serving on `socket` (`--mirror-socket`; the
/// default path when `None`).
pub fn run(args: MirrorArgs, socket: Option<std::path::PathBuf>) -> Result<()> {
    // The signal handler writes the mirror's shutdown pipe: everything waiting wakes at once.
    let shutdown = Shutdown::new().context("create the shutdown pipe")?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(sig, shutdown.signal_pipe()?)
            .context("install signal handler")?;
    }
    let mut config = MirrorConfig {
        socket_path: socket,
        metrics_addr: args.metrics,
        writer: WriterMode::Worker,
        conntrack: args.conntrack,
        huge_pages: args.huge_pages,
        ..MirrorConfig::default()
    };
    if let Some(b) = args.event_buffer {
        config.event_rcvbuf = b;
        config.event_rcvbuf_max = b.saturating_mul(64);
    }
    let mirror = Mirror::start_with(config, shutdown).context("cannot start the mirror")?;
    eprintln!(
        "nlkit mirror: serving on {}",
        mirror.socket_path().display()
    );
    if let Some(a) = mirror.metrics_addr() {
        eprintln!("nlkit mirror: metrics on http://{a}/metrics");
    }
    mirror.run()?;
    eprintln!("nlkit mirror: stopped");
    Ok(())
}
