//! The shared-memory view benchmark of issue 17 (`cargo bench -p nlkit-mirror --bench view`),
//! in a private network namespace, every ratio taken within one run against a kernel baseline
//! measured in the same run:
//!
//! - conntrack get by tuple through the view (1 and 2 threads) against a raw ctnetlink
//!   `IPCTNL_MSG_CT_GET` round-trip loop (one thread, prebuilt requests, only the reply headers
//!   walked), over the same random sample of the loaded tuples;
//! - a full IPv4 route walk through the view against the kernel's raw route dump;
//! - the conntrack entries of one source address through the view's address index against
//!   the kernel's `CTA_FILTER` dump of that address (the request `nlkit ct list -s ADDR`
//!   sends), for an address holding a large share of the table and one holding a few entries;
//! - the feed: a route change written to the kernel → visible to a reader waiting on the
//!   feed's futex (median and p99), and the mirror's CPU per change with 0, 1 and 16 waiting
//!   readers;
//! - memory: 16 processes map the view and walk every table; the sum of their PSS on the
//!   region's mapping against the region's resident size; the mirror's peak (`VmHWM`);
//! - `nlkit --mirror route show > /dev/null` against `nlkit route show > /dev/null` (the
//!   `nlkit` binary next to this bench's: `cargo build --release -p nlkit-cli` first, or
//!   `NLKIT_BENCH_NLKIT=/path/to/nlkit`).
//!
//! Every reader runs in a child process (this binary re-executed with `NLKIT_VIEW_BENCH_ROLE`),
//! so the view's figures include what crossing a process costs. The mirror runs in this
//! process (its peak memory is this process's, measured from just before it starts).
//!
//! Sizes: `NLKIT_BENCH_ROUTES` (default 1,000,000), `NLKIT_BENCH_CT` (default 200,000; see
//! `mirror.rs` on `nf_conntrack_max`), `NLKIT_BENCH_GETS` (tuples sampled, default 20,000),
//! `NLKIT_BENCH_CHANGES` (feed latency samples, default 1,000), `NLKIT_BENCH_CHURN` (route
//! changes per reader-cost round, default 20,000). Timings are best of 3 unless said.

// Each bench uses part of the shared helpers.
#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ct_get, env, mirror_cpu, raw_dump, reset_peak, route_dump_req, vm_hwm_kib};
use nlkit_conntrack::request::{DumpFilter, TupleFilter};
use nlkit_conntrack::{CtEntry, Tuple};
use nlkit_mirror::{Mirror, MirrorConfig, TableId, WriterMode};
use nlkit_socket::{Protocol, Socket};
use nlkit_view::{CtFilter, MirrorView, ViewError};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages, RtMsg};

/// The role of a re-executed child (absent in the bench process itself).
const ROLE: &str = "NLKIT_VIEW_BENCH_ROLE";
/// The mirror's socket path, for children.
const SOCK: &str = "NLKIT_VIEW_BENCH_SOCKET";
/// Seed of the tuple sample (the same in the kernel loop and the children).
const SEED: u64 = 0x005e_ed17;
/// Source address of the few-entries share (the fixtures use 10.200.0.0/16).
const SMALL_SRC: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);
/// Entries loaded from [`SMALL_SRC`].
const SMALL_SHARE: usize = 100;
/// Readers of the PSS measure.
const PSS_READERS: usize = 16;

/// Monotonic clock in nanoseconds, comparable across processes (unlike `Instant`).
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The fixtures' `i`-th connection (`nlkit_testns::load_conntrack`): 10.200.x.y:sport →
/// 10.201.0.1:53, UDP; one source address per 50,000 entries.
fn fixture_tuple(i: usize) -> Tuple {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 1)) + (i / 50_000) as u32);
    let sport = 1024 + (i % 50_000) as u16;
    Tuple::udp(
        IpAddr::V4(src),
        sport,
        IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
        53,
    )
}

fn conn_key(t: &Tuple) -> nlkit_table::ConnKey {
    nlkit_table::ConnKey::new(
        t.src,
        t.sport().unwrap_or(0),
        t.dst,
        t.dport().unwrap_or(0),
        t.proto,
    )
}

/// `k` fixture indices below `n`, drawn with splitmix64 from `seed` (with repeats).
fn sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut x = seed;
    (0..k)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z % n.max(1) as u64) as usize
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------------------
// Kernel baselines
// ---------------------------------------------------------------------------------------

