//! [`Memory`]: word-addressed memory that may be shared with, and changed by, another process.

use crate::sync::AtomicU64;
use crate::ShmError;

/// Memory made of 64-bit atomic words, addressed by byte offsets from its start.
///
/// This is all a reader of a shared structure ever touches: every access is bounds-checked
/// and returns atomics, so reading memory that a writer in another process is changing is a
/// logic race (caught by validation), never a data race. Implemented by the writer's
/// [`Region`](crate::Region), the client's [`RegionView`](crate::RegionView), and
/// [`HeapMemory`] (tests, property tests and loom models).
///
/// ```
/// use nlkit_shm::{HeapMemory, Memory};
/// let m = HeapMemory::zeroed(4);
/// assert_eq!(m.len(), 32);
/// assert!(m.words(24, 2).is_err());
/// assert!(m.words(24, 1).is_ok());
/// ```
pub trait Memory {
    /// The number of bytes that may be accessed.
    fn len(&self) -> u64;

    /// Whether no byte may be accessed.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` words starting at byte offset `off` (8-byte aligned), or an error when any of them
    /// lies outside [`len`](Memory::len).
    fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError>;

    /// The word at byte offset `off`.
    fn word(&self, off: u64) -> Result<&AtomicU64, ShmError> {
        Ok(&self.words(off, 1)?[0])
    }
}

/// Checks `off`/`n` against `len` bytes and returns the word range.
pub(crate) fn check(off: u64, n: usize, len: u64) -> Result<std::ops::Range<usize>, ShmError> {
    if off % 8 != 0 {
        return Err(ShmError::Misaligned(off));
    }
    let bytes = (n as u64).checked_mul(8);
    match bytes.and_then(|b| off.checked_add(b)) {
        Some(end) if end <= len => Ok((off / 8) as usize..(end / 8) as usize),
        _ => Err(ShmError::OutOfBounds {
            off,
            len: bytes.unwrap_or(u64::MAX),
            mapped: len,
        }),
    }
}

/// Ordinary process memory as [`Memory`]: for tests, property tests (fill it with random
/// words and hand it to a reader) and loom models.
///
/// ```
/// use nlkit_shm::{HeapMemory, Memory};
/// let m = HeapMemory::from_words(&[1, 2, 3]);
/// assert_eq!(m.word(8).unwrap().load(std::sync::atomic::Ordering::Relaxed), 2);
/// ```
#[derive(Debug)]
pub struct HeapMemory {
    words: Box<[AtomicU64]>,
}

impl HeapMemory {
    /// `n` zero words.
    pub fn zeroed(n: usize) -> Self {
        HeapMemory {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Memory holding `words`.
    pub fn from_words(words: &[u64]) -> Self {
        HeapMemory {
            words: words.iter().map(|w| AtomicU64::new(*w)).collect(),
        }
    }

    /// Memory holding `bytes` (zero-padded to whole words, native byte order).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let words: Vec<u64> = bytes
            .chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                u64::from_ne_bytes(w)
            })
            .collect();
        Self::from_words(&words)
    }
}

impl Memory for HeapMemory {
    fn len(&self) -> u64 {
        self.words.len() as u64 * 8
    }

    fn words(&self, off: u64, n: usize) -> Result<&[AtomicU64], ShmError> {
        let r = check(off, n, self.len())?;
        Ok(&self.words[r])
    }
}

