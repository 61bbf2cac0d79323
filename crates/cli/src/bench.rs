//! `nlkit bench`: the reproducible comparison behind the README's numbers.
//!
//! Runs in its own private network namespace (see [`crate::netns`]), loads the scratch tables
//! at each requested size, and measures in one run: the raw receive loop, nlkit's shared dump
//! with 1/2/4 threads, `nlkit route show` / `nlkit ct list`, the peers a user would otherwise
//! pick when installed (`ip route show`, `conntrack -L`), and the mirror (initial sync and the
//! same dump served from its tables). Prints a table, writes CSV and draws an SVG chart.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use nlkit_socket::{Protocol, Socket};

use crate::chart::{self, Series};
use crate::cli::BenchArgs;
use crate::fixtures;
use crate::measure::{self, command, median, raw_walk, secs, shared_dump, Sample};

/// One CSV row.
struct Row {
    tool: String,
    object: &'static str,
    size: usize,
    sample: Sample,
    raw: f64,
}

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// Measures everything for one object kind at the current size.
fn measure_object(
    args: &BenchArgs,
    object: &'static str,
    size: usize,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let (protocol, request, own, peer): (_, _, &[&str], Option<(&str, &[&str])>) = match object {
        "routes" => (
            Protocol::Route,
            measure::route_dump_request(),
            &["route", "show"],
            have("ip").then_some(("ip", &["route", "show"][..])),
        ),
        _ => (
            Protocol::Netfilter,
            measure::conntrack_dump_request(),
            &["ct", "list"],
            have("conntrack").then_some(("conntrack", &["-L"][..])),
        ),
    };
    let raw = median(args.repeat, || raw_walk(protocol, &request))?;
    let mut push = |tool: String, sample: Sample| {
        rows.push(Row {
            tool,
            object,
            size,
            sample,
            raw: raw.secs,
        })
    };
    push("kernel raw receive loop".into(), raw);
    for t in [1, 2, 4] {
        let s = median(args.repeat, || shared_dump(protocol, &request, t))?;
        push(
            format!("nlkit dump ({t} thread{})", if t > 1 { "s" } else { "" }),
            s,
        );
    }
    let exe = std::env::current_exe()?;
    let exe = exe.to_str().context("executable path is not UTF-8")?;
    let s = median(args.repeat, || command(exe, own))?;
    push(format!("nlkit {} >/dev/null", own.join(" ")), s);
    if let Some((p, a)) = peer {
        let s = median(args.repeat, || command(p, a))?;
        push(format!("{p} {} >/dev/null", a.join(" ")), s);
    }
    Ok(())
}