/// Raw ctnetlink GET round trips, one thread: prebuilt requests (the sequence number patched
/// per send), one `send` and one `recv` per lookup on the bare fd, only the reply's headers
/// walked. Best of 3 passes over `tuples`; returns (lookups/s, found).
fn kernel_get_loop(tuples: &[Tuple]) -> (f64, usize) {
    let sock = Socket::open(Protocol::Netfilter).unwrap();
    let mut reqs: Vec<Vec<u8>> = tuples
        .iter()
        .map(|t| ct_get(&conn_key(t)).as_bytes().to_vec())
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut best = f64::MAX;
    let mut found = 0;
    let mut seq = 1u32;
    for _ in 0..3 {
        let mut ok = 0;
        let t = Instant::now();
        for r in reqs.iter_mut() {
            seq = seq.wrapping_add(1);
            r[8..12].copy_from_slice(&seq.to_ne_bytes());
            rustix::net::send(&sock, r, rustix::net::SendFlags::empty()).unwrap();
            let n = rustix::net::recv(&sock, &mut buf[..], rustix::net::RecvFlags::empty())
                .unwrap()
                .0;
            for m in Messages::new(&buf[..n]).flatten() {
                if m.ty() != NLMSG_ERROR && m.ty() != NLMSG_DONE {
                    ok += 1;
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
        found = ok;
    }
    (tuples.len() as f64 / best.max(1e-9), found)
}

/// The kernel's filtered dump of the entries whose original source is `src` (`CTA_FILTER`,
/// the request `nlkit ct list -s SRC` sends), read by the bare receive loop. Best of 3.
fn kernel_filtered_dump(src: IpAddr) -> (Duration, u64) {
    let f = DumpFilter {
        orig: Some(TupleFilter {
            src: Some(src),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut req = MessageBuilder::new();
    nlkit_conntrack::request::dump(&mut req, 0, &f).unwrap();
    raw_dump(Protocol::Netfilter, &req, 3)
}

/// Loads [`SMALL_SHARE`] UDP entries from [`SMALL_SRC`] (the few-entries address).
fn load_small_share() {
    let mut s = nlkit_conntrack::ops::open().unwrap();
    let entries: Vec<CtEntry> = (0..SMALL_SHARE as u16)
        .map(|i| {
            let t = Tuple::udp(
                IpAddr::V4(SMALL_SRC),
                2000 + i,
                IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
                53,
            );
            CtEntry {
                timeout: Some(600),
                mark: Some(1),
                ..CtEntry::new(t)
            }
        })
        .collect();
    for r in nlkit_conntrack::ops::create_many(&mut s, &entries).unwrap() {
        r.unwrap();
    }
}

/// One route change: adds (or deletes) 10.99.x.y/32 via `oif`; returns once the kernel acked.
fn route_change(sock: &mut Socket, oif: u32, dst: Ipv4Addr, add: bool) {
    let mut b = MessageBuilder::new();
    route_msg(&mut b, oif, dst, add, 1);
    sock.transact(&mut b).unwrap();
}

fn route_msg(b: &mut MessageBuilder, oif: u32, dst: Ipv4Addr, add: bool, seq: u32) {
    let (ty, flags) = if add {
        (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE)
    } else {
        (RTM_DELROUTE, NLM_F_REQUEST)
    };
    b.begin(ty, flags, seq);
    b.header(&RtMsg {
        family: AF_INET,
        dst_len: 32,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_STATIC,
        scope: if add { RT_SCOPE_LINK } else { RT_SCOPE_NOWHERE },
        ty: if add { RTN_UNICAST } else { RTN_UNSPEC },
        ..Default::default()
    });
    b.attr_ip(RTA_DST, IpAddr::V4(dst));
    if add {
        b.attr_u32(RTA_OIF, oif);
    }
    b.finish().unwrap();
}

/// Adds then deletes `n / 2` host routes via `oif` in batches: `n` route changes.
fn churn(oif: u32, n: usize) {
    let mut k = Socket::open(Protocol::Route).unwrap();
    let dsts: Vec<Ipv4Addr> = (0..n as u32 / 2)
        .map(|i| Ipv4Addr::from(0x0a60_0000 + i))
        .collect();
    for add in [true, false] {
        for chunk in dsts.chunks(256) {
            let mut b = MessageBuilder::new();
            for (i, d) in chunk.iter().enumerate() {
                route_msg(&mut b, oif, *d, add, i as u32 + 1);
            }
            k.transact_batch(&mut b).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Children: readers in other processes
// ---------------------------------------------------------------------------------------

/// A child process and the lines it prints.
struct Reader {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Reader {
    fn spawn(role: &str, sock: &Path, vars: &[(&str, String)]) -> Reader {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(ROLE, role)
            .env(SOCK, sock)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Reader { child, lines }
    }

    /// The rest of the next line starting with `key` (other lines are skipped; `error` lines
    /// are shown), or `None` after `timeout` or when the child ended.
    fn expect(&self, key: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let l = self.lines.recv_timeout(left).ok()?;
            if let Some(rest) = l.strip_prefix("error ") {
                eprintln!("reader {}: {rest}", self.child.id());
            }
            if let Some(rest) = l.strip_prefix(key) {
                return Some(rest.trim().to_owned());
            }
        }
    }

    /// Closes its stdin (the signal to finish), then waits for it.
    fn finish(mut self) -> mpsc::Receiver<String> {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        self.lines
    }
}

/// Words of a child's answer line as numbers.
fn nums(s: &Option<String>) -> Vec<f64> {
    s.as_deref()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A child's body: `role` from [`ROLE`]. Prints `key values…` lines; `error …` on failure.
fn child(role: &str) {
    let sock = PathBuf::from(std::env::var_os(SOCK).unwrap_or_default());
    let out = |s: String| {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    };
    let view = match MirrorView::open(&sock) {
        Ok(v) => v,
        Err(e) => return out(format!("error open: {e:?}")),
    };
    let r = match role {
        "measure" => child_measure(&view, out),
        "feed" => child_feed(&view, out),
        "follow" => child_follow(&view, out),
        "kevents" => {
            child_kernel_events(out);
            Ok(())
        }
        "pss" => walk_all(&view).map(|n| {
            out(format!("ready {n}"));
            // Holds the mapping until the bench has read its smaps.
            let _ = std::io::stdin().read_line(&mut String::new());
        }),
        _ => {
            out(format!("error unknown role {role}"));
            Ok(())
        }
    };
    if let Err(e) = r {
        out(format!("error {role}: {e:?}"));
    }
}

/// Walks every table the mirror publishes, message by message (conntrack unpacked into the
/// kernel's messages); returns the messages seen.
fn walk_all(view: &MirrorView) -> Result<u64, ViewError> {
    let mut n = 0;
    for t in nlkit_view::TableId::ALL {
        if !view.has_table(t) {
            continue;
        }
        if t == nlkit_view::TableId::Conntrack {
            view.ct_walk(&CtFilter::default(), |_, _| {
                n += 1;
                true
            })?;
        } else {
            view.walk_messages(t, |_| {
                n += 1;
                true
            })?;
        }
    }
    Ok(n)
}

/// Best of 3 runs of `f` (seconds) and its last result.
fn best_of_3<T>(mut f: impl FnMut() -> Result<T, ViewError>) -> Result<(f64, T), ViewError> {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let r = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    Ok((best, last.expect("three runs")))
}

/// Lookups by tuple (1 and 2 threads), the route walk, the address index.
fn child_measure(view: &MirrorView, out: impl Fn(String)) -> Result<(), ViewError> {
    let cts = env("NLKIT_BENCH_CT", 200_000);
    let gets = env("NLKIT_BENCH_GETS", 20_000);
    let keys: Vec<nlkit_table::ConnKey> = sample(cts, gets, SEED)
        .into_iter()
        .map(|i| conn_key(&fixture_tuple(i)))
        .collect();
    // A pass looks every sampled tuple up; each entry's kernel message goes to `msg`.
    let pass = || -> Result<usize, ViewError> {
        let mut msg = Vec::with_capacity(512);
        let mut found = 0;
        for k in &keys {
            msg.clear();
            found += usize::from(view.ct_get(k, &mut msg)?.is_some());
        }
        Ok(found)
    };
    let (s, found) = best_of_3(pass)?;
    out(format!("get1 {} {found}", keys.len() as f64 / s));
    // Where the time goes: the map lookup alone (the packed record, not unpacked into the
    // kernel's message; the map reader opened once).
    let map = view.table(nlkit_view::TableId::Conntrack)?;
    let (s, _) = best_of_3(|| {
        let mut rec = Vec::with_capacity(512);
        let mut found = 0;
        for k in &keys {
            rec.clear();
            let w = nlkit_table::TableKey::to_words(k);
            found += usize::from(map.get(0, &w, &mut rec).map_err(ViewError::Shm)?.is_some());
        }
        Ok(found)
    })?;
    out(format!("getmap {}", keys.len() as f64 / s));
    // Two threads, each over the whole sample: both threads' lookups / the wall time.
    let (s, _) = best_of_3(|| {
        std::thread::scope(|sc| {
            let a = sc.spawn(pass);
            let b = sc.spawn(pass);
            let a = a.join().expect("lookup thread");
            let b = b.join().expect("lookup thread");
            Ok(a? + b?)
        })
    })?;
    out(format!("get2 {}", 2.0 * keys.len() as f64 / s));
    // The IPv4 route walk: every message.
    let (s, n) = best_of_3(|| {
        let mut n = 0u64;
        view.routes(AF_INET, |_| {
            n += 1;
            true
        })?;
        Ok(n)
    })?;
    out(format!("walk {s} {n}"));
    // The address index, large and small share: every entry's kernel message.
    for (key, addr) in [
        ("addr_big", IpAddr::V4(Ipv4Addr::new(10, 200, 0, 1))),
        ("addr_small", IpAddr::V4(SMALL_SRC)),
    ] {
        let f = CtFilter {
            src: Some(addr),
            ..Default::default()
        };
        let (s, n) = best_of_3(|| {
            let mut n = 0u64;
            view.ct_walk(&f, |_, _| {
                n += 1;
                true
            })?;
            Ok(n)
        })?;
        out(format!("{key} {s} {n}"));
    }
    out("done".into());
    Ok(())
}

/// Feed latency: waits on the feed; after each wake-up reads what was published and prints
/// `seen NS ENTRIES`.
fn child_feed(view: &MirrorView, out: impl Fn(String)) -> Result<(), ViewError> {
    let mut feed = view.follow_now()?;
    stop_on_eof();
    out("ready".into());
    let mut buf = Vec::new();
    loop {
        if !feed.wait(Some(Duration::from_secs(1)))? {
            continue;
        }
        let t = mono_ns();
        let mut n = 0;
        loop {
            buf.clear();
            match feed.next(&mut buf) {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(ViewError::ResyncRequired { .. }) => {
                    feed = view.follow_now()?;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        out(format!("seen {t} {n}"));
    }
}

/// The latency baseline: a direct kernel subscriber of IPv4 route events; after each
/// wake-up prints `seen NS MESSAGES`.
fn child_kernel_events(out: impl Fn(String)) {
    let mut ev = match nlkit_socket::EventSocket::open(Protocol::Route, &[RTNLGRP_IPV4_ROUTE]) {
        Ok(e) => e,
        Err(e) => return out(format!("error kevents: {e:?}")),
    };
    stop_on_eof();
    out("ready".into());
    let mut buf = nlkit_socket::RecvBuffer::new();
    loop {
        match ev.recv_event(&mut buf) {
            Ok(nlkit_socket::Event::Messages { messages, .. }) => {
                let t = mono_ns();
                out(format!("seen {t} {}", messages.count()));
            }
            Ok(_) => {}
            Err(e) => return out(format!("error kevents: {e:?}")),
        }
    }
}

/// A waiting reader of the reader-cost rounds: follows the feed, counting entries, until its
/// stdin closes; then prints `count N LOST`.
fn child_follow(view: &MirrorView, out: impl Fn(String)) -> Result<(), ViewError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static RESYNCS: AtomicU64 = AtomicU64::new(0);
    let mut feed = view.follow_now()?;
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_line(&mut String::new());
        println!(
            "count {} {}",
            SEEN.load(Ordering::Relaxed),
            RESYNCS.load(Ordering::Relaxed)
        );
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    });
    out("ready".into());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match feed.next_wait(&mut buf, Some(Duration::from_secs(1))) {
            Ok(Some(_)) => {
                SEEN.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(ViewError::ResyncRequired { .. }) => {
                RESYNCS.fetch_add(1, Ordering::Relaxed);
                feed = view.follow_now()?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Exits the process when stdin closes (the bench's signal).
fn stop_on_eof() {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_line(&mut String::new());
        std::process::exit(0);
    });
}

// ---------------------------------------------------------------------------------------
// Memory of the mapping
// ---------------------------------------------------------------------------------------

/// Sum of a field (`Pss`, `Rss`) over `pid`'s mappings of a memfd, KiB.
fn memfd_kib(pid: &str, field: &str) -> u64 {
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
fn memfd_bytes() -> u64 {
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
fn nlkit_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NLKIT_BENCH_NLKIT") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("nlkit");
    p.is_file().then_some(p)
}

/// Best of 3 runs of `nlkit args… > /dev/null`; `None` if it failed.
fn time_cli(bin: &Path, args: &[&str], vars: &[(&str, &str)]) -> Option<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..3 {
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

/// Writes `changes` route changes one at a time (add, delete, add, …) while the child `role`
/// waits for them; for each, the microseconds from the write's return and from its start to
/// the child's wake-up (the child's first `seen` stamp after the write started).
fn latency(role: &str, sock: &Path, oif: u32, changes: usize) -> (Vec<f64>, Vec<f64>) {
    let r = Reader::spawn(role, sock, &[]);
    let mut from_ret = Vec::new();
    let mut from_start = Vec::new();
    if r.expect("ready", Duration::from_secs(60)).is_some() {
        let mut k = Socket::open(Protocol::Route).unwrap();
        for i in 0..changes {
            let dst = Ipv4Addr::from(0x0a63_0000 + (i / 2) as u32);
            let start = mono_ns();
            route_change(&mut k, oif, dst, i % 2 == 0);
            let ret = mono_ns();
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Some(l) = r.expect("seen", deadline.saturating_duration_since(Instant::now()))
            {
                let seen = nums(&Some(l)).first().copied().unwrap_or(0.0) as u64;
                if seen >= start {
                    from_start.push((seen - start) as f64 / 1e3);
                    from_ret.push((seen as f64 - ret as f64) / 1e3);
                    break;
                }
            }
        }
    }
    let _ = r.finish();
    (from_ret, from_start)
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

/// One printed row.
struct Row {
    measure: String,
    value: String,
    baseline: String,
    ratio: Option<f64>,
    goal: &'static str,
    /// Whether the goal is met (`None`: not measured, or no goal).
    met: Option<bool>,
}

fn row(
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

fn rate(r: f64) -> String {
    if r.is_finite() {
        format!("{:.0}/s", r)
    } else {
        "—".into()
    }
}

/// Microseconds, or "—" when not measured.
fn us(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1} µs")
    } else {
        "—".into()
    }
}

fn dur(s: f64) -> String {
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

fn print_table(title: &str, rows: &[Row]) {
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

fn run() {
    let routes = env("NLKIT_BENCH_ROUTES", 1_000_000);
    let cts = env("NLKIT_BENCH_CT", 200_000);
    let gets = env("NLKIT_BENCH_GETS", 20_000);
    let changes = env("NLKIT_BENCH_CHANGES", 1000);
    let churn_n = env("NLKIT_BENCH_CHURN", 20_000);
    let v = nlkit_testns::veth_pair("va", "vb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    let t = Instant::now();
    nlkit_testns::load_ipv4_routes(v.a_index, routes, 254);
    let load_routes = t.elapsed();
    let t = Instant::now();
    let cts = nlkit_testns::load_conntrack(cts, 1);
    load_small_share();
    let load_ct = t.elapsed();
    eprintln!(
        "loaded {routes} routes in {load_routes:.2?}, {cts} + {SMALL_SHARE} conntrack entries in {load_ct:.2?}"
    );
    let mut rows = Vec::new();

    // Kernel baselines.
    let (raw_routes, nroutes) = raw_dump(Protocol::Route, &route_dump_req(), 3);
    let tuples: Vec<Tuple> = sample(cts, gets, SEED)
        .into_iter()
        .map(fixture_tuple)
        .collect();
    let (kget, kfound) = kernel_get_loop(&tuples);
    let big = IpAddr::V4(Ipv4Addr::new(10, 200, 0, 1));
    let (kf_big, n_big) = kernel_filtered_dump(big);
    let (kf_small, n_small) = kernel_filtered_dump(IpAddr::V4(SMALL_SRC));
    eprintln!(
        "kernel: route dump {raw_routes:.2?} ({nroutes}), GET {kget:.0}/s ({kfound} of {} found), CTA_FILTER {big} {kf_big:.2?} ({n_big}), {SMALL_SRC} {kf_small:.2?} ({n_small})",
        tuples.len()
    );

    // The mirror.
    let hwm_reset = reset_peak();
    let dir = std::env::temp_dir().join(format!("nlkit-view-bench-{}", std::process::id()));
    let mut cfg = MirrorConfig {
        socket_path: Some(dir.join("mirror.sock")),
        writer: WriterMode::Disabled,
        notify_systemd: false,
        neigh_resync_interval: None,
        event_rcvbuf: 64 << 20,
        ..MirrorConfig::default()
    };
    cfg.capacities.routes = ((routes + churn_n) * 5 / 4).max(1 << 16);
    cfg.capacities.conntrack = ((cts + SMALL_SHARE) as u32 * 5 / 4).max(1 << 16);
    let t = Instant::now();
    let m = Mirror::start(cfg).unwrap();
    let sync = t.elapsed();
    let sock = m.socket_path().to_owned();
    let hwm_sync = vm_hwm_kib();
    eprintln!("mirror synced in {sync:.2?}, VmHWM {} MiB", hwm_sync / 1024);

    // Lookups, walk and index through the view, in a child process.
    let r = Reader::spawn("measure", &sock, &[]);
    let long = Duration::from_secs(600);
    let get1 = nums(&r.expect("get1", long));
    let getmap = nums(&r.expect("getmap", long));
    let get2 = nums(&r.expect("get2", long));
    let walk = nums(&r.expect("walk", long));
    let abig = nums(&r.expect("addr_big", long));
    let asmall = nums(&r.expect("addr_small", long));
    let _ = r.finish();
    let v1 = get1.first().copied().unwrap_or(f64::NAN);
    let v2 = get2.first().copied().unwrap_or(f64::NAN);
    rows.push(row(
        "kernel ctnetlink GET round trip (1 thread)",
        rate(kget),
        "",
        None,
        "",
        None,
    ));
    rows.push(row(
        format!(
            "ct get by tuple via view, 1 thread ({} found/{})",
            get1.get(1).copied().unwrap_or(0.0),
            tuples.len()
        ),
        rate(v1),
        rate(kget),
        Some(v1 / kget),
        ">= 10x kernel GET",
        v1.is_finite().then_some(v1 / kget >= 10.0),
    ));
    let vm = getmap.first().copied().unwrap_or(f64::NAN);
    rows.push(row(
        "  of which the map lookup alone (no unpack), 1 thread",
        rate(vm),
        rate(kget),
        Some(vm / kget),
        "",
        None,
    ));
    rows.push(row(
        "ct get by tuple via view, 2 threads",
        rate(v2),
        rate(v1),
        Some(v2 / v1),
        ">= 1.8x 1 thread",
        v2.is_finite().then_some(v2 / v1 >= 1.8),
    ));
    let ws = walk.first().copied().unwrap_or(f64::NAN);
    rows.push(row(
        format!(
            "IPv4 route walk via view ({} routes; dump {nroutes})",
            walk.get(1).copied().unwrap_or(0.0)
        ),
        dur(ws),
        dur(raw_routes.as_secs_f64()),
        Some(raw_routes.as_secs_f64() / ws),
        ">= 5x faster than raw dump",
        ws.is_finite()
            .then_some(raw_routes.as_secs_f64() / ws >= 5.0),
    ));
    for (a, kf, kn, vv) in [
        (big, kf_big, n_big, &abig),
        (IpAddr::V4(SMALL_SRC), kf_small, n_small, &asmall),
    ] {
        let s = vv.first().copied().unwrap_or(f64::NAN);
        rows.push(row(
            format!(
                "ct of src {a} via index ({} found; kernel {kn})",
                vv.get(1).copied().unwrap_or(0.0)
            ),
            dur(s),
            dur(kf.as_secs_f64()),
            Some(kf.as_secs_f64() / s),
            ">= 100x faster than CTA_FILTER",
            s.is_finite().then_some(kf.as_secs_f64() / s >= 100.0),
        ));
    }

    // The command line: the kernel, the mirror through its view (`NLKIT_MIRROR_VIEW=1`: an
    // unmappable view is an error, not a silent fallback), and over its socket.
    match nlkit_binary() {
        Some(bin) => {
            let ms = sock.to_str().unwrap();
            let src = big.to_string();
            let cases = [
                ("route show", vec!["route", "show"]),
                ("ct list -s", vec!["ct", "list", "-s", &src]),
            ];
            for (name, args) in cases {
                let mut margs = vec!["--mirror-socket", ms];
                margs.extend(args.iter().copied());
                let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
                let k = secs(time_cli(&bin, &args, &[]));
                let mv = secs(time_cli(&bin, &margs, &[("NLKIT_MIRROR_VIEW", "1")]));
                let msock = secs(time_cli(&bin, &margs, &[("NLKIT_MIRROR_NO_VIEW", "1")]));
                let route = name == "route show";
                let what = if route {
                    format!("nlkit --mirror {name} >/dev/null (view)")
                } else {
                    format!("nlkit --mirror {name} {src} >/dev/null (view)")
                };
                rows.push(row(
                    what,
                    dur(mv),
                    dur(k),
                    Some(k / mv),
                    if route { ">= 1.3x faster than kernel" } else { "" },
                    (route && mv.is_finite()).then_some(k / mv >= 1.3),
                ));
                rows.push(row(
                    "  same over the mirror's socket (NLKIT_MIRROR_NO_VIEW=1)",
                    dur(msock),
                    dur(k),
                    Some(k / msock),
                    "",
                    None,
                ));
            }
        }
        None => eprintln!(
            "nlkit binary not found next to the bench (cargo build --release -p nlkit-cli, or NLKIT_BENCH_NLKIT): CLI rows not measured"
        ),
    }

    // Feed latency: one change at a time, written to the kernel, seen by a reader waiting on
    // the view's feed; then the same changes seen by a direct kernel event subscriber (what
    // the mirror itself waits for before it can apply anything).
    let (mut from_ret, mut from_start) = latency("feed", &sock, v.a_index, changes);
    let (mut k_ret, mut k_start) = latency("kevents", &sock, v.a_index, changes);
    let seen = from_ret.len();
    let med_ret = median(&mut from_ret);
    let p99_ret = percentile(&mut from_ret, 0.99);
    let med_start = median(&mut from_start);
    let p99_start = percentile(&mut from_start, 0.99);
    let kmed_ret = median(&mut k_ret);
    rows.push(row(
        format!("feed: kernel write returned → view reader woke, median ({seen}/{changes})"),
        us(med_ret),
        us(kmed_ret),
        None,
        "<= 20 µs median",
        med_ret.is_finite().then_some(med_ret <= 20.0),
    ));
    rows.push(row(
        "  same, p99 (baseline: direct kernel event subscriber)",
        us(p99_ret),
        us(percentile(&mut k_ret, 0.99)),
        None,
        "",
        None,
    ));
    rows.push(row(
        "  kernel write issued → view reader woke, median / p99",
        format!("{} / {}", us(med_start), us(p99_start)),
        format!(
            "{} / {}",
            us(median(&mut k_start)),
            us(percentile(&mut k_start, 0.99))
        ),
        None,
        "",
        None,
    ));

    // The mirror's cost per change with 0, 1 and 16 waiting readers.
    let mut cost = Vec::new();
    for readers in [0usize, 1, 16] {
        let rs: Vec<Reader> = (0..readers)
            .map(|_| Reader::spawn("follow", &sock, &[]))
            .collect();
        let ready = rs
            .iter()
            .filter(|r| r.expect("ready", Duration::from_secs(60)).is_some())
            .count();
        let ev0 = m
            .metrics()
            .events
            .load(std::sync::atomic::Ordering::Relaxed);
        let cpu0 = mirror_cpu();
        let t = Instant::now();
        churn(v.a_index, churn_n);
        let deadline = Instant::now() + Duration::from_secs(60);
        while m
            .metrics()
            .events
            .load(std::sync::atomic::Ordering::Relaxed)
            < ev0 + churn_n as u64
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let wall = t.elapsed().as_secs_f64();
        let cpu = (mirror_cpu() - cpu0).as_secs_f64();
        std::thread::sleep(Duration::from_millis(100));
        let counts: Vec<(f64, f64)> = rs
            .into_iter()
            .map(|r| {
                let lines = r.finish();
                let mut c = (f64::NAN, 0.0);
                while let Ok(l) = lines.try_recv() {
                    if let Some(x) = l.strip_prefix("count ") {
                        let v = nums(&Some(x.to_owned()));
                        c = (
                            v.first().copied().unwrap_or(f64::NAN),
                            v.get(1).copied().unwrap_or(0.0),
                        );
                    }
                }
                c
            })
            .collect();
        let min_seen = counts.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
        let resyncs: f64 = counts.iter().map(|c| c.1).sum();
        cost.push((
            readers,
            ready,
            cpu * 1e6 / churn_n as f64,
            churn_n as f64 / wall,
            min_seen,
            resyncs,
        ));
    }
    let base_cpu = cost[0].2;
    for (readers, ready, cpu_us, thr, min_seen, resyncs) in &cost {
        let seen = if *readers == 0 {
            String::new()
        } else {
            format!(" ({ready} ready; each saw ≥ {min_seen:.0}, {resyncs:.0} resyncs)")
        };
        rows.push(row(
            format!("mirror CPU per change, {readers} waiting readers{seen}"),
            format!("{cpu_us:.2} µs"),
            format!("{base_cpu:.2} µs"),
            Some(cpu_us / base_cpu),
            if *readers == 16 {
                "<= 1.2x 0 readers (noise)"
            } else {
                ""
            },
            (*readers == 16 && ready == readers).then_some(cpu_us / base_cpu <= 1.2),
        ));
        rows.push(row(
            format!("  apply throughput, {readers} readers ({churn_n} changes)"),
            rate(*thr),
            "",
            None,
            "",
            None,
        ));
    }

    // PSS: 16 processes map the view and walk every table.
    let rs: Vec<Reader> = (0..PSS_READERS)
        .map(|_| Reader::spawn("pss", &sock, &[]))
        .collect();
    let walked = rs
        .iter()
        .filter(|r| r.expect("ready", Duration::from_secs(600)).is_some())
        .count();
    let pss: u64 = rs
        .iter()
        .map(|r| memfd_kib(&r.child.id().to_string(), "Pss"))
        .sum();
    let rss_one: u64 = rs
        .iter()
        .map(|r| memfd_kib(&r.child.id().to_string(), "Rss"))
        .max()
        .unwrap_or(0);
    let mirror_rss = memfd_kib("self", "Rss");
    let mirror_pss = memfd_kib("self", "Pss");
    for r in rs {
        let _ = r.finish();
    }
    let region = memfd_bytes();
    rows.push(row(
        format!("PSS of the mapping, {walked}/{PSS_READERS} readers that walked all"),
        format!("{:.1} MiB", pss as f64 / 1024.0),
        format!("{:.1} MiB", mirror_rss as f64 / 1024.0),
        Some(pss as f64 / mirror_rss.max(1) as f64),
        "≈ one copy (ratio <= ~1)",
        (walked > 0).then_some(pss as f64 <= 1.1 * mirror_rss as f64),
    ));
    rows.push(row(
        "  one reader's RSS of the mapping / mirror's PSS",
        format!("{:.1} MiB", rss_one as f64 / 1024.0),
        format!("{:.1} MiB", mirror_pss as f64 / 1024.0),
        None,
        "",
        None,
    ));
    rows.push(row(
        "  region size (memfd st_size)",
        format!("{:.1} MiB", region as f64 / (1 << 20) as f64),
        "",
        None,
        "",
        None,
    ));
    let hwm = vm_hwm_kib();
    rows.push(row(
        if hwm_reset {
            "mirror peak memory (VmHWM since the fixtures)"
        } else {
            "process peak memory (VmHWM)"
        },
        format!("{} MiB", hwm / 1024),
        format!("{} MiB after sync", hwm_sync / 1024),
        None,
        "<= 400 MB at 1M + 1M",
        Some(hwm * 1024 <= 400_000_000),
    ));
    rows.push(row(
        "mirror initial sync (all tables)",
        dur(sync.as_secs_f64()),
        "",
        None,
        "",
        None,
    ));

    print_table(
        &format!(
            "nlkit-view bench: {nroutes} IPv4 routes, {} conntrack entries (netns; readers in child processes; best of 3)",
            m.tables().len(TableId::Conntrack)
        ),
        &rows,
    );
    m.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    nlkit_testns::run_in_netns(module_path!(), "bench", || {
        run();
        println!("test result: ok. 1 passed");
    });
}
