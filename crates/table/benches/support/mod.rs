//! Bench support: map adapters, key streams (uniform and Zipf), heap accounting, and the
//! u64 mixes ([`mixes`]).

pub mod floors;
pub mod mixes;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use nlkit_table::{NullsTable, WordTable};
use parking_lot::RwLock;

pub type Fold = foldhash::fast::RandomState;

/// System allocator that counts live heap bytes while `COUNTING` is set (a shared,
/// read-mostly flag, so timed runs pay one predictable branch).
pub struct CountingAlloc;
pub static COUNTING: AtomicBool = AtomicBool::new(false);
pub static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates every call to `System` unchanged; the counters have no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

/// Runs `f` and returns its result with the heap bytes it left allocated.
pub fn measure_heap<R>(f: impl FnOnce() -> R) -> (R, isize) {
    let before = LIVE.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    (r, LIVE.load(Ordering::Relaxed) - before)
}

/// xorshift64* PRNG.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        (((self.next() >> 11) as u128 * n as u128) >> 53) as u64
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s = 1.0) over `n` ranks; each rank maps to a scrambled key so hot keys spread
/// over buckets.
pub struct Zipf {
    cdf: Vec<f64>,
}
impl Zipf {
    pub fn new(n: usize) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for i in 1..=n {
            acc += 1.0 / i as f64;
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

/// Maps a rank or index to a key (a bijection on u64, so keys look random).
pub fn scramble(i: u64) -> u64 {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The operations a bench map supports (u64 → u64, or ConnKey → u64 for churn/gc).
pub trait BenchMap<K>: Sync {
    fn get(&self, k: &K) -> bool;
    fn insert(&self, k: K, v: u64) -> bool;
    fn remove(&self, k: &K) -> bool;
    fn upsert(&self, k: K, v: u64);
    /// Deletes entries whose value is below `now`; returns how many.
    fn sweep(&self, now: u64) -> usize;
    /// Whether the bench loop should gather consecutive lookups into [`get_batch`] calls.
    fn batches(&self) -> bool {
        false
    }
    /// Looks up every key (only called when [`batches`] is true).
    fn get_batch(&self, ks: &[K]) {
        for k in ks {
            self.get(k);
        }
    }
}

/// `WordTable` driven through `WordTable::get_batch`: the bench loop gathers runs of
/// consecutive lookups (up to 16, flushed before any write) into one call.
pub struct Batched(pub WordTable<u64>);
impl BenchMap<u64> for Batched {
    fn get(&self, k: &u64) -> bool {
        BenchMap::get(&self.0, k)
    }
    fn insert(&self, k: u64, v: u64) -> bool {
        BenchMap::insert(&self.0, k, v)
    }
    fn remove(&self, k: &u64) -> bool {
        BenchMap::remove(&self.0, k)
    }
    fn upsert(&self, k: u64, v: u64) {
        BenchMap::upsert(&self.0, k, v)
    }
    fn sweep(&self, now: u64) -> usize {
        BenchMap::sweep(&self.0, now)
    }
    fn batches(&self) -> bool {
        true
    }
    fn get_batch(&self, ks: &[u64]) {
        let mut out = [None; 16];
        for c in ks.chunks(16) {
            self.0.get_batch(c, &mut out[..c.len()]);
            std::hint::black_box(&out);
        }
    }
}

impl BenchMap<u64> for NullsTable<u64, u64> {
    fn get(&self, k: &u64) -> bool {
        self.get_with(k, |v| std::hint::black_box(*v)).is_some()
    }
    fn insert(&self, k: u64, v: u64) -> bool {
        NullsTable::insert(self, k, v).is_ok()
    }
    fn remove(&self, k: &u64) -> bool {
        NullsTable::remove(self, k)
    }
    fn upsert(&self, k: u64, v: u64) {
        let _ = self.insert_or_replace(k, v);
    }
    fn sweep(&self, now: u64) -> usize {
        self.retain(|_, v| *v >= now)
    }
}

impl BenchMap<u64> for WordTable<u64> {
    fn get(&self, k: &u64) -> bool {
        WordTable::get(self, k).map(std::hint::black_box).is_some()
    }
    fn insert(&self, k: u64, v: u64) -> bool {
        WordTable::insert(self, k, v).is_ok()
    }
    fn remove(&self, k: &u64) -> bool {
        WordTable::remove(self, k)
    }
    fn upsert(&self, k: u64, v: u64) {
        let _ = self.insert_or_replace(k, v);
    }
    fn sweep(&self, now: u64) -> usize {
        self.retain(|_, v| v >= now)
    }
}

pub struct Papaya<K>(pub papaya::HashMap<K, u64, Fold>);
impl<K: Hash + Eq + Send + Sync + Clone> BenchMap<K> for Papaya<K> {
    fn get(&self, k: &K) -> bool {
        self.0
            .pin()
            .get(k)
            .map(|v| std::hint::black_box(*v))
            .is_some()
    }
    fn insert(&self, k: K, v: u64) -> bool {
        self.0.pin().try_insert(k, v).is_ok()
    }
    fn remove(&self, k: &K) -> bool {
        self.0.pin().remove(k).is_some()
    }
    fn upsert(&self, k: K, v: u64) {
        self.0.pin().insert(k, v);
    }
    fn sweep(&self, now: u64) -> usize {
        let before = self.0.len();
        self.0.pin().retain(|_, v| *v >= now);
        before - self.0.len()
    }
}

pub struct Scc<K: 'static>(pub scc::HashMap<K, u64, Fold>);
impl<K: Hash + Eq + Send + Sync + Clone + 'static> BenchMap<K> for Scc<K> {
    fn get(&self, k: &K) -> bool {
        self.0.read(k, |_, v| std::hint::black_box(*v)).is_some()
    }
    fn insert(&self, k: K, v: u64) -> bool {
        self.0.insert(k, v).is_ok()
    }
    fn remove(&self, k: &K) -> bool {
        self.0.remove(k).is_some()
    }
    fn upsert(&self, k: K, v: u64) {
        self.0.upsert(k, v);
    }
    fn sweep(&self, now: u64) -> usize {
        let before = self.0.len();
        self.0.retain(|_, v| *v >= now);
        before - self.0.len()
    }
}

pub struct Dash<K>(pub dashmap::DashMap<K, u64, Fold>);
impl<K: Hash + Eq + Send + Sync + Clone> BenchMap<K> for Dash<K> {
    fn get(&self, k: &K) -> bool {
        self.0.get(k).map(|v| std::hint::black_box(*v)).is_some()
    }
    fn insert(&self, k: K, v: u64) -> bool {
        match self.0.entry(k) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(e) => {
                e.insert(v);
                true
            }
        }
    }
    fn remove(&self, k: &K) -> bool {
        self.0.remove(k).is_some()
    }
    fn upsert(&self, k: K, v: u64) {
        self.0.insert(k, v);
    }
    fn sweep(&self, now: u64) -> usize {
        let before = self.0.len();
        self.0.retain(|_, v| *v >= now);
        before - self.0.len()
    }
}

pub struct Locked<K>(pub RwLock<HashMap<K, u64, Fold>>);
impl<K: Hash + Eq + Send + Sync + Clone> BenchMap<K> for Locked<K> {
    fn get(&self, k: &K) -> bool {
        self.0
            .read()
            .get(k)
            .map(|v| std::hint::black_box(*v))
            .is_some()
    }
    fn insert(&self, k: K, v: u64) -> bool {
        let mut m = self.0.write();
        if m.contains_key(&k) {
            return false;
        }
        m.insert(k, v);
        true
    }
    fn remove(&self, k: &K) -> bool {
        self.0.write().remove(k).is_some()
    }
    fn upsert(&self, k: K, v: u64) {
        self.0.write().insert(k, v);
    }
    fn sweep(&self, now: u64) -> usize {
        let mut m = self.0.write();
        let before = m.len();
        m.retain(|_, v| *v >= now);
        before - m.len()
    }
}

/// Builds each baseline map for `n` entries.
pub fn papaya_map<K: Hash + Eq>(n: usize) -> papaya::HashMap<K, u64, Fold> {
    papaya::HashMap::builder()
        .capacity(n)
        .hasher(Fold::default())
        .build()
}
