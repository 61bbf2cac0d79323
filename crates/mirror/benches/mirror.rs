//! Mirror benchmark (`cargo bench -p nlkit-mirror`), in a private network namespace:
//! initial sync versus the raw kernel dumps, a full route dump served by the mirror versus the
//! kernel's raw dump, conntrack lookups by tuple through the server, and peak memory.
//!
//! Sizes: `NLKIT_BENCH_ROUTES` (default 1,000,000 IPv4 routes) and `NLKIT_BENCH_CT` (default
//! 200,000 conntrack entries: `nf_conntrack_max` is global, 262,144 by default, and can only be
//! raised from the initial namespace). Ratios are taken within one run.

// Each bench uses part of the shared helpers.
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::{
    bare_dump, ct_dump_req, ct_get, env, raw_dump, reset_peak, route_dump_req, vm_hwm_kib,
    vm_rss_kib,
};
use nlkit_mirror::{Mirror, MirrorConfig, WriterMode};
use nlkit_socket::{Protocol, RecvBuffer, Socket};

fn run() {
    let routes = env("NLKIT_BENCH_ROUTES", 1_000_000);
    let cts = env("NLKIT_BENCH_CT", 200_000);
    let v = nlkit_testns::veth_pair("ba", "bb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    let t = Instant::now();
    nlkit_testns::load_ipv4_routes(v.a_index, routes, 254);
    let load_routes = t.elapsed();
    let t = Instant::now();
    let cts = nlkit_testns::load_conntrack(cts, 1);
    let load_ct = t.elapsed();
    eprintln!(
        "loaded {routes} routes in {load_routes:.2?}, {cts} conntrack entries in {load_ct:.2?}"
    );

    let (raw_routes, nroutes) = raw_dump(Protocol::Route, &route_dump_req(), 3);
    let (raw_ct, nct) = raw_dump(Protocol::Netfilter, &ct_dump_req(), 3);
    // The mirror's peak is measured from here: give the fixture loaders' freed heap back to
    // the system, then reset the high-water mark to the current RSS ("5" in clear_refs).
    let hwm_reset = reset_peak();
    let rss_before = vm_rss_kib();

    let dir = std::env::temp_dir().join(format!("nlkit-mirror-bench-{}", std::process::id()));
    let mut cfg = MirrorConfig {
        socket_path: Some(dir.join("mirror.sock")),
        writer: WriterMode::Disabled,
        notify_systemd: false,
        ..MirrorConfig::default()
    };
    cfg.capacities.routes = (routes * 5 / 4).max(1 << 16);
    cfg.capacities.conntrack = (cts as u32 * 5 / 4).max(1 << 16);
    let t = Instant::now();
    let m = Mirror::start(cfg).unwrap();
    let sync = t.elapsed();
    let rss_after = vm_rss_kib();

    // Served dumps are streamed (as a client with a million routes would read them), so the
    // client side adds one receive buffer to the process's peak, not a copy of the table.
    let mut sock = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
    let mut served = Duration::MAX;
    let mut served_first = Duration::ZERO;
    let mut served_n = 0;
    let mut buf = RecvBuffer::new();
    let req = route_dump_req();
    for i in 0..3 {
        let (took, n) = bare_dump(&mut sock, &req, &mut buf);
        if i == 0 {
            served_first = took;
        }
        served = served.min(took);
        served_n = n;
    }

    let mut tuples = Vec::new();
    m.tables().ct.for_each(|orig, _| {
        tuples.push(*orig);
        tuples.len() < 50_000
    });
    // Requests are built one at a time (a client's memory is not the mirror's); only the
    // round trips are timed.
    let mut lookups = Duration::ZERO;
    let mut found = 0;
    for tuple in &tuples {
        let mut r = ct_get(tuple);
        let t = Instant::now();
        let ok = sock.transact(&mut r).is_ok();
        lookups += t.elapsed();
        found += usize::from(ok);
    }
    let lookup_rate = found as f64 / lookups.as_secs_f64().max(1e-9);
    let hwm = vm_hwm_kib();
    let route_mem = m.tables().routes[0].memory_bytes();
    let ct_mem = m.tables().ct.memory_bytes();
    let table_mem = route_mem + ct_mem;
    let all_mem: usize = nlkit_mirror::TableId::ALL
        .iter()
        .map(|t| m.tables().memory_bytes(*t))
        .sum();

    let raw_total = raw_routes + raw_ct;
    println!();
    println!("nlkit-mirror bench: {nroutes} IPv4 routes, {nct} conntrack entries (netns)");
    println!("{:<46} {:>12} {:>10}", "measure", "value", "target");
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "kernel raw dump, routes", raw_routes, ""
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "kernel raw dump, conntrack", raw_ct, ""
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "mirror initial sync (all tables)", sync, ""
    );
    println!(
        "{:<46} {:>12.2} {:>10}",
        "initial sync / raw dumps (routes + conntrack)",
        sync.as_secs_f64() / raw_total.as_secs_f64(),
        "<= 1.3"
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        format!("mirror served route dump ({served_n} msgs)"),
        served,
        ""
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "first served dump", served_first, ""
    );
    println!(
        "{:<46} {:>12.2} {:>10}",
        "kernel raw dump / mirror served dump",
        raw_routes.as_secs_f64() / served.as_secs_f64(),
        ">= 4"
    );
    println!(
        "{:<46} {:>12.0} {:>10}",
        format!("conntrack gets by tuple via server ({found})/s"),
        lookup_rate,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        "process RSS before the mirror started",
        rss_before / 1024,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        "mirror RSS growth during sync",
        (rss_after.saturating_sub(rss_before)) / 1024,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        "table memory (routes4 + conntrack)",
        table_mem >> 20,
        ""
    );
    println!(
        "{:<46} {:>12.1} {:>10}",
        "  of which per IPv4 route (bytes)",
        route_mem as f64 / m.tables().routes[0].len().max(1) as f64,
        ""
    );
    println!(
        "{:<46} {:>12.1} {:>10}",
        "  of which per conntrack entry (bytes)",
        ct_mem as f64 / m.tables().ct.len().max(1) as f64,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        "shared region, every table (bucket arrays whole)",
        all_mem >> 20,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        if hwm_reset {
            "mirror peak memory (VmHWM since the fixtures)"
        } else {
            "process peak memory (VmHWM)"
        },
        hwm / 1024,
        "<= 400"
    );
    m.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    nlkit_testns::run_in_netns(module_path!(), "bench", || {
        run();
        // The namespace harness checks for a libtest-style summary from its child.
        println!("test result: ok. 1 passed");
    });
}
