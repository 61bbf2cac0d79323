//! `nlkit-table` versus papaya, scc, dashmap and `RwLock<HashMap>` in one run.
//!
//! Mixes (1 and 2 threads, 1M entries, uniform and Zipf(1.0) keys):
//! - `readheavy`: 98 % lookups, 1 % insert, 1 % remove (conc-map-bench ReadHeavy);
//! - `exchange`: 10 % lookups, 40 % insert, 40 % remove, 10 % update (Exchange);
//! - `churn`: insert a connection (two tuples), 1–3 lookups by either tuple, delete;
//! - `gc`: sweep 1M connections of which 10 % expired (2 threads: with a concurrent reader).
//!
//! Bytes per entry (heap measured with a counting allocator) are printed as `MEM` lines.
//! Short by default: `cargo bench -p nlkit-table --bench table`.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use nlkit_table::{Clock, ConnConfig, ConnKey, ConnTable, GcBudget, ManualClock, NewConn};
use parking_lot::RwLock;
use support::mixes::*;
use support::*;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// `nlkit` is `NullsTable<u64, u64>` (boxed values, refcounted `get_with`); `nlkit-word` is
/// `WordTable<u64>` (inline values, reference-free reads); `nlkit-word-batch` is the same
/// table with runs of consecutive lookups (up to 16) sent to `WordTable::get_batch`, an API
/// the baselines do not have (they run every op singly). Only `nlkit` runs the connection
/// benches (`ConnTable`).
const MAPS: [&str; 7] = [
    "nlkit",
    "nlkit-word",
    "nlkit-word-batch",
    "papaya",
    "scc",
    "dashmap",
    "rwlock-hashmap",
];
const CONN_MAPS: [&str; 5] = ["nlkit", "papaya", "scc", "dashmap", "rwlock-hashmap"];

fn mix_group<M: BenchMap<u64>>(
    c: &mut Criterion,
    group: &str,
    name: &str,
    map: &M,
    streams: &[Vec<(u8, u64)>],
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat);
    let offset = AtomicUsize::new(0);
    for threads in [1, 2] {
        g.throughput(Throughput::Elements((threads * CHUNK) as u64));
        g.bench_function(BenchmarkId::new(name, threads), |b| {
            b.iter_custom(|iters| run_ops(map, streams, threads, iters, &offset))
        });
    }
    g.finish();
}

fn bench_mixes(c: &mut Criterion) {
    let zipf = Zipf::new(2 * N);
    for (mix_name, mix) in [("readheavy", [98, 1, 1, 0]), ("exchange", [10, 40, 40, 10])] {
        for (dist, z) in [("uniform", None), ("zipf", Some(&zipf))] {
            let streams: Vec<_> = (0..2).map(|t| stream(mix, z, 0x5eed + t)).collect();
            for name in MAPS {
                if name == "nlkit-word-batch" && mix_name != "readheavy" {
                    continue; // runs of lookups are too short to batch in exchange
                }
                let report = mix_name == "readheavy" && dist == "uniform";
                let map = build_u64(name, report);
                mix_group(c, &format!("{mix_name}/{dist}"), name, &map, &streams);
            }
        }
    }
}

fn tuple(id: u64) -> ConnKey {
    let src = IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(id >> 16)));
    let dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (id % 251) as u8));
    ConnKey::new(src, (id & 0xffff) as u16, dst, 443, 6)
}

fn reply(id: u64) -> ConnKey {
    tuple(id).reverse()
}

/// Connection-shaped operations, for `ConnTable` and for baselines that store both tuples.
trait ConnBench: Sync {
    fn add(&self, id: u64, expires: u64);
    fn lookup(&self, t: &ConnKey) -> bool;
    fn del(&self, id: u64);
    fn sweep(&self, now: u64) -> usize;
}

struct Ct(ConnTable<()>, ManualClock);
impl ConnBench for Ct {
    fn add(&self, id: u64, expires: u64) {
        let timeout = expires
            .saturating_sub(u64::from(self.1.now_ms()))
            .min(1 << 30) as u32;
        let _ = self
            .0
            .insert(NewConn::new(tuple(id), reply(id), timeout, ()));
    }
    fn lookup(&self, t: &ConnKey) -> bool {
        self.0.get(t).is_some()
    }
    fn del(&self, id: u64) {
        self.0.remove(&tuple(id));
    }
    fn sweep(&self, _now: u64) -> usize {
        let mut n = 0;
        loop {
            let r = self.0.gc_step(GcBudget::default());
            n += r.expired as usize;
            if r.pass_complete {
                return n;
            }
        }
    }
}

