//! Multi-threaded stress tests, bounded by operation counts. On a small arena slots are
//! recycled constantly, so lookups race with delete-and-reuse of the slots they stand on.
//!
//! Checked: a lookup never returns an entry whose key differs from the one asked for (nor a
//! value of another incarnation); a key present throughout is never missed; at the end every
//! slot is back on the free list (the whole capacity can be inserted again).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use nlkit_table::{
    status, Clock, ConnConfig, ConnKey, ConnTable, GcBudget, ManualClock, NewConn, NullsTable,
    WordTable,
};

/// Tiny deterministic PRNG (xorshift64*), so the test needs no seeding machinery.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const OPS: usize = if cfg!(debug_assertions) {
    60_000
} else {
    600_000
};

fn value_of(key: u64, gen: u64) -> u64 {
    key << 24 | (gen & 0xff_ffff)
}

#[test]
fn nulls_table_lookups_never_misread() {
    const CAP: usize = 96;
    const STABLE: u64 = 32;
    let t: NullsTable<u64, u64> = NullsTable::with_buckets(CAP, 16);
    for k in 0..STABLE {
        t.insert(k, value_of(k, 0)).unwrap();
    }
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        for w in 0..2u64 {
            let (t, stop) = (&t, &stop);
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + w);
                for i in 0..OPS as u64 {
                    let k = 1000 + rng.below(200);
                    match rng.below(4) {
                        0 | 1 => drop(t.insert(k, value_of(k, i))),
                        2 => drop(t.remove(&k)),
                        _ => drop(t.insert_or_replace(k, value_of(k, i))),
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
        }
        for r in 0..2u64 {
            let (t, stop) = (&t, &stop);
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678 + r);
                let mut n = 0;
                while n < OPS || !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let stable = rng.below(2) == 0;
                    let k = if stable {
                        rng.below(STABLE)
                    } else {
                        1000 + rng.below(200)
                    };
                    match t.get(&k) {
                        Some(e) => {
                            assert_eq!(e.key(), k, "lookup returned another key");
                            assert_eq!(*e >> 24, k, "value of another incarnation");
                        }
                        None => assert!(!stable, "missed key {k} present throughout"),
                    }
                    if stable {
                        assert!(t.contains_key(&k), "peek missed key {k}");
                    }
                    if n % 4096 == 0 {
                        // A concurrent dump sees every stable key exactly once.
                        let mut seen: Vec<u64> =
                            t.iter().map(|e| e.key()).filter(|&k| k < STABLE).collect();
                        seen.sort_unstable();
                        assert_eq!(seen, (0..STABLE).collect::<Vec<_>>());
                    }
                }
            });
        }
    });
    for k in 0..STABLE {
        assert_eq!(t.get(&k).map(|e| *e), Some(value_of(k, 0)));
    }
    let stats = t.stats();
    println!("stats: {stats:?}");
    t.retain(|_, _| false);
    assert!(t.is_empty());
    for k in 0..CAP as u64 {
        t.insert(k, k).expect("a slot leaked");
    }
}

/// `WordTable`: reference-free reads racing with inserts, removes (slot reuse) and in-place
/// replaces never return a value of another key, and never miss a key present throughout.
#[test]
fn word_table_reads_never_misread() {
    const CAP: usize = 96;
    const STABLE: u64 = 32;
    let t: WordTable<u64> = WordTable::with_buckets(CAP, 16);
    for k in 0..STABLE {
        t.insert(k, value_of(k, 0)).unwrap();
    }
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        for w in 0..2u64 {
            let (t, stop) = (&t, &stop);
            s.spawn(move || {
                let mut rng = Rng(0x5157_0000 + w);
                for i in 0..OPS as u64 {
                    let k = if rng.below(8) == 0 {
                        rng.below(STABLE) // in-place replace of a stable key
                    } else {
                        1000 + rng.below(200)
                    };
                    match rng.below(4) {
                        _ if k < STABLE => drop(t.insert_or_replace(k, value_of(k, i))),
                        0 | 1 => drop(t.insert(k, value_of(k, i))),
                        2 => drop(t.remove(&k)),
                        _ => drop(t.insert_or_replace(k, value_of(k, i))),
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
        }
        for r in 0..2u64 {
            let (t, stop) = (&t, &stop);
            s.spawn(move || {
                let mut rng = Rng(0x4ead + r);
                let mut n = 0;
                while n < OPS || !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let stable = rng.below(2) == 0;
                    let k = if stable {
                        rng.below(STABLE)
                    } else {
                        1000 + rng.below(200)
                    };
                    match t.get(&k) {
                        Some(v) => assert_eq!(v >> 24, k, "value of another key"),
                        None => assert!(!stable, "missed key {k} present throughout"),
                    }
                }
            });
        }
        // A batched reader: `get_batch` over 20 keys (a full group of 16 and a partial one),
        // half of them stable.
        let (t, stop) = (&t, &stop);
        s.spawn(move || {
            let mut rng = Rng(0xba7c);
            let mut keys = [0u64; 20];
            let mut out = [None; 20];
            let mut n = 0;
            while n < OPS / 20 || !stop.load(Ordering::Relaxed) {
                n += 1;
                for k in &mut keys {
                    *k = if rng.below(2) == 0 {
                        rng.below(STABLE)
                    } else {
                        1000 + rng.below(200)
                    };
                }
                t.get_batch(&keys, &mut out);
                for (&k, v) in keys.iter().zip(out) {
                    match v {
                        Some(v) => assert_eq!(v >> 24, k, "batch: value of another key"),
                        None => assert!(k >= STABLE, "batch: missed key {k} present throughout"),
                    }
                }
            }
        });
    });
    println!("stats: {:?}", t.stats());
    assert_eq!(t.len(), STABLE as usize + t.retain(|k, _| k < STABLE));
    assert_eq!(t.retain(|_, _| false), STABLE as usize);
    for k in 0..CAP as u64 {
        t.insert(k, k).expect("a slot leaked");
    }
}

fn tuple(i: u32) -> ConnKey {
    let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 8)));
    let b = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1));
    ConnKey::new(a, (i & 0xff) as u16 + 1024, b, 443, 6).with_zone((i % 4) as u16)
}

