//! The u64 → u64 mixes shared by the `table` (criterion) and `ratios` (interleaved) benches:
//! op streams, the op loop, and the maps under test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nlkit_table::{NullsTable, WordTable};
use parking_lot::RwLock;

use super::floors::{OneProbe, TwoProbe};
use super::*;

/// Entries in every table.
pub const N: usize = 1 << 20;
/// Ops per thread per timed iteration.
pub const CHUNK: usize = 50_000;
/// Pregenerated ops per thread (iterations start at rotating offsets).
pub const STREAM: usize = 400_000;
pub const READ: u8 = 0;
pub const INSERT: u8 = 1;
pub const REMOVE: u8 = 2;
pub const UPDATE: u8 = 3;

pub fn stream(mix: [u64; 4], zipf: Option<&Zipf>, seed: u64) -> Vec<(u8, u64)> {
    let mut rng = Rng(seed);
    (0..STREAM)
        .map(|_| {
            let p = rng.below(100);
            let op = if p < mix[0] {
                READ
            } else if p < mix[0] + mix[1] {
                INSERT
            } else if p < mix[0] + mix[1] + mix[2] {
                REMOVE
            } else {
                UPDATE
            };
            let rank = match zipf {
                Some(z) => z.sample(&mut rng),
                None => rng.below(2 * N as u64),
            };
            (op, scramble(rank))
        })
        .collect()
}

pub fn run_ops<M: BenchMap<u64>>(
    map: &M,
    streams: &[Vec<(u8, u64)>],
    threads: usize,
    iters: u64,
    offset: &AtomicUsize,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = offset.fetch_add(7919, Ordering::Relaxed) % (STREAM - CHUNK);
        let t0 = Instant::now();
        thread::scope(|s| {
            for st in streams.iter().take(threads) {
                s.spawn(move || {
                    if map.batches() {
                        return run_batched(map, &st[start..start + CHUNK]);
                    }
                    for &(op, k) in &st[start..start + CHUNK] {
                        match op {
                            READ => {
                                map.get(&k);
                            }
                            INSERT => {
                                map.insert(k, k);
                            }
                            REMOVE => {
                                map.remove(&k);
                            }
                            _ => map.upsert(k, k),
                        }
                    }
                });
            }
        });
        total += t0.elapsed();
    }
    total
}

/// The op loop of a map that batches: runs of consecutive lookups (up to 16) go to one
/// `get_batch` call, flushed before each write so every op still sees the writes before it.
pub fn run_batched<M: BenchMap<u64>>(map: &M, ops: &[(u8, u64)]) {
    let mut keys = [0u64; 16];
    let mut n = 0;
    for &(op, k) in ops {
        if op == READ {
            keys[n] = k;
            n += 1;
            if n == keys.len() {
                map.get_batch(&keys);
                n = 0;
            }
            continue;
        }
        map.get_batch(&keys[..n]);
        n = 0;
        match op {
            INSERT => {
                map.insert(k, k);
            }
            REMOVE => {
                map.remove(&k);
            }
            _ => map.upsert(k, k),
        }
    }
    map.get_batch(&keys[..n]);
}

/// Builds a prefilled u64 map, printing heap bytes per entry once.
pub fn build_u64(name: &str, report: bool) -> Box<dyn BenchMapDyn> {
    let (map, bytes): (Box<dyn BenchMapDyn>, isize) = measure_heap(|| {
        let m: Box<dyn BenchMapDyn> = match name {
            "nlkit" => Box::new(NullsTable::<u64, u64>::with_buckets(2 * N, N)),
            "nlkit-word" => Box::new(WordTable::<u64>::with_buckets(2 * N, N)),
            "nlkit-word-default" => Box::new(WordTable::<u64>::new(2 * N)),
            "nlkit-word-batch" => Box::new(Batched(WordTable::<u64>::with_buckets(2 * N, N))),
            "one-probe" => Box::new(OneProbe::new(N)),
            "two-probe" => Box::new(TwoProbe::new(2 * N, N)),
            "papaya" => Box::new(Papaya(papaya_map(N))),
            "scc" => Box::new(Scc(scc::HashMap::with_capacity_and_hasher(
                N,
                Fold::default(),
            ))),
            "dashmap" => Box::new(Dash(dashmap::DashMap::with_capacity_and_hasher(
                N,
                Fold::default(),
            ))),
            _ => Box::new(Locked(RwLock::new(
                std::collections::HashMap::with_capacity_and_hasher(N, Fold::default()),
            ))),
        };
        for i in 0..N as u64 {
            m.insert(scramble(i), i);
        }
        m
    });
    if report {
        println!(
            "MEM u64->u64 {name}: {:.1} bytes/entry",
            bytes as f64 / N as f64
        );
    }
    map
}

/// Object-safe wrapper so one loop drives every map type.
pub trait BenchMapDyn: BenchMap<u64> {}
impl<T: BenchMap<u64>> BenchMapDyn for T {}
impl BenchMap<u64> for Box<dyn BenchMapDyn> {
    fn get(&self, k: &u64) -> bool {
        (**self).get(k)
    }
    fn insert(&self, k: u64, v: u64) -> bool {
        (**self).insert(k, v)
    }
    fn remove(&self, k: &u64) -> bool {
        (**self).remove(k)
    }
    fn upsert(&self, k: u64, v: u64) {
        (**self).upsert(k, v)
    }
    fn sweep(&self, now: u64) -> usize {
        (**self).sweep(now)
    }
    fn batches(&self) -> bool {
        (**self).batches()
    }
    fn get_batch(&self, ks: &[u64]) {
        (**self).get_batch(ks)
    }
}
