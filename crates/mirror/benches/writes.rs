//! Write-path benchmark (`cargo bench -p nlkit-mirror --bench writes`), in a private network
//! namespace: N clients (1, 4, 16) each add `NLKIT_BENCH_WRITES` (default 10,000) IPv4 host
//! routes through the mirror (`Socket::connect_unix` + `transact_batch`; the mirror passes each
//! request to its worker process over the ring transport, pipelined across clients), against
//! one client adding the same N × routes directly to the kernel with `transact_batch`. Both
//! rates come from the same run; routes are deleted (untimed) between cases.
//!
//! `harness = false`: the mirror's worker re-executes this binary, so `main` calls
//! `maybe_run_worker` first.

// Each bench uses part of the shared helpers.
#[allow(dead_code)]
mod common;
use common::host_route_with;

use std::net::Ipv4Addr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use nlkit_mirror::{Mirror, MirrorConfig, WriterMode};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The `i`-th destination (10.64.0.0/10, host routes).
fn dst(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0000 + i)
}

/// `RTM_NEWROUTE` (or `RTM_DELROUTE`) requests for destinations `range`, via `oif`.
fn batch(add: bool, range: std::ops::Range<u32>, oif: u32) -> MessageBuilder {
    let mut b = MessageBuilder::with_capacity(range.len() * 64);
    for i in range {
        let flags = if add { NLM_F_CREATE | NLM_F_EXCL } else { 0 };
        host_route_with(&mut b, add, flags, 0, oif, dst(i));
    }
    b
}

/// Runs a batch on `sock`; returns how many requests failed.
fn run_batch(sock: &mut Socket, b: &mut MessageBuilder) -> usize {
    sock.transact_batch(b)
        .expect("transaction")
        .iter()
        .filter(|r| r.is_err())
        .count()
}

/// `clients` clients, each adding `per` routes through the mirror at once. Returns the time
/// from the common start to the last client's last ack, and the failures.
fn through_mirror(m: &Mirror, clients: usize, per: u32, base: u32, oif: u32) -> (Duration, usize) {
    let start = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients as u32)
        .map(|c| {
            let path = m.socket_path().to_owned();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut sock = Socket::connect_unix(path, Protocol::Route).expect("connect");
                let first = base + c * per;
                let mut b = batch(true, first..first + per, oif);
                start.wait();
                let failed = run_batch(&mut sock, &mut b);
                (Instant::now(), failed)
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let mut end = t0;
    let mut failed = 0;
    for h in handles {
        let (t, f) = h.join().expect("client thread");
        end = end.max(t);
        failed += f;
    }
    (end - t0, failed)
}

/// One client adding `n` routes directly to the kernel.
fn direct(n: u32, base: u32, oif: u32) -> (Duration, usize) {
    let mut sock = Socket::open(Protocol::Route).expect("socket");
    let mut b = batch(true, base..base + n, oif);
    let t0 = Instant::now();
    let failed = run_batch(&mut sock, &mut b);
    (t0.elapsed(), failed)
}

fn delete(n: u32, base: u32, oif: u32) {
    let mut sock = Socket::open(Protocol::Route).expect("socket");
    let failed = run_batch(&mut sock, &mut batch(false, base..base + n, oif));
    assert_eq!(failed, 0, "route deletions failed");
}

fn rate(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64().max(1e-9)
}

fn run() {
    let per = env("NLKIT_BENCH_WRITES", 10_000) as u32;
    let v = nlkit_testns::veth_pair("bw0", "bw1");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    let dir = std::env::temp_dir().join(format!("nlkit-bench-writes-{}", std::process::id()));
    let m = Mirror::start(MirrorConfig {
        socket_path: Some(dir.join("mirror.sock")),
        writer: WriterMode::Worker,
        conntrack: false,
        notify_systemd: false,
        write_timeout: Duration::from_secs(60),
        ..MirrorConfig::default()
    })
    .expect("mirror starts");
    println!(
        "nlkit-mirror write bench: {per} IPv4 routes per client (netns; mirror worker over the ring)"
    );
    println!("| clients | routes | through the mirror | direct transact_batch | mirror / direct |");
    println!("|---|---|---|---|---|");
    for clients in [1usize, 4, 16] {
        let n = per * clients as u32;
        let (dm, fm) = through_mirror(&m, clients, per, 0, v.a_index);
        delete(n, 0, v.a_index);
        let (dd, fd) = direct(n, 0, v.a_index);
        delete(n, 0, v.a_index);
        assert_eq!((fm, fd), (0, 0), "route additions failed");
        let (rm, rd) = (rate(n, dm), rate(n, dd));
        println!(
            "| {clients} | {n} | {rm:.0} routes/s ({:.2} s) | {rd:.0} routes/s ({:.2} s) | {:.2} |",
            dm.as_secs_f64(),
            dd.as_secs_f64(),
            rm / rd
        );
    }
    m.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry);
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    let in_child = std::env::var(nlkit_testns::CHILD_ENV).is_ok();
    if !in_child && !std::env::args().any(|a| a == "--bench") {
        return;
    }
    nlkit_testns::run_in_netns(module_path!(), "bench", || {
        run();
        // The namespace harness checks for a libtest-style summary from its child.
        println!("test result: ok. 1 passed");
    });
}
