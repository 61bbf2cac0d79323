//! `nlkit demo`: what nlkit does, in a minute, without touching the host.
//!
//! Runs in a private network namespace (inside a user namespace when not root; see
//! [`crate::netns`]): loads routes and conntrack entries with progress bars, times the
//! kernel's raw dump against nlkit's single- and multi-threaded dumps, starts the mirror,
//! serves the same dump from it, looks connections up in its table, and churns routes while
//! the mirror follows. The namespace disappears with the process, Ctrl-C included.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nlkit_mirror::{Mirror, MirrorConfig, TableId, WriterMode};
use nlkit_socket::{Protocol, Socket};

use crate::cli::DemoArgs;
use crate::fixtures;
use crate::measure::{self, converge, raw_walk, secs, shared_dump};

/// A line of the result table.
struct Line {
    what: String,
    time: Option<f64>,
    note: String,
}

fn line(what: impl Into<String>, time: Option<f64>, note: impl Into<String>) -> Line {
    Line {
        what: what.into(),
        time,
        note: note.into(),
    }
}

/// Removes the demo's socket directory on Ctrl-C before exiting. The handler only makes
/// async-signal-safe calls (`unlink`, `rmdir`, `_exit`) on paths prepared beforehand.
fn cleanup_on_signal(dir: &std::path::Path, sock: &std::path::Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let d = CString::new(dir.as_os_str().as_bytes())?;
    let s = CString::new(sock.as_os_str().as_bytes())?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let (d, s) = (d.clone(), s.clone());
        // SAFETY: the handler calls only unlink, rmdir and _exit, which are
        // async-signal-safe, on strings allocated before registration.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                libc::unlink(s.as_ptr());
                libc::rmdir(d.as_ptr());
                libc::_exit(130);
            })
        }?;
    }
    Ok(())
}

