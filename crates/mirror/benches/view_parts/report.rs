//! The view bench's probes and report: the memory of the region's mappings from
//! `/proc/PID/smaps`, the `nlkit` command line timed, and the printed table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::repeat;

// ---------------------------------------------------------------------------------------
// Memory of the mapping
// ---------------------------------------------------------------------------------------

/// Sum of a field (`Pss`, `Rss`) over `pid`'s mappings of a memfd, KiB.
pub(super) fn memfd_kib(pid: &str, field: &str) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_memfd = false;
    let mut kib = 0;
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header line: "start-end perms offset dev inode path".
            in_memfd = l.contains("/memfd:");
        } else if in_memfd && first == format!("{field}:") {
            kib += l
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib
}

/// The size of this process's memfds (the mirror's region), bytes.
pub(super) fn memfd_bytes() -> u64 {
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            if target.to_string_lossy().starts_with("/memfd:") {
                total += std::fs::metadata(e.path()).map_or(0, |m| m.len());
            }
        }
    }
    total
}

// ---------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------

/// The `nlkit` binary: `NLKIT_BENCH_NLKIT`, else `nlkit` in this bench's profile directory
/// (`target/release/deps/view-…` → `target/release/nlkit`).
pub(super) fn nlkit_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NLKIT_BENCH_NLKIT") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("nlkit");
    p.is_file().then_some(p)
}

/// Best of [`repeat`] runs of `nlkit args… > /dev/null`; `None` if it failed.
pub(super) fn time_cli(bin: &Path, args: &[&str], vars: &[(&str, &str)]) -> Option<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..repeat() {
        let t = Instant::now();
        let st = Command::new(bin)
            .args(args)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !st.success() {
            eprintln!("{} {}: {st}", bin.display(), args.join(" "));
            return None;
        }
        best = best.min(t.elapsed());
    }
    Some(best)
}

// ---------------------------------------------------------------------------------------
// The printed table
// ---------------------------------------------------------------------------------------

/// One printed row.
pub(super) struct Row {
    measure: String,
    value: String,
    baseline: String,
    ratio: Option<f64>,
    goal: &'static str,
    /// Whether the goal is met (`None`: not measured, or no goal).
    met: Option<bool>,
}

pub(super) fn row(
    measure: impl Into<String>,
    value: impl Into<String>,
    baseline: impl Into<String>,
    ratio: Option<f64>,
    goal: &'static str,
    met: Option<bool>,
) -> Row {
    Row {
        measure: measure.into(),
        value: value.into(),
        baseline: baseline.into(),
        ratio,
        goal,
        met,
    }
}

pub(super) fn rate(r: f64) -> String {
    if r.is_finite() {
        format!("{:.0}/s", r)
    } else {
        "—".into()
    }
}

/// Microseconds, or "—" when not measured.
pub(super) fn us(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1} µs")
    } else {
        "—".into()
    }
}

pub(super) fn dur(s: f64) -> String {
    if !s.is_finite() {
        "—".into()
    } else if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.2} µs", s * 1e6)
    }
}

pub(super) fn print_table(title: &str, rows: &[Row]) {
    println!();
    println!("{title}");
    println!(
        "| {:<66} | {:>16} | {:>18} | {:>8} | {:<26} | {:<7} |",
        "measure", "value", "baseline", "ratio", "goal", "met"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(68),
        "-".repeat(18),
        "-".repeat(20),
        "-".repeat(10),
        "-".repeat(28),
        "-".repeat(9)
    );
    for r in rows {
        let ratio = r
            .ratio
            .filter(|x| x.is_finite())
            .map_or(String::new(), |x| format!("{x:.2}×"));
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "",
        };
        println!(
            "| {:<66} | {:>16} | {:>18} | {:>8} | {:<26} | {:<7} |",
            r.measure, r.value, r.baseline, ratio, r.goal, met
        );
    }
}

/// The 1-minute load average (the machine is shared: it says how noisy a run was).
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}
