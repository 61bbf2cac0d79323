//! Socket pair versus ring: the main loop's cost to submit one request (median, p99), round-trip
//! latency, and pipelined requests per second, for 64-byte and 4 KiB payloads.
//!
//! `cargo bench -p nlkit-worker --bench ipc`. The submit cost and the pipelined rate are measured
//! here with `Instant` and printed as a table (criterion has no per-call percentiles); the
//! round trip is a criterion benchmark. Numbers are wall-clock on a shared machine: compare the
//! ratios within one run.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use nlkit_worker::{
    maybe_run_worker, ChannelTransport, Registry, Response, Worker, WorkerConfig, WorkerError,
};

fn registry() -> Registry {
    Registry::new()
        .register(1, "echo", |req| Ok(Response::bytes(req.payload.to_vec())))
        .register(2, "noop", |_| Ok(Response::default()))
}

fn transports() -> [(&'static str, ChannelTransport); 2] {
    [
        ("socketpair", ChannelTransport::SocketPair),
        (
            "ring",
            ChannelTransport::Ring {
                frame_size: 4096 + 64,
                frames: 256,
            },
        ),
    ]
}

fn spawn(t: ChannelTransport) -> Worker {
    Worker::spawn(WorkerConfig {
        transport: t,
        ..WorkerConfig::default()
    })
    .expect("spawn worker")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Main-loop cost of `send()` (no reply wait inside the timed region): bursts of 32 submits,
/// then the loop drains replies (untimed), as a main loop would between iterations.
fn submit_cost(t: ChannelTransport, size: usize) -> (u64, u64) {
    let mut w = spawn(t);
    let op = w.opcode("noop").unwrap();
    let payload = vec![0x5a; size];
    let mut samples = Vec::with_capacity(40_000);
    for round in 0..1300 {
        for _ in 0..32 {
            let t0 = Instant::now();
            let r = w.send(op, &payload, Vec::new());
            let dt = t0.elapsed().as_nanos() as u64;
            r.unwrap();
            if round >= 50 {
                samples.push(dt);
            }
        }
        while w.in_flight() > 0 {
            w.wait(Some(Duration::from_millis(100))).unwrap();
            while w.take_reply().is_some() {}
        }
    }
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Requests per second with up to `window` requests in flight.
/// With `busy`, the main loop never sleeps (a loop with other work); otherwise it sleeps in
/// `poll` whenever `run()` found nothing.
fn pipelined(t: ChannelTransport, size: usize, n: u64, window: usize, busy: bool) -> f64 {
    let mut w = spawn(t);
    let op = w.opcode("echo").unwrap();
    let payload = vec![0x5a; size];
    let (mut sent, mut got) = (0u64, 0u64);
    let t0 = Instant::now();
    while got < n {
        while sent < n && w.in_flight() < window {
            match w.send(op, &payload, Vec::new()) {
                Ok(_) => sent += 1,
                Err(WorkerError::Backpressure(_)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if w.run().unwrap() == 0 && !busy {
            w.wait(Some(Duration::from_millis(100))).unwrap();
        }
        while let Some(r) = w.take_reply() {
            r.unwrap();
            got += 1;
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn clock_overhead() -> u64 {
    let mut v: Vec<u64> = (0..10_000)
        .map(|_| {
            let t0 = Instant::now();
            t0.elapsed().as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    percentile(&v, 0.5)
}

fn tables() {
    println!(
        "clock read overhead (Instant pair, median): {} ns",
        clock_overhead()
    );
    println!("\n| transport | payload | submit p50 | submit p99 | pipelined req/s, sleeping loop | pipelined req/s, busy loop |");
    println!("|---|---|---|---|---|---|");
    for size in [64usize, 4096] {
        for (name, t) in transports() {
            let (p50, p99) = submit_cost(t, size);
            let n = if size == 64 { 300_000 } else { 100_000 };
            let sleeping = pipelined(t, size, n, 256, false);
            let busy = pipelined(t, size, n, 256, true);
            println!(
                "| {name} | {size} B | {:.3} µs | {:.3} µs | {sleeping:.0} | {busy:.0} |",
                p50 as f64 / 1e3,
                p99 as f64 / 1e3
            );
        }
    }
    println!();
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    for size in [64usize, 4096] {
        for (name, t) in transports() {
            let mut w = spawn(t);
            let op = w.opcode("echo").unwrap();
            let payload = vec![0x5a; size];
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| w.call(op, &payload, Vec::new()).unwrap())
            });
        }
    }
    group.finish();
}

fn main() {
    maybe_run_worker(registry);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    if std::env::args().any(|a| a == "--bench") {
        tables();
    }
    round_trip(&mut c);
    c.final_summary();
}