/// Starts a mirror on the scratch namespace and measures its sync and served dumps.
fn measure_mirror(
    args: &BenchArgs,
    size: usize,
    ct_size: usize,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("nlkit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("mirror.sock");
    let config = nlkit_mirror::MirrorConfig {
        socket_path: Some(path.clone()),
        writer: nlkit_mirror::WriterMode::Disabled,
        conntrack: ct_size > 0,
        notify_systemd: false,
        ..Default::default()
    };
    let start = Instant::now();
    let mirror = nlkit_mirror::Mirror::start(config).context("start the mirror")?;
    let sync = start.elapsed().as_secs_f64();
    let raw_routes = rows
        .iter()
        .find(|r| r.object == "routes" && r.size == size && r.tool.starts_with("kernel raw"))
        .map_or(sync, |r| r.sample.secs);
    rows.push(Row {
        tool: "mirror initial sync (all tables)".into(),
        object: "routes",
        size,
        sample: Sample {
            messages: 0,
            secs: sync,
            peak_kib: None,
        },
        raw: raw_routes,
    });
    for (object, req, n) in [
        ("routes", measure::route_dump_request(), size),
        ("conntrack", measure::conntrack_dump_request(), ct_size),
    ] {
        if n == 0 {
            continue;
        }
        // Read by the same bare receive loop as the kernel's raw dump.
        let mut client = Socket::connect_unix(&path, Protocol::Route)?;
        let s = median(args.repeat, || measure::raw_walk_on(&mut client, &req))?;
        let raw = rows
            .iter()
            .find(|r| r.object == object && r.size == n && r.tool.starts_with("kernel raw"))
            .map_or(s.secs, |r| r.sample.secs);
        rows.push(Row {
            tool: "mirror served dump".into(),
            object,
            size: n,
            sample: s,
            raw,
        });
    }
    mirror.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs the benchmark (inside its private namespace).
pub fn run(args: BenchArgs) -> Result<()> {
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let mut sock = Socket::open(Protocol::Route)?;
    let scratch = fixtures::scratch(&mut sock)?;
    let mut ct_sock = nlkit_conntrack::ops::open()?;
    let room = if args.no_conntrack {
        0
    } else {
        fixtures::conntrack_room(&mut ct_sock)?
    };
    let mut rows = Vec::new();
    let (mut routes_loaded, mut ct_loaded) = (0, 0);
    for &size in &sizes {
        fixtures::routes(&mut sock, scratch.oif, routes_loaded..size, true, "routes")?;
        routes_loaded = size;
        measure_object(&args, "routes", size, &mut rows)?;
        let ct_size = if args.no_conntrack { 0 } else { size.min(room) };
        if ct_size > ct_loaded {
            fixtures::conntrack(&mut ct_sock, ct_loaded..ct_size, "conntrack")?;
            ct_loaded = ct_size;
        }
        if ct_size > 0 {
            if ct_size < size {
                eprintln!(
                    "nlkit bench: conntrack capped at {ct_size} entries (global nf_conntrack_max)"
                );
            }
            measure_object(&args, "conntrack", ct_size, &mut rows)?;
        }
        measure_mirror(&args, size, ct_size, &mut rows)?;
    }
    print_table(&rows)?;
    write_csv(&args.csv, &rows)?;
    std::fs::write(&args.svg, draw(&rows))
        .with_context(|| format!("write {}", args.svg.display()))?;
    let global =
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count").unwrap_or_default();
    eprintln!(
        "nlkit bench: wrote {} and {} (conntrack entries on the host at the end, all namespaces: {})",
        args.csv.display(),
        args.svg.display(),
        global.trim()
    );
    Ok(())
}

fn print_table(rows: &[Row]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut last = None;
    for r in rows {
        if last != Some((r.object, r.size)) {
            writeln!(out, "\n{} = {}", r.object, r.size)?;
            writeln!(
                out,
                "  {:<36} {:>10} {:>8} {:>11}",
                "", "time", "× raw", "peak RSS"
            )?;
            last = Some((r.object, r.size));
        }
        let peak = r
            .sample
            .peak_kib
            .map_or(String::new(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        writeln!(
            out,
            "  {:<36} {:>10} {:>8.2} {:>11}",
            r.tool,
            secs(r.sample.secs),
            r.sample.secs / r.raw,
            peak
        )?;
    }
    Ok(())
}

fn write_csv(path: &std::path::Path, rows: &[Row]) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
    );
    writeln!(f, "tool,object,size,seconds,ratio_to_raw,peak_kib")?;
    for r in rows {
        writeln!(
            f,
            "\"{}\",{},{},{:.6},{:.3},{}",
            r.tool,
            r.object,
            r.size,
            r.sample.secs,
            r.sample.secs / r.raw,
            r.sample.peak_kib.map_or(String::new(), |k| k.to_string())
        )?;
    }
    f.flush()?;
    Ok(())
}

fn draw(rows: &[Row]) -> String {
    let mut time: Vec<Series> = Vec::new();
    let mut mem: Vec<Series> = Vec::new();
    for r in rows {
        let label = format!("{} ({})", r.tool, r.object);
        let add = |v: &mut Vec<Series>, y: f64| match v.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push((r.size as f64, y)),
            None => v.push(Series {
                label: label.clone(),
                points: vec![(r.size as f64, y)],
            }),
        };
        add(&mut time, r.sample.secs);
        if let Some(k) = r.sample.peak_kib {
            add(&mut mem, k as f64);
        }
    }
    chart::render(&time, &mem)
}