/// Reply tuple under NAT: a different address, so both chains differ.
fn reply(i: u32) -> ConnKey {
    let mut r = tuple(i).reverse();
    r.dst = IpAddr::V4(Ipv4Addr::from(0x6440_0000 | i));
    r
}

#[test]
fn conn_table_under_churn_gc_and_cleanup() {
    const MAX: u32 = 128;
    const STABLE: u32 = 24;
    let clock = ManualClock::new(0);
    let t: ConnTable<u64> = ConnTable::new(ConnConfig {
        max: MAX,
        buckets: 32,
        clock: Clock::Manual(clock.clone()),
    });
    for i in 0..STABLE {
        let mut c = NewConn::new(tuple(i), reply(i), u32::MAX / 4, u64::from(i));
        c.status = status::ASSURED;
        t.insert(c).unwrap();
    }
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        // Churn: short-lived connections; some deleted, some left to expire.
        {
            let (t, stop, clock) = (&t, &stop, &clock);
            s.spawn(move || {
                let mut rng = Rng(77);
                for n in 0..OPS as u64 {
                    let i = 1000 + rng.below(400) as u32;
                    if let Ok(c) = t.insert(NewConn::new(tuple(i), reply(i), 5, u64::from(i))) {
                        assert_eq!(*c.state(), u64::from(i));
                        if rng.below(2) == 0 {
                            c.delete();
                        }
                    }
                    if n % 64 == 0 {
                        clock.advance(1);
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
        }
        // GC and clean-up of one zone of churn connections.
        {
            let (t, stop) = (&t, &stop);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    t.gc_step(GcBudget {
                        max_scanned: 8,
                        ..GcBudget::default()
                    });
                    if n % 16 == 0 {
                        t.remove_matching(|c| {
                            c.original().zone == 3 && c.status() & status::ASSURED == 0
                        });
                    }
                    thread::yield_now();
                }
            });
        }
        // Readers by either direction.
        for r in 0..2u64 {
            let (t, stop) = (&t, &stop);
            s.spawn(move || {
                let mut rng = Rng(991 + r);
                let mut n = 0;
                while n < OPS || !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let stable = rng.below(2) == 0;
                    let i = if stable {
                        rng.below(u64::from(STABLE)) as u32
                    } else {
                        1000 + rng.below(400) as u32
                    };
                    let q = if rng.below(2) == 0 {
                        tuple(i)
                    } else {
                        reply(i)
                    };
                    match t.get(&q) {
                        Some(c) => {
                            assert_eq!(c.tuple(c.direction()), q, "lookup returned another tuple");
                            assert_eq!((c.original(), c.reply()), (tuple(i), reply(i)));
                            assert_eq!(*c.state(), u64::from(i), "state of another incarnation");
                        }
                        None => assert!(!stable, "missed connection {i} present throughout"),
                    }
                    if let Some(v) = t.peek(&q) {
                        assert_eq!(
                            v.direction == nlkit_table::Direction::Original,
                            q == tuple(i)
                        );
                    } else {
                        assert!(!stable, "peek missed connection {i}");
                    }
                }
            });
        }
    });
    println!("stats: {:?}", t.stats());
    for i in 0..STABLE {
        assert!(t.get(&tuple(i)).is_some());
    }
    t.remove_matching(|_| true);
    assert_eq!(t.count(), 0);
    // Every slot is back: MAX assured connections fit (early drop cannot evict assured ones).
    for i in 0..MAX {
        let mut c = NewConn::new(tuple(5000 + i), reply(5000 + i), 1000, 0);
        c.status = status::ASSURED;
        t.insert(c).expect("a slot leaked");
    }
}
