//! Interleaved throughput ratios: `WordTable` against the baselines on the `table` bench's
//! read-heavy and exchange mixes (1M entries, 1 and 2 threads, uniform and Zipf keys).
//!
//! The criterion bench measures one map after another, a few seconds each, and on a shared
//! VM the memory speed drifts by up to 3× over minutes, so its ratios between maps move from
//! run to run. Here every map is built first, then the maps take turns: each round runs four
//! 50,000-op slices per thread on every map (in a rotating order; a turn of a few tens of
//! milliseconds, so the caches the previous map left cold warm up early in it), and a map's
//! figure is the median over the rounds. Drift then hits all maps alike, and the ratios are
//! what to read.
//!
//! Beside the maps run two floors (`support/floors.rs`, read-heavy only): structures that
//! make a lookup's memory accesses and nothing else. `two-probe` reads a bucket head, then the
//! slot it names, as the nulls table must; its ratio to dashmap bounds what any table of that
//! layout can reach here with single lookups.
//!
//! `cargo bench -p nlkit-table --bench ratios` (a few minutes; `NLKIT_BENCH_ROUNDS` sets
//! the number of rounds, default 25).

#[allow(dead_code)] // shared with the `table` bench, which uses all of it
mod support;

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use support::mixes::*;
use support::*;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Slices of `CHUNK` ops per thread in one turn of a map.
const SLICES: u64 = 4;

/// `nlkit-word` is the criterion bench's `WordTable` (capacity 2M, 1M buckets: chains of
/// about one); `nlkit-word-default` is the table as `WordTable::new(capacity)` makes it, with
/// as many buckets as slots (2M, the kernel's default for conntrack), 4 bytes more per entry.
/// `one-probe` and `two-probe` are not maps but floors (`support/floors.rs`): the memory
/// accesses of a lookup with nothing else, one pair, or a bucket head then a slot (the nulls
/// table's layout). They run on read-heavy mixes only.
const MAPS: [&str; 8] = [
    "nlkit-word",
    "nlkit-word-default",
    "nlkit-word-batch",
    "papaya",
    "scc",
    "dashmap",
    "one-probe",
    "two-probe",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let rounds: usize = std::env::var("NLKIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let zipf = Zipf::new(2 * N);
    println!("interleaved medians over {rounds} rounds, M ops/s; ratios = WordTable / baseline");
    println!(
        "{:<18} {:>3} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>17} | {:>17} | {:>8} | {:>8} {:>8} {:>8}",
        "mix",
        "thr",
        "word",
        "w-dflt",
        "batch",
        "papaya",
        "scc",
        "dashmp",
        "1probe",
        "2probe",
        "word /pa /scc /dm",
        "dflt /pa /scc /dm",
        "batch/dm",
        "1probe/dm",
        "2probe/dm",
        "dflt/2probe"
    );
    for (mix_name, mix) in [("readheavy", [98, 1, 1, 0]), ("exchange", [10, 40, 40, 10])] {
        for (dist, z) in [("uniform", None), ("zipf", Some(&zipf))] {
            let streams: Vec<_> = (0..2).map(|t| stream(mix, z, 0x5eed + t)).collect();
            let names: Vec<&str> = MAPS
                .into_iter()
                .filter(|&m| {
                    !matches!(m, "nlkit-word-batch" | "one-probe" | "two-probe")
                        || mix_name == "readheavy"
                })
                // papaya on exchange with Zipf keys runs at ~0.1 M ops/s and its memory grows
                // by gigabytes a minute (tombstones are reused only by a resize copy): over
                // this bench's rounds it exhausted 24 GiB. The criterion bench still has it.
                .filter(|&m| m != "papaya" || (mix_name, dist) != ("exchange", "zipf"))
                .collect();
            let first = (mix_name, dist) == ("readheavy", "uniform");
            let maps: Vec<_> = names.iter().map(|n| build_u64(n, first)).collect();
            for threads in [1, 2] {
                let mut samples = vec![Vec::with_capacity(rounds); maps.len()];
                let offsets: Vec<_> = maps.iter().map(|_| AtomicUsize::new(0)).collect();
                for r in 0..rounds {
                    for k in 0..maps.len() {
                        let i = (r + k) % maps.len();
                        let t: Duration = run_ops(&maps[i], &streams, threads, SLICES, &offsets[i]);
                        let ops = (SLICES as usize * threads * CHUNK) as f64;
                        samples[i].push(ops / t.as_secs_f64() / 1e6);
                    }
                }
                let m: Vec<f64> = samples.into_iter().map(median).collect();
                let get = |n: &str| names.iter().position(|&x| x == n).map(|i| m[i]);
                let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
                let probe = get("one-probe");
                let probe2 = get("two-probe");
                let (word, dflt, batch, pa, sc, dm) = (
                    get("nlkit-word").unwrap_or(f64::NAN),
                    get("nlkit-word-default").unwrap_or(f64::NAN),
                    get("nlkit-word-batch"),
                    get("papaya"),
                    get("scc"),
                    get("dashmap"),
                );
                let ratios = |w: f64| [pa, sc, dm].map(|b| fmt(b.map(|b| w / b))).join(" ");
                println!(
                    "{:<18} {:>3} {:>6.2} {:>6.2} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>17} | {:>17} | {:>8} | {:>8} {:>8} {:>8}",
                    format!("{mix_name}/{dist}"),
                    threads,
                    word,
                    dflt,
                    fmt(batch),
                    fmt(pa),
                    fmt(sc),
                    fmt(dm),
                    fmt(probe),
                    fmt(probe2),
                    ratios(word),
                    ratios(dflt),
                    fmt(batch.zip(dm).map(|(b, d)| b / d)),
                    fmt(probe.zip(dm).map(|(p, d)| p / d)),
                    fmt(probe2.zip(dm).map(|(p, d)| p / d)),
                    fmt(probe2.map(|p| dflt / p)),
                );
            }
        }
    }
}
