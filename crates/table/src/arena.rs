//! The type-stable slot arena: slots addressed by `u32` index, allocated in chunks that live
//! as long as the arena, recycled through a lock-free free list.
//!
//! Concurrency contract:
//! - `chunks[i]` is null until chunk `i` is created under `grow_lock`, then published once
//!   with `Release` and never changed or freed until `Drop` (`&mut self`). An index is handed
//!   out only after its chunk is published, so `get` on any index that came from a link or
//!   the free list finds a live chunk. This is the Rust form of `SLAB_TYPESAFE_BY_RCU`:
//!   memory read by lock-free readers is never returned to the allocator while they run.
//! - Each of the `free` heads packs `(tag << 32) | index` of a Treiber stack threaded through
//!   each slot's `free_next`; the tag changes on every push and pop, so ABA is caught by the
//!   CAS. A push `Release`s everything the freeing thread wrote; a pop `Acquire`s it.
//! - There are [`FREE_LISTS`] stacks, each on its own cache line: a thread pushes to and pops
//!   from its home stack first (so two threads inserting and deleting do not CAS one line
//!   back and forth) and takes from the others only when its own is empty. A slot is on at
//!   most one stack; which one does not matter to anyone else. Under loom there is one stack
//!   (the protocol of each is the same; the models explore that one).

use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Mutex, Ordering};

/// Index meaning "no slot".
pub(crate) const NIL: u32 = u32::MAX;
/// Largest arena (indices must fit in 26 bits for the link encoding: `idx << 2 | dir << 1`
/// under the four tag bits of a link word).
pub(crate) const MAX_SLOTS: u32 = 1 << 26;
const MAX_CHUNK: u32 = 4096;

/// What the arena needs from a slot type.
pub(crate) trait ArenaSlot: Send + Sync {
    /// A fresh, free slot.
    fn new_free() -> Self;
    /// The free-list link of this slot.
    fn free_next(&self) -> &AtomicU32;
}

/// Free-slot stacks per arena.
#[cfg(not(loom))]
pub(crate) const FREE_LISTS: usize = 8;
/// Free-slot stacks per arena (one under loom).
#[cfg(loom)]
pub(crate) const FREE_LISTS: usize = 1;

/// One Treiber stack head, alone on its cache line.
#[repr(align(64))]
struct FreeHead(AtomicU64);

/// The free stack a thread uses first: threads are spread over the stacks in the order they
/// first free or allocate a slot.
#[cfg(not(loom))]
fn home() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering as O};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, O::Relaxed) % FREE_LISTS;
    }
    HOME.with(|h| *h)
}

#[cfg(loom)]
fn home() -> usize {
    0
}

pub(crate) struct Arena<T: ArenaSlot> {
    chunks: Box<[AtomicPtr<T>]>,
    chunk_shift: u32,
    capacity: u32,
    /// Protects growth; holds the number of slots created so far.
    grow_lock: Mutex<u32>,
    free: [FreeHead; FREE_LISTS],
}