/// Runs the demo (inside its private namespace).
pub fn run(args: DemoArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("nlkit-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("mirror.sock");
    cleanup_on_signal(&dir, &path)?;
    let result = demo(&args, &path);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    result
}

fn demo(args: &DemoArgs, path: &std::path::Path) -> Result<()> {
    eprintln!(
        "nlkit demo: a private network namespace with {} routes and {} conntrack entries",
        args.routes, args.conntrack
    );
    let mut sock = Socket::open(Protocol::Route)?;
    let scratch = fixtures::scratch(&mut sock)?;
    let mut ct_sock = nlkit_conntrack::ops::open()?;
    let t = Instant::now();
    fixtures::routes(&mut sock, scratch.oif, 0..args.routes, true, "routes")?;
    let route_load = t.elapsed().as_secs_f64();
    let room = fixtures::conntrack_room(&mut ct_sock)?;
    let n_ct = args.conntrack.min(room);
    let t = Instant::now();
    fixtures::conntrack(&mut ct_sock, 0..n_ct, "conntrack")?;
    let ct_load = t.elapsed().as_secs_f64();

    let mut lines = vec![
        line(
            format!("load {} routes (batched)", args.routes),
            Some(route_load),
            "",
        ),
        line(
            format!("load {n_ct} conntrack entries (batched)"),
            Some(ct_load),
            if n_ct < args.conntrack {
                "capped by nf_conntrack_max"
            } else {
                ""
            },
        ),
    ];
    for (object, protocol, req) in [
        ("route", Protocol::Route, measure::route_dump_request()),
        (
            "conntrack",
            Protocol::Netfilter,
            measure::conntrack_dump_request(),
        ),
    ] {
        let raw = raw_walk(protocol, &req)?;
        lines.push(line(
            format!("kernel raw {object} dump"),
            Some(raw.secs),
            format!("{} messages", raw.messages),
        ));
        for threads in [1, 2] {
            let s = shared_dump(protocol, &req, threads)?;
            lines.push(line(
                format!(
                    "nlkit {object} dump, {threads} thread{}",
                    if threads > 1 { "s" } else { "" }
                ),
                Some(s.secs),
                format!("{:.2} × raw", s.secs / raw.secs),
            ));
        }
    }

    let t = Instant::now();
    let mirror = Mirror::start(MirrorConfig {
        socket_path: Some(path.to_path_buf()),
        writer: WriterMode::Disabled,
        notify_systemd: false,
        ..Default::default()
    })
    .context("start the mirror")?;
    lines.push(line(
        "mirror initial sync (all tables)",
        Some(t.elapsed().as_secs_f64()),
        format!(
            "{} routes, {} conntrack",
            mirror.tables().len(TableId::Routes4),
            mirror.tables().len(TableId::Conntrack)
        ),
    ));
    let mut client = Socket::connect_unix(path, Protocol::Route)?;
    let raw = raw_walk(Protocol::Route, &measure::route_dump_request())?;
    // Served straight from the tables' logs (the first dump costs what later ones do), and
    // read by the same bare receive loop as the kernel's dump above.
    let mut served_sock = Socket::connect_unix(path, Protocol::Route)?;
    for what in [
        "mirror serves the route dump",
        "mirror serves the route dump (again)",
    ] {
        let served = measure::raw_walk_on(&mut served_sock, &measure::route_dump_request())?;
        lines.push(line(
            what,
            Some(served.secs),
            format!(
                "{} messages, {:.1}× the kernel's speed",
                served.messages,
                raw.secs / served.secs
            ),
        ));
    }

    // Conntrack lookups straight from the mirror's lock-free table.
    if n_ct > 0 {
        let tuples: Vec<nlkit_table::ConnKey> = (0..n_ct)
            .map(|i| {
                let t = fixtures::conn(i);
                nlkit_table::ConnKey::new(
                    t.src,
                    t.sport().unwrap_or(0),
                    t.dst,
                    t.dport().unwrap_or(0),
                    t.proto,
                )
            })
            .collect();
        let mut buf = Vec::with_capacity(512);
        let t = Instant::now();
        let mut found = 0usize;
        for _ in 0..3 {
            for tu in &tuples {
                buf.clear();
                found += usize::from(mirror.tables().ct.get_into(tu, &mut buf));
            }
        }
        let d = t.elapsed().as_secs_f64();
        lines.push(line(
            "conntrack lookups from the table",
            Some(d),
            format!(
                "{:.1} M lookups/s, {} found",
                (3 * n_ct) as f64 / d / 1e6,
                found / 3
            ),
        ));
    }

    // Churn: add and delete routes through the kernel while the mirror follows its events.
    let resyncs_before = mirror.metrics().resyncs.load(Ordering::Relaxed);
    let base = args.routes;
    let t = Instant::now();
    let half = args.churn / 2;
    fixtures::routes(&mut sock, scratch.oif, base..base + half, true, "churn add")?;
    fixtures::routes(
        &mut sock,
        scratch.oif,
        base..base + half / 2,
        false,
        "churn del",
    )?;
    let applied = t.elapsed().as_secs_f64();
    lines.push(line(
        format!("churn: {} route changes in the kernel", half + half / 2),
        Some(applied),
        "",
    ));
    let want = raw_walk(Protocol::Route, &measure::route_dump_request())?.messages;
    let conv = converge(Duration::from_secs(30), || {
        // A dump flagged NLM_F_DUMP_INTR (the mirror is applying changes) is not yet equal.
        let mut req = measure::route_dump_request();
        let end = client.dump(&mut req, |_| Ok::<(), nlkit_socket::Error>(()))?;
        Ok(!end.interrupted && end.received == want as u64)
    })?;
    lines.push(line(
        "mirror converged after the churn",
        conv.map(|d| d.as_secs_f64()),
        format!(
            "{}; resyncs: {}",
            if conv.is_some() {
                "equal to the kernel"
            } else {
                "NOT converged in 30 s"
            },
            mirror.metrics().resyncs.load(Ordering::Relaxed) - resyncs_before
        ),
    ));
    mirror.shutdown();

    let mut out = std::io::stdout().lock();
    writeln!(out)?;
    writeln!(out, "  {:<44} {:>10}", "", "time")?;
    for l in &lines {
        let t = l.time.map_or("-".into(), secs);
        writeln!(out, "  {:<44} {:>10}  {}", l.what, t, l.note)?;
    }
    writeln!(out)?;
    Ok(())
}
