//! The fuzz corpus and saved crash inputs, for the tests that replay them.
//!
//! This file uses only `std`: `nlkit-wire`'s corpus test includes it with `#[path]` (a
//! dev-dependency on this crate would be a cycle, as this crate depends on `nlkit-wire`).

use std::fs;
use std::path::{Path, PathBuf};

/// The folder `sub` under the workspace's `fuzz/` (for example `corpus/parse` or
/// `artifacts/parse`).
///
/// ```
/// let dir = nlkit_testns::corpus::fuzz_dir("corpus/parse");
/// assert!(dir.ends_with("fuzz/corpus/parse"));
/// ```
pub fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(sub)
}

/// Every file in `dir` as (file name, contents), sorted by name; none if `dir` does not exist.
///
/// Panics (it is for tests) if `dir` exists but a file in it cannot be read.
///
/// ```
/// let none = nlkit_testns::corpus::files(std::path::Path::new("/nonexistent/corpus"));
/// assert!(none.is_empty());
/// ```
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("read_dir"))
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("read corpus file"))
        })
        .collect();
    out.sort();
    out
}
