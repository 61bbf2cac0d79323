//! One function that drives the region reader over arbitrary bytes.
//!
//! [`region_view`] is the whole body of the `shm_region` cargo-fuzz target (`fuzz/` at the top
//! of the repository) and of the test that replays its corpus (`tests/region_corpus.rs`), so
//! the fuzzer and the ordinary test suite exercise the same code.
//!
//! Errors are the expected outcome for most input and are only counted. The function panics
//! only when the reader breaks one of its own promises (an access accepted beyond the file, a
//! lookup that disagrees with the directory in the bytes): such a panic is a bug, which is what
//! a fuzzer looks for.

use std::os::fd::OwnedFd;

use rustix::fs::{MemfdFlags, SealFlags};

use crate::header::{self, DIR_SLOTS};
use crate::memory::Memory;
use crate::region::{HEADER_BYTES, RESERVE};
use crate::{RegionView, ShmError};

/// What [`region_view`] saw.
///
/// ```
/// let r = nlkit_shm::fuzzing::region_view(&[]);
/// assert_eq!(r.mapped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegionReport {
    /// Views that mapped (of two tries: the bytes as they are, and with a valid magic,
    /// version and geometry written over their first 32 bytes).
    pub mapped: usize,
    /// Directory lookups that found an object.
    pub found: usize,
    /// Word accesses that were accepted.
    pub words: usize,
}

/// Puts `bytes` in a memfd sealed as a region is, maps it with [`RegionView::map`] and reads
/// it every way a client does: the directory (every id in the bytes' directory and a few
/// others) and words at the offsets found and at offsets taken from the bytes. Then the same
/// again with the header's magic, version and geometry made valid, so that arbitrary
/// directories get read.
///
/// ```
/// let r = nlkit_shm::fuzzing::region_view(&[0u8; 4096]);
/// assert_eq!(r.mapped, 1); // only the second try, with the header made valid
/// ```
pub fn region_view(bytes: &[u8]) -> RegionReport {
    let mut report = RegionReport::default();
    read_all(bytes, &mut report);
    let mut fixed = bytes.to_vec();
    if fixed.len() < 32 {
        fixed.resize(32, 0);
    }
    for (i, w) in [header::MAGIC, header::VERSION, HEADER_BYTES, DIR_SLOTS]
        .iter()
        .enumerate()
    {
        fixed[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }
    read_all(&fixed, &mut report);
    report
}

/// The word at byte offset `off` of `bytes`, if all 8 bytes are there.
fn word_of(bytes: &[u8], off: u64) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    let b = bytes.get(off..off.checked_add(8)?)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

/// What `find(id)` must answer for `bytes`, read directly (the oracle).
fn expected_find(bytes: &[u8], id: u64) -> Result<u64, ()> {
    let count = word_of(bytes, header::OFF_DIR_COUNT).ok_or(())?;
    if count > DIR_SLOTS {
        return Err(());
    }
    let entries: Vec<(u64, u64)> = (0..count)
        .map(|i| {
            let e = header::OFF_DIR + i * 16;
            Some((word_of(bytes, e)?, word_of(bytes, e + 8)?))
        })
        .collect::<Option<_>>()
        .ok_or(())?;
    entries
        .iter()
        .rev()
        .find(|(i, _)| *i == id)
        .map(|(_, off)| *off)
        .ok_or(())
}

fn sealed_memfd(bytes: &[u8]) -> Option<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "nlkit-fuzz",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .ok()?;
    let mut done = 0;
    while done < bytes.len() {
        done += rustix::io::write(&fd, &bytes[done..]).ok()?;
    }
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::SHRINK | SealFlags::FUTURE_WRITE | SealFlags::SEAL,
    )
    .ok()?;
    Some(fd)
}

fn read_all(bytes: &[u8], report: &mut RegionReport) {
    let Some(fd) = sealed_memfd(bytes) else {
        return; // out of memory or file descriptors: nothing to test
    };
    let size = bytes.len() as u64;
    let view = match RegionView::map(fd) {
        Ok(v) => v,
        Err(ShmError::Corrupt(_)) => {
            // Only a short file or a wrong magic/version/geometry may be refused as corrupt.
            let valid = size >= HEADER_BYTES
                && word_of(bytes, 0) == Some(header::MAGIC)
                && word_of(bytes, 8) == Some(header::VERSION)
                && word_of(bytes, 16) == Some(HEADER_BYTES)
                && word_of(bytes, 24) == Some(DIR_SLOTS);
            assert!(!valid, "a valid header was refused");
            return;
        }
        Err(ShmError::Os { .. }) => return, // mmap can fail under memory limits
        Err(e) => panic!("unexpected error mapping a sealed memfd: {e}"),
    };
    report.mapped += 1;
    assert_eq!(view.len(), size.min(RESERVE), "view length is the file's");

    // Every id in the directory the bytes claim, and a few that are probably not there.
    let mut ids: Vec<u64> = vec![0, 1, u64::MAX];
    let claimed = word_of(bytes, header::OFF_DIR_COUNT)
        .unwrap_or(0)
        .min(DIR_SLOTS);
    ids.extend((0..claimed).filter_map(|i| word_of(bytes, header::OFF_DIR + i * 16)));
    let mut offsets: Vec<u64> = vec![0, size.saturating_sub(8), size, RESERVE - 8];
    for id in ids {
        let got = view.find(id);
        assert_eq!(
            got.as_ref().ok().copied(),
            expected_find(bytes, id).ok(),
            "find({id:#x})"
        );
        if let Ok(off) = got {
            report.found += 1;
            offsets.push(off);
        }
    }
    offsets.extend((4..8).filter_map(|w| word_of(bytes, w * 8)));
    for off in offsets {
        for n in [0usize, 1, 2, 7, usize::MAX / 8 + 1] {
            match view.words(off, n) {
                Ok(w) => {
                    assert_eq!(w.len(), n);
                    assert!(
                        off % 8 == 0 && off + 8 * n as u64 <= size,
                        "accepted beyond the file"
                    );
                    report.words += 1;
                }
                Err(ShmError::Misaligned(o)) => assert_eq!(o, off),
                Err(ShmError::OutOfBounds { .. }) => {
                    let end = (n as u64).checked_mul(8).and_then(|b| off.checked_add(b));
                    assert!(
                        off % 8 != 0 || end.is_none_or(|e| e > size),
                        "refused inside the file"
                    );
                }
                Err(e) => panic!("unexpected error from words: {e}"),
            }
        }
    }
}
