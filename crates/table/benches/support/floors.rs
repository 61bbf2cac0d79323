//! Floors: two structures that are not maps, run by the `ratios` bench beside the maps to
//! show what this machine allows. Each makes the memory accesses of a lookup and nothing else
//! (no chain, no collision handling, no validation, no locks: a colliding insert overwrites),
//! so no map whose lookups make the same accesses can be faster in the same op loop.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::BenchMap;

/// The index of key `k` in an array of `2^(64 - shift)` elements (a multiply-shift hash; the
/// bench's keys are already scrambled).
fn index(k: u64, shift: u32) -> usize {
    ((k ^ 0x5555_5555_5555_5555).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize
}

/// Lookup in a `(key, value)` pair: the key's load decides, the value's is kept alive.
fn read(pair: &[AtomicU64], k: u64) -> bool {
    pair[0].load(Ordering::Acquire) == k
        && std::hint::black_box(pair[1].load(Ordering::Relaxed)) != 0
}

/// Overwrites a pair with `k → v` (value first, key published last).
fn write(pair: &[AtomicU64], k: u64, v: u64) {
    pair[1].store(v, Ordering::Relaxed);
    pair[0].store(k, Ordering::Release);
}

/// Empties a pair if it holds `k`.
fn clear(pair: &[AtomicU64], k: u64) -> bool {
    pair[0]
        .compare_exchange(k, 0, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// One access per op: a direct-mapped array of `(key, value)` pairs, as many as entries
/// (16 bytes per entry, as small as a table of u64 pairs can be). A lookup hashes, loads one
/// pair and compares the key: the floor of any hash map's single lookup.
pub struct OneProbe {
    pairs: Box<[[AtomicU64; 2]]>,
    shift: u32,
}

impl OneProbe {
    pub fn new(entries: usize) -> Self {
        let n = entries.next_power_of_two();
        Self {
            pairs: (0..n).map(|_| Default::default()).collect(),
            shift: 64 - n.trailing_zeros(),
        }
    }
}

impl BenchMap<u64> for OneProbe {
    fn get(&self, k: &u64) -> bool {
        read(&self.pairs[index(*k, self.shift)], *k)
    }
    fn insert(&self, k: u64, v: u64) -> bool {
        write(&self.pairs[index(k, self.shift)], k, v);
        true
    }
    fn remove(&self, k: &u64) -> bool {
        clear(&self.pairs[index(*k, self.shift)], *k)
    }
    fn upsert(&self, k: u64, v: u64) {
        self.insert(k, v);
    }
    fn sweep(&self, _now: u64) -> usize {
        0
    }
}

/// Two dependent accesses per op, the layout of the nulls table: a bucket array of `u32`
/// slot indices, then an array of 32-byte slots. A lookup loads the bucket's index, then the
/// slot it names, and compares the key. The slot's index is stored by the insert and cannot be
/// computed by the reader, so the second load waits for the first, as a chain walk does. The
/// floor of any table whose lookup reads a bucket head, then a slot.
pub struct TwoProbe {
    heads: Box<[AtomicU32]>,
    slots: Box<[[AtomicU64; 4]]>,
    shift: u32,
    slot_mask: u32,
}

impl TwoProbe {
    pub fn new(buckets: usize, slots: usize) -> Self {
        let (b, s) = (buckets.next_power_of_two(), slots.next_power_of_two());
        Self {
            heads: (0..b).map(|_| Default::default()).collect(),
            slots: (0..s).map(|_| Default::default()).collect(),
            shift: 64 - b.trailing_zeros(),
            slot_mask: s as u32 - 1,
        }
    }

    fn slot(&self, k: u64) -> &[AtomicU64; 4] {
        let i = self.heads[index(k, self.shift)].load(Ordering::Acquire);
        &self.slots[(i & self.slot_mask) as usize]
    }
}

impl BenchMap<u64> for TwoProbe {
    fn get(&self, k: &u64) -> bool {
        read(self.slot(*k), *k)
    }
    fn insert(&self, k: u64, v: u64) -> bool {
        let b = index(k, self.shift);
        let i = (b as u32).wrapping_mul(0x9e37_79b1) & self.slot_mask;
        write(&self.slots[i as usize], k, v);
        self.heads[b].store(i, Ordering::Release);
        true
    }
    fn remove(&self, k: &u64) -> bool {
        clear(self.slot(*k), *k)
    }
    fn upsert(&self, k: u64, v: u64) {
        self.insert(k, v);
    }
    fn sweep(&self, _now: u64) -> usize {
        0
    }
}
