//! The region header: the first [`HEADER_BYTES`](crate::HEADER_BYTES) of every region
//! (layout in DESIGN.md §2).
//!
//! | byte offset | word |
//! |---|---|
//! | 0 | magic, [`MAGIC`] |
//! | 8 | layout version, [`VERSION`] |
//! | 16 | header bytes ([`HEADER_BYTES`](crate::HEADER_BYTES)) |
//! | 24 | directory slots ([`DIR_SLOTS`]) |
//! | 32 | file length, stored (`Release`) after each `ftruncate`: informational only |
//! | 40 | bump pointer (bytes allocated): informational only |
//! | 48 | directory count, stored `Release` after an entry is written |
//! | 56..128 | reserved (zero) |
//! | 128.. | [`DIR_SLOTS`] entries of two words: `(id, offset)` |
//!
//! The functions here read through [`Memory`], so they bounds-check every access and work on
//! any bytes at all.

use crate::memory::Memory;
use crate::sync::Ordering;
use crate::ShmError;

/// `"NLKITSHM"` in the first word.
pub(crate) const MAGIC: u64 = u64::from_be_bytes(*b"NLKITSHM");
/// Layout version of the header and directory.
pub(crate) const VERSION: u64 = 1;
/// Entries in the directory.
pub(crate) const DIR_SLOTS: u64 = 128;

pub(crate) const OFF_MAGIC: u64 = 0;
pub(crate) const OFF_VERSION: u64 = 8;
pub(crate) const OFF_HEADER_BYTES: u64 = 16;
pub(crate) const OFF_DIR_SLOTS: u64 = 24;
pub(crate) const OFF_FILE_LEN: u64 = 32;
pub(crate) const OFF_TOP: u64 = 40;
pub(crate) const OFF_DIR_COUNT: u64 = 48;
/// The first directory entry.
pub(crate) const OFF_DIR: u64 = 128;

const _: () = assert!(OFF_DIR + DIR_SLOTS * 16 <= crate::region::HEADER_BYTES);

/// Writes a fresh header (the writer, before any reader can have the fd).
pub(crate) fn init<M: Memory + ?Sized>(mem: &M, file_len: u64) -> Result<(), ShmError> {
    mem.word(OFF_VERSION)?.store(VERSION, Ordering::Relaxed);
    mem.word(OFF_HEADER_BYTES)?
        .store(crate::region::HEADER_BYTES, Ordering::Relaxed);
    mem.word(OFF_DIR_SLOTS)?.store(DIR_SLOTS, Ordering::Relaxed);
    mem.word(OFF_FILE_LEN)?.store(file_len, Ordering::Relaxed);
    mem.word(OFF_TOP)?
        .store(crate::region::HEADER_BYTES, Ordering::Relaxed);
    mem.word(OFF_DIR_COUNT)?.store(0, Ordering::Relaxed);
    // Magic last: a header with the magic is complete.
    mem.word(OFF_MAGIC)?.store(MAGIC, Ordering::Release);
    Ok(())
}

/// Checks the magic, the version and the fixed geometry words.
pub(crate) fn validate<M: Memory + ?Sized>(mem: &M) -> Result<(), ShmError> {
    let w = mem.words(0, 4)?;
    if w[0].load(Ordering::Acquire) != MAGIC {
        return Err(ShmError::Corrupt("bad region magic"));
    }
    if w[1].load(Ordering::Relaxed) != VERSION {
        return Err(ShmError::Corrupt("unknown region layout version"));
    }
    if w[2].load(Ordering::Relaxed) != crate::region::HEADER_BYTES {
        return Err(ShmError::Corrupt("region header size"));
    }
    if w[3].load(Ordering::Relaxed) != DIR_SLOTS {
        return Err(ShmError::Corrupt("region directory size"));
    }
    Ok(())
}

/// The number of published directory entries (`Acquire`: the entries below it are visible).
fn count<M: Memory + ?Sized>(mem: &M) -> Result<u64, ShmError> {
    let n = mem.word(OFF_DIR_COUNT)?.load(Ordering::Acquire);
    if n > DIR_SLOTS {
        return Err(ShmError::Corrupt("region directory count"));
    }
    Ok(n)
}

/// The offset most recently published under `id`.
pub(crate) fn find<M: Memory + ?Sized>(mem: &M, id: u64) -> Result<u64, ShmError> {
    let n = count(mem)?;
    let entries = mem.words(OFF_DIR, (n * 2) as usize)?;
    // Newest first: publishing an id again replaces it for later lookups.
    for e in entries.chunks_exact(2).rev() {
        if e[0].load(Ordering::Relaxed) == id {
            return Ok(e[1].load(Ordering::Relaxed));
        }
    }
    Err(ShmError::NotFound(id))
}

/// Appends `(id, off)` to the directory. The caller serialises publishers (the writer's mutex).
pub(crate) fn publish<M: Memory + ?Sized>(mem: &M, id: u64, off: u64) -> Result<(), ShmError> {
    let count = mem.word(OFF_DIR_COUNT)?;
    let n = count.load(Ordering::Relaxed);
    if n >= DIR_SLOTS {
        return Err(ShmError::Full("region directory"));
    }
    let e = mem.words(OFF_DIR + n * 16, 2)?;
    e[0].store(id, Ordering::Relaxed);
    e[1].store(off, Ordering::Relaxed);
    // Release: a reader that sees the new count (Acquire) sees the entry, and everything the
    // writer stored before publishing (the object's own header).
    count.store(n + 1, Ordering::Release);
    Ok(())
}
