//! Keys: anything that encodes injectively into a fixed number of `u64` words.
//!
//! A slot stores its key as atomic words so that a lock-free reader may compare it while
//! the slot is being recycled for another key (a logic race caught by validation, never a
//! data race).

use crate::sync::{AtomicU64, Ordering};

mod private {
    pub trait Sealed {}
}

/// The word representation of a key: `[u64; N]` for some `N`.
///
/// Sealed; implemented for every `[u64; N]`. Equality of keys is equality of words, so a
/// [`TableKey::to_words`] encoding must be injective.
pub trait KeyWords: Copy + Eq + Send + Sync + 'static + private::Sealed {
    /// Atomic storage for these words inside a slot.
    #[doc(hidden)]
    type Atomic: Send + Sync;
    #[doc(hidden)]
    fn new_atomic() -> Self::Atomic;
    #[doc(hidden)]
    fn store(&self, to: &Self::Atomic);
    #[doc(hidden)]
    fn load(from: &Self::Atomic) -> Self;
    #[doc(hidden)]
    fn matches(&self, stored: &Self::Atomic) -> bool;
    /// The words as a slice.
    fn words(&self) -> &[u64];
}

impl<const N: usize> private::Sealed for [u64; N] {}

impl<const N: usize> KeyWords for [u64; N] {
    type Atomic = [AtomicU64; N];

    fn new_atomic() -> Self::Atomic {
        std::array::from_fn(|_| AtomicU64::new(0))
    }

    #[inline]
    fn store(&self, to: &Self::Atomic) {
        for (a, w) in to.iter().zip(self) {
            a.store(*w, Ordering::Relaxed);
        }
    }

    #[inline]
    fn load(from: &Self::Atomic) -> Self {
        std::array::from_fn(|i| from[i].load(Ordering::Relaxed))
    }

    #[inline]
    fn matches(&self, stored: &Self::Atomic) -> bool {
        stored
            .iter()
            .zip(self)
            .all(|(a, w)| a.load(Ordering::Relaxed) == *w)
    }

    fn words(&self) -> &[u64] {
        self
    }
}

/// A key of a [`NullsTable`](crate::NullsTable) or [`ConnTable`](crate::ConnTable).
///
/// `to_words` must be injective and `from_words(&k.to_words())` must equal `k`.
///
/// ```
/// use nlkit_table::TableKey;
///
/// /// A route key: table id and an IPv4 prefix.
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// struct RouteKey { table: u32, dst: u32, len: u8 }
///
/// impl TableKey for RouteKey {
///     type Words = [u64; 1];
///     fn to_words(&self) -> [u64; 1] {
///         [(self.table as u64) << 40 | (self.len as u64) << 32 | self.dst as u64]
///     }
///     fn from_words(w: &[u64; 1]) -> Self {
///         RouteKey { table: (w[0] >> 40) as u32, len: (w[0] >> 32) as u8, dst: w[0] as u32 }
///     }
/// }
/// let k = RouteKey { table: 254, dst: 0x0a00_0000, len: 8 };
/// assert_eq!(RouteKey::from_words(&k.to_words()), k);
/// ```
pub trait TableKey: Sized {
    /// The fixed-size word form, `[u64; N]`.
    type Words: KeyWords;
    /// Encodes the key (injectively).
    fn to_words(&self) -> Self::Words;
    /// Decodes a key previously encoded by [`to_words`](Self::to_words).
    fn from_words(words: &Self::Words) -> Self;
}

impl TableKey for u64 {
    type Words = [u64; 1];
    fn to_words(&self) -> [u64; 1] {
        [*self]
    }
    fn from_words(w: &[u64; 1]) -> Self {
        w[0]
    }
}

impl TableKey for u32 {
    type Words = [u64; 1];
    fn to_words(&self) -> [u64; 1] {
        [u64::from(*self)]
    }
    fn from_words(w: &[u64; 1]) -> Self {
        w[0] as u32
    }
}

impl TableKey for u128 {
    type Words = [u64; 2];
    fn to_words(&self) -> [u64; 2] {
        [*self as u64, (*self >> 64) as u64]
    }
    fn from_words(w: &[u64; 2]) -> Self {
        u128::from(w[0]) | u128::from(w[1]) << 64
    }
}

impl<const N: usize> TableKey for [u64; N] {
    type Words = [u64; N];
    fn to_words(&self) -> [u64; N] {
        *self
    }
    fn from_words(w: &[u64; N]) -> Self {
        *w
    }
}

/// A byte-string key of at most `8 * (W - 1)` bytes, stored in `W` words (the first word
/// holds the length). Use it for keys the caller already has as bytes, such as a link name
/// or an encoded route key.
///
/// ```
/// use nlkit_table::{ByteKey, NullsTable};
///
/// let names: NullsTable<ByteKey<3>, u32> = NullsTable::new(16);
/// let key = ByteKey::<3>::new(b"veth0").unwrap();
/// names.insert(key, 7).unwrap();
/// assert_eq!(names.get(&key).map(|e| *e), Some(7));
/// assert_eq!(key.as_bytes(), b"veth0");
/// assert!(ByteKey::<2>::new(b"too long a name").is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteKey<const W: usize> {
    words: [u64; W],
}

impl<const W: usize> ByteKey<W> {
    /// Maximum length in bytes.
    pub const CAPACITY: usize = if W == 0 { 0 } else { 8 * (W - 1) };

    /// Packs `bytes`, or `None` if longer than [`Self::CAPACITY`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if W == 0 || bytes.len() > Self::CAPACITY {
            return None;
        }
        let mut words = [0u64; W];
        words[0] = bytes.len() as u64;
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            words[i + 1] = u64::from_le_bytes(buf);
        }
        Some(Self { words })
    }

    /// The packed bytes.
    pub fn as_bytes(&self) -> Vec<u8> {
        let len = (self.words.first().copied().unwrap_or(0) as usize).min(Self::CAPACITY);
        let mut out = Vec::with_capacity(len);
        for w in self.words.iter().skip(1) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

impl<const W: usize> std::fmt::Debug for ByteKey<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ByteKey({:?})", self.as_bytes())
    }
}

impl<const W: usize> TableKey for ByteKey<W> {
    type Words = [u64; W];
    fn to_words(&self) -> [u64; W] {
        self.words
    }
    fn from_words(w: &[u64; W]) -> Self {
        Self { words: *w }
    }
}

/// Seeded word hasher (folded multiply, as in foldhash/wyhash). Hand-written because it
/// hashes our `[u64; N]` words directly with a per-table random seed, which no `Hasher`
/// adaptor does without extra length prefixes and byte plumbing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WordHasher {
    seed: u64,
    mul: u64,
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl WordHasher {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed: seed ^ 0x243f_6a88_85a3_08d3,
            mul: (seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// A hasher seeded from the process's random state (fixed under loom, for replay).
    pub(crate) fn random() -> Self {
        #[cfg(loom)]
        let seed = 0x1234_5678_9abc_def0;
        #[cfg(not(loom))]
        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0x006e_6c6b_6974_u64)
        };
        Self::new(seed)
    }

    #[inline]
    pub(crate) fn hash(&self, words: &[u64]) -> u64 {
        let mut h = self.seed;
        for &w in words {
            h = fold_mul(h ^ w, self.mul);
        }
        fold_mul(h, 0x9e37_79b9_7f4a_7c15)
    }
}