impl<T: ArenaSlot> Arena<T> {
    pub(crate) fn new(capacity: u32) -> Self {
        assert!(
            capacity > 0 && capacity <= MAX_SLOTS,
            "capacity must be in 1..=2^26"
        );
        let chunk = capacity.next_power_of_two().min(MAX_CHUNK);
        let chunk_shift = chunk.trailing_zeros();
        let n_chunks = capacity.div_ceil(chunk) as usize;
        let chunks = (0..n_chunks)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect();
        Self {
            chunks,
            chunk_shift,
            capacity,
            grow_lock: Mutex::new(0),
            free: std::array::from_fn(|_| FreeHead(AtomicU64::new(u64::from(NIL)))),
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Number of slots created so far (memory actually allocated).
    pub(crate) fn created(&self) -> u32 {
        *self.grow_lock.lock()
    }

    fn chunk_len(&self, chunk: usize) -> usize {
        let base = (chunk as u32) << self.chunk_shift;
        (self.capacity - base).min(1 << self.chunk_shift) as usize
    }

    /// The slot at `idx`. `idx` must have come from this arena (a link or the free list).
    #[inline]
    pub(crate) fn get(&self, idx: u32) -> &T {
        let chunk = self.chunks[(idx >> self.chunk_shift) as usize].load(Ordering::Acquire);
        let off = (idx & ((1 << self.chunk_shift) - 1)) as usize;
        assert!(
            !chunk.is_null() && off < self.chunk_len((idx >> self.chunk_shift) as usize),
            "slot index from outside the arena"
        );
        // A non-null chunk was published by `grow` as a leaked boxed slice of `chunk_len` slots
        // (checked above), freed only by `Drop` (which needs `&mut self`); the reference borrows
        // `self`, and slots are only shared, with atomic reader-visible fields.
        // SAFETY: `chunk.add(off)` points into that live allocation, as argued above.
        unsafe { &*chunk.add(off) }
    }

    /// Hints the CPU to fetch slot `idx` into the cache (both ends, as a slot may straddle
    /// two lines). No effect on memory contents or ordering; a no-op off x86-64 and under
    /// loom. Used by batched lookups so that the cache misses of many keys overlap.
    #[inline]
    pub(crate) fn prefetch(&self, idx: u32) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let chunk = self.chunks[(idx >> self.chunk_shift) as usize].load(Ordering::Relaxed);
            if chunk.is_null() {
                return;
            }
            let off = (idx & ((1 << self.chunk_shift) - 1)) as usize;
            // Address arithmetic only (never dereferenced): `wrapping_add` stays defined even
            // for an index past the chunk's end.
            let first = chunk.wrapping_add(off) as *const i8;
            let last = first.wrapping_add(std::mem::size_of::<T>().max(1) - 1);
            // SAFETY: `prefetch` is a hint that never faults and never changes memory; it is
            // only `unsafe` because it is an SSE intrinsic, and SSE is part of x86-64's baseline.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(first);
                _mm_prefetch::<_MM_HINT_T0>(last);
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(loom))))]
        let _ = idx;
    }

    /// Pops a free slot: from the calling thread's home stack, else from another, else from
    /// a new chunk. `None` when full.
    pub(crate) fn pop(&self) -> Option<u32> {
        let home = home();
        loop {
            for i in 0..FREE_LISTS {
                if let Some(idx) = self.pop_from(&self.free[(home + i) % FREE_LISTS].0) {
                    return Some(idx);
                }
            }
            if !self.grow(home) {
                return None;
            }
        }
    }

    /// Pops from one stack; `None` when it is empty.
    fn pop_from(&self, stack: &AtomicU64) -> Option<u32> {
        loop {
            let head = stack.load(Ordering::Acquire);
            let idx = head as u32;
            if idx == NIL {
                return None;
            }
            let next = self.get(idx).free_next().load(Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(next);
            if stack
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(idx);
            }
            crate::sync::spin_hint();
        }
    }

    /// Pushes the chain `first ..= last` (linked through `free_next`) onto stack `to`.
    fn push_chain(&self, to: usize, first: u32, last: u32) {
        let stack = &self.free[to].0;
        let mut head = stack.load(Ordering::Relaxed);
        loop {
            self.get(last)
                .free_next()
                .store(head as u32, Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(first);
            match stack.compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(h) => {
                    head = h;
                    crate::sync::spin_hint();
                }
            }
        }
    }

    /// Returns a slot to the calling thread's home stack. The caller must own it exclusively
    /// (refcount 0).
    pub(crate) fn push(&self, idx: u32) {
        self.push_chain(home(), idx, idx);
    }

    /// Creates the next chunk onto stack `to`; false when the arena is at capacity.
    fn grow(&self, to: usize) -> bool {
        let mut created = self.grow_lock.lock();
        if self
            .free
            .iter()
            .any(|f| f.0.load(Ordering::Acquire) as u32 != NIL)
        {
            return true; // another thread grew (or freed) meanwhile
        }
        if *created >= self.capacity {
            return false;
        }
        let chunk = (*created >> self.chunk_shift) as usize;
        let len = self.chunk_len(chunk);
        let base = *created;
        let slots: Box<[T]> = (0..len).map(|_| T::new_free()).collect();
        for (i, s) in slots.iter().enumerate().take(len - 1) {
            s.free_next().store(base + i as u32 + 1, Ordering::Relaxed);
        }
        let ptr = Box::into_raw(slots) as *mut T;
        self.chunks[chunk].store(ptr, Ordering::Release);
        *created += len as u32;
        self.push_chain(to, base, base + len as u32 - 1);
        true
    }

    /// Visits every created slot (exclusive access: used by `Drop` of the tables).
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&T)) {
        let created = *self.grow_lock.lock();
        for idx in 0..created {
            f(self.get(idx));
        }
    }
}

impl<T: ArenaSlot> Drop for Arena<T> {
    fn drop(&mut self) {
        for i in 0..self.chunks.len() {
            let ptr = self.chunks[i].load(Ordering::Acquire);
            if ptr.is_null() {
                continue;
            }
            let len = self.chunk_len(i);
            // SAFETY: `ptr` came from `Box::into_raw` of a boxed slice of exactly `len` slots in
            // `grow`, is published once and freed only here; `&mut self` means no reader is left.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
        }
    }
}