struct Pair<M>(M);
impl<M: BenchMap<ConnKey>> ConnBench for Pair<M> {
    fn add(&self, id: u64, expires: u64) {
        self.0.insert(tuple(id), expires);
        self.0.insert(reply(id), expires);
    }
    fn lookup(&self, t: &ConnKey) -> bool {
        self.0.get(t)
    }
    fn del(&self, id: u64) {
        self.0.remove(&tuple(id));
        self.0.remove(&reply(id));
    }
    fn sweep(&self, now: u64) -> usize {
        self.0.sweep(now) / 2
    }
}

const FAR: u64 = 1 << 29;

fn build_conn(name: &str) -> (Box<dyn ConnBench>, ManualClock) {
    let clock = ManualClock::new(10);
    let ((m, _), bytes) = measure_heap(|| {
        let m: Box<dyn ConnBench> = match name {
            "nlkit" => Box::new(Ct(
                ConnTable::new(ConnConfig {
                    max: (N + N / 4) as u32,
                    buckets: N as u32,
                    clock: Clock::Manual(clock.clone()),
                }),
                clock.clone(),
            )),
            "papaya" => Box::new(Pair(Papaya(papaya_map(2 * N)))),
            "scc" => Box::new(Pair(Scc(scc::HashMap::with_capacity_and_hasher(
                2 * N,
                Fold::default(),
            )))),
            "dashmap" => Box::new(Pair(Dash(dashmap::DashMap::with_capacity_and_hasher(
                2 * N,
                Fold::default(),
            )))),
            _ => Box::new(Pair(Locked(RwLock::new(
                std::collections::HashMap::with_capacity_and_hasher(2 * N, Fold::default()),
            )))),
        };
        // 90 % long-lived, 10 % (every tenth) expiring at once.
        for id in 0..N as u64 {
            m.add(id, if id % 10 == 9 { 11 } else { FAR });
        }
        (m, ())
    });
    println!(
        "MEM connection {name}: {:.1} bytes/connection",
        bytes as f64 / N as f64
    );
    (m, clock)
}

fn bench_conn(c: &mut Criterion) {
    for name in CONN_MAPS {
        let (map, clock) = build_conn(name);
        clock.set(12); // the 10 % are now expired
                       // Churn: unique new connections per thread.
        let mut g = c.benchmark_group("churn/uniform");
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2))
            .sampling_mode(SamplingMode::Flat);
        let next = AtomicUsize::new(0);
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements((threads * CHUNK / 5) as u64));
            g.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t0 = Instant::now();
                        thread::scope(|s| {
                            for _ in 0..threads {
                                let base = (1u64 << 40)
                                    + (next.fetch_add(1, Ordering::Relaxed) as u64) * (1 << 24);
                                let map = &*map;
                                s.spawn(move || {
                                    let mut rng = Rng(base | 1);
                                    for i in 0..(CHUNK / 5) as u64 {
                                        let id = base + i;
                                        map.add(id, FAR);
                                        for _ in 0..1 + rng.below(3) {
                                            let t = if rng.below(2) == 0 {
                                                tuple(id)
                                            } else {
                                                reply(id)
                                            };
                                            map.lookup(&t);
                                        }
                                        map.del(id);
                                    }
                                });
                            }
                        });
                        total += t0.elapsed();
                    }
                    total
                })
            });
        }
        g.finish();

        // GC sweep of 10 % expired; with 2 threads a reader runs lookups during the sweep.
        let mut g = c.benchmark_group("gc/10pct-expired");
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1))
            .sampling_mode(SamplingMode::Flat);
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements(N as u64));
            g.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let now = u64::from(clock.now_ms());
                        let stop = AtomicBool::new(false);
                        let map = &*map;
                        let t = thread::scope(|s| {
                            if threads == 2 {
                                s.spawn(|| {
                                    let mut rng = Rng(99);
                                    while !stop.load(Ordering::Relaxed) {
                                        map.lookup(&tuple(rng.below(N as u64) / 10 * 10));
                                    }
                                });
                            }
                            let t0 = Instant::now();
                            let n = map.sweep(now);
                            let t = t0.elapsed();
                            stop.store(true, Ordering::Relaxed);
                            assert!(n >= N / 10 - N / 100, "{name} swept only {n}");
                            t
                        });
                        total += t;
                        // Untimed: put the expired 10 % back.
                        for id in (9..N as u64).step_by(10) {
                            map.add(id, now + 1);
                        }
                        clock.advance(2);
                    }
                    total
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_mixes, bench_conn);
criterion_main!(benches);