/// Appends `len` bytes starting at byte offset `off` (8-byte aligned) to `out`, read word by
/// word with `Relaxed` loads. The bytes may be torn by a concurrent writer: callers validate
/// them afterwards (a generation word, an `Acquire` fence, the word again).
///
/// ```
/// use nlkit_shm::{read_bytes, HeapMemory};
/// let m = HeapMemory::from_bytes(b"hello, world");
/// let mut out = Vec::new();
/// read_bytes(&m, 0, 5, &mut out).unwrap();
/// assert_eq!(out, b"hello");
/// ```
pub fn read_bytes<M: Memory + ?Sized>(
    mem: &M,
    off: u64,
    len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ShmError> {
    let words = mem.words(off, len.div_ceil(8))?;
    copy_words(words, len, out);
    Ok(())
}

/// Appends the first `len` bytes of `words` (`len <= 8 * words.len()`, else only the bytes of
/// `words`) to `out`, read with `Relaxed` loads: [`read_bytes`] once the words are found.
#[inline]
pub(crate) fn copy_words(words: &[AtomicU64], len: usize, out: &mut Vec<u8>) {
    let words = &words[..len.div_ceil(8).min(words.len())];
    let len = len.min(words.len() * 8);
    // One reservation; whole words written into the spare capacity (no per-word length
    // arithmetic or capacity check), the padding of the last one left out of the length.
    let start = out.len();
    let whole = words.len() * 8;
    out.reserve(whole);
    let spare = &mut out.spare_capacity_mut()[..whole];
    for (c, w) in spare.chunks_exact_mut(8).zip(words) {
        let b = w.load(crate::sync::Ordering::Relaxed).to_ne_bytes();
        for (d, s) in c.iter_mut().zip(b) {
            d.write(s);
        }
    }
    // SAFETY: the `whole` bytes after `start` were all written above (one chunk of 8 per
    // word, `words.len()` words), and `len <= whole <= capacity - start`.
    unsafe { out.set_len(start + len) };
}

/// Stores `bytes` at byte offset `off` (8-byte aligned) word by word with `Relaxed` stores;
/// the last word is zero-padded. The writer's side of [`read_bytes`].
///
/// ```
/// use nlkit_shm::{read_bytes, write_bytes, HeapMemory};
/// let m = HeapMemory::zeroed(2);
/// write_bytes(&m, 0, b"abcdefghij").unwrap();
/// let mut out = Vec::new();
/// read_bytes(&m, 0, 10, &mut out).unwrap();
/// assert_eq!(out, b"abcdefghij");
/// ```
pub fn write_bytes<M: Memory + ?Sized>(mem: &M, off: u64, bytes: &[u8]) -> Result<(), ShmError> {
    let words = mem.words(off, bytes.len().div_ceil(8))?;
    let whole = bytes.chunks_exact(8);
    let tail = whole.remainder();
    for (w, c) in words.iter().zip(whole) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        w.store(u64::from_ne_bytes(b), crate::sync::Ordering::Relaxed);
    }
    if let Some(w) = words.get(bytes.len() / 8) {
        let mut b = [0u8; 8];
        b[..tail.len()].copy_from_slice(tail);
        w.store(u64::from_ne_bytes(b), crate::sync::Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Every length around word boundaries, appended after bytes already in the buffer, and
    /// written over memory that held other bytes: the same bytes back, the last word's
    /// padding zero, nothing past the range touched.
    #[test]
    fn bytes_round_trip_at_every_length() {
        for len in 0..=41usize {
            let m = HeapMemory::from_words(&[u64::MAX; 8]);
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
            write_bytes(&m, 8, &data).unwrap();
            let mut out = b"keep".to_vec();
            read_bytes(&m, 8, len, &mut out).unwrap();
            assert_eq!(&out[..4], b"keep");
            assert_eq!(&out[4..], &data[..], "len {len}");
            let words = len.div_ceil(8);
            let mut padded = Vec::new();
            read_bytes(&m, 8, words * 8, &mut padded).unwrap();
            assert!(
                padded[len..].iter().all(|&b| b == 0),
                "padding of len {len}"
            );
            let w = |i: u64| m.word(i * 8).unwrap().load(crate::sync::Ordering::Relaxed);
            assert_eq!(w(0), u64::MAX);
            for i in (1 + words as u64)..8 {
                assert_eq!(w(i), u64::MAX, "word {i} after len {len}");
            }
        }
    }

    #[test]
    fn bytes_out_of_bounds_are_errors() {
        let m = HeapMemory::zeroed(2);
        let mut out = vec![1];
        assert!(read_bytes(&m, 8, 9, &mut out).is_err());
        assert!(read_bytes(&m, 4, 1, &mut out).is_err());
        assert_eq!(out, [1], "nothing appended on an error");
        assert!(write_bytes(&m, 8, &[0; 9]).is_err());
        assert!(read_bytes(&m, 16, 0, &mut out).is_ok());
    }
}
