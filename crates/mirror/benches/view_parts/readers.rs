//! The view bench's readers: child processes (the bench binary re-executed with
//! [`ROLE`](super::ROLE)) that map the mirror's view and print what they measured as
//! `key values…` lines, and the bench's side of talking to them.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nlkit_socket::{Protocol, Socket};
use nlkit_view::{CtFilter, MirrorView, ViewError};
use nlkit_wire::consts::*;

use super::kernel::route_change;
use super::{
    conn_key, fixture_tuple, get_passes, mono_ns, repeat, sample, ROLE, SEED, SMALL_SRC, SOCK,
};
use crate::common::env;

/// A child process and the lines it prints.
pub(super) struct Reader {
    pub(super) child: Child,
    lines: mpsc::Receiver<String>,
}

impl Reader {
    pub(super) fn spawn(role: &str, sock: &Path, vars: &[(&str, String)]) -> Reader {
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
    pub(super) fn expect(&self, key: &str, timeout: Duration) -> Option<String> {
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
    pub(super) fn finish(mut self) -> mpsc::Receiver<String> {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        self.lines
    }
}

/// Words of a child's answer line as numbers.
pub(super) fn nums(s: &Option<String>) -> Vec<f64> {
    s.as_deref()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A child's body: `role` from [`ROLE`]. Prints `key values…` lines; `error …` on failure.
pub(super) fn child(role: &str) {
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

/// Best of [`repeat`] runs of `f` (seconds) and its last result.
fn best_of<T>(f: impl FnMut() -> Result<T, ViewError>) -> Result<(f64, T), ViewError> {
    best_of_n(repeat(), f)
}

/// Best of `n` runs of `f` (seconds) and its last result.
fn best_of_n<T>(
    n: usize,
    mut f: impl FnMut() -> Result<T, ViewError>,
) -> Result<(f64, T), ViewError> {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let r = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    Ok((best, last.expect("at least one run")))
}

/// One pass of `get` over `keys`, each message into one reused buffer: how many were found.
fn lookups(
    keys: &[nlkit_table::ConnKey],
    get: impl Fn(&nlkit_table::ConnKey, &mut Vec<u8>) -> Result<bool, ViewError>,
) -> Result<usize, ViewError> {
    let mut msg = Vec::with_capacity(512);
    let mut found = 0;
    for k in keys {
        msg.clear();
        found += usize::from(get(k, &mut msg)?);
    }
    Ok(found)
}

/// Lookups by tuple (1 and 2 threads), the route walk, the address index.
fn child_measure(view: &MirrorView, out: impl Fn(String)) -> Result<(), ViewError> {
    let cts = env("NLKIT_BENCH_CT", 200_000);
    let gets = env("NLKIT_BENCH_GETS", 20_000);
    let keys: Vec<nlkit_table::ConnKey> = sample(cts, gets, SEED)
        .into_iter()
        .map(|i| conn_key(&fixture_tuple(i)))
        .collect();
    // A pass looks every sampled tuple up through the conntrack table's reader, opened once
    // (`MirrorView::ct_reader`, as a client making many lookups holds it); each entry's
    // kernel message goes to `msg`.
    let ct = view.ct_reader()?;
    let pass = || lookups(&keys, |k, msg| Ok(ct.get(k, msg)?.is_some()));
    // The same through `MirrorView::ct_get`, which opens the table's reader on every call.
    let per_call = || lookups(&keys, |k, msg| Ok(view.ct_get(k, msg)?.is_some()));
    // The same lookups in batches (`ct_get_many`: their misses overlap), each entry's kernel
    // message handed to the callback.
    let batched = || -> Result<usize, ViewError> {
        let mut buf = Vec::with_capacity(512);
        let mut found = 0;
        let mut err = None;
        view.ct_get_many(&keys, &mut buf, |_, r, msg| match r {
            Ok(f) => found += usize::from(f.is_some() && !msg.is_empty()),
            Err(e) => err = Some(e),
        })?;
        err.map_or(Ok(found), Err)
    };
    // Where the time goes: the map lookup alone (the packed record, not unpacked into the
    // kernel's message; the map reader opened once, the keys' words made beforehand).
    let map = view.table(nlkit_view::TableId::Conntrack)?;
    let words: Vec<_> = keys.iter().map(nlkit_table::TableKey::to_words).collect();
    let map_only = || -> Result<usize, ViewError> {
        let mut rec = Vec::with_capacity(512);
        let mut found = 0;
        for w in &words {
            rec.clear();
            found += usize::from(map.get(0, w, &mut rec).map_err(ViewError::Shm)?.is_some());
        }
        Ok(found)
    };
    // Two threads, each a pass over the whole sample, timed from when both are running (a
    // spin barrier: the thread's creation and the wake-up of an idle vCPU, ~20-100 µs here,
    // are not lookups) to when the last is done: both threads' lookups / that time.
    let two = || -> Result<(usize, f64), ViewError> {
        let ready = AtomicUsize::new(0);
        let timed_pass = || {
            ready.fetch_add(1, Ordering::AcqRel);
            while ready.load(Ordering::Acquire) < 2 {
                std::hint::spin_loop();
            }
            let start = Instant::now();
            let r = pass();
            (r, start, Instant::now())
        };
        std::thread::scope(|sc| {
            let a = sc.spawn(timed_pass);
            let b = sc.spawn(timed_pass);
            let (ra, sa, ea) = a.join().expect("lookup thread");
            let (rb, sb, eb) = b.join().expect("lookup thread");
            let took = ea.max(eb).duration_since(sa.min(sb)).as_secs_f64();
            Ok((ra? + rb?, took))
        })
    };
    // The five take turns, pass by pass, so that each sees the same stretches of this
    // machine's memory speed (which moves by up to 2x within a second here); best pass of
    // each.
    let mut best = [f64::MAX; 5];
    let mut found = [0usize; 5];
    for _ in 0..get_passes() {
        let runs: [&dyn Fn() -> Result<usize, ViewError>; 4] =
            [&pass, &per_call, &batched, &map_only];
        for (i, run) in runs.into_iter().enumerate() {
            let t = Instant::now();
            found[i] = run()?;
            best[i] = best[i].min(t.elapsed().as_secs_f64());
        }
        let (n, took) = two()?;
        found[4] = n;
        best[4] = best[4].min(took);
    }
    let rate = |i: usize| keys.len() as f64 / best[i];
    out(format!("get1 {} {}", rate(0), found[0]));
    out(format!("getcall {}", rate(1)));
    out(format!("getbatch {} {}", rate(2), found[2]));
    out(format!("getmap {}", rate(3)));
    out(format!("get2 {}", 2.0 * rate(4)));
    // The IPv4 route walk: every message. The first one runs on pages this process has not
    // touched yet (the minor faults a fresh client pays), the best of the others on a warm
    // mapping.
    let t = Instant::now();
    let (mut msgs, mut bytes) = (0u64, 0u64);
    view.routes(AF_INET, |m| {
        msgs += 1;
        bytes += m.len() as u64;
        true
    })?;
    let first = t.elapsed().as_secs_f64();
    out(format!(
        "walk_first {first} {}",
        bytes as f64 / msgs.max(1) as f64
    ));
    let (s, n) = best_of(|| {
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
        let (s, n) = best_of(|| {
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

/// What [`latency`] measured, per change, in microseconds until the child woke.
#[derive(Default)]
pub(super) struct Latency {
    /// From the kernel write's return.
    pub(super) from_ret: Vec<f64>,
    /// From the kernel write's start.
    pub(super) from_start: Vec<f64>,
    /// From the moment a watcher thread saw the mirror's applied-events counter move (only
    /// with `applied`).
    pub(super) from_applied: Vec<f64>,
}

/// Writes `changes` route changes one at a time (add, delete, add, …) while the child `role`
/// waits for them; for each, the time from the write's return and from its start to the
/// child's wake-up (the child's first `seen` stamp after the write started). With `applied`
/// (the mirror's `Metrics::events`, counted right after a change is applied and before it is
/// published), a thread of this process spins on it during each change (only then: it is
/// parked between changes) and stamps the moment it moves.
pub(super) fn latency(
    role: &str,
    sock: &Path,
    oif: u32,
    changes: usize,
    applied: Option<&AtomicU64>,
) -> Latency {
    let r = Reader::spawn(role, sock, &[]);
    let mut out = Latency::default();
    if r.expect("ready", Duration::from_secs(60)).is_none() {
        let _ = r.finish();
        return out;
    }
    // 0: nothing yet; 1: the watcher gave up; else the moment the counter moved.
    let stamp = AtomicU64::new(0);
    let armed = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = applied.map(|ctr| {
            s.spawn(|| loop {
                std::thread::park();
                if done.load(Ordering::Acquire) {
                    break;
                }
                let before = ctr.load(Ordering::Relaxed);
                armed.store(true, Ordering::Release);
                let give_up = Instant::now() + Duration::from_millis(100);
                let mut moved = false;
                while !moved && Instant::now() < give_up {
                    std::hint::spin_loop();
                    moved = ctr.load(Ordering::Relaxed) != before;
                }
                stamp.store(if moved { mono_ns() } else { 1 }, Ordering::Release);
            })
        });
        let mut k = Socket::open(Protocol::Route).unwrap();
        for i in 0..changes {
            let dst = Ipv4Addr::from(0x0a63_0000 + (i / 2) as u32);
            if let Some(w) = &watcher {
                // The watcher has read the counter before the change can be applied.
                armed.store(false, Ordering::Release);
                w.thread().unpark();
                let wait = Instant::now() + Duration::from_secs(1);
                while !armed.load(Ordering::Acquire) && Instant::now() < wait {
                    std::thread::yield_now();
                }
            }
            stamp.store(0, Ordering::Release);
            let start = mono_ns();
            route_change(&mut k, oif, dst, i % 2 == 0);
            let ret = mono_ns();
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Some(l) = r.expect("seen", deadline.saturating_duration_since(Instant::now()))
            {
                let seen = nums(&Some(l)).first().copied().unwrap_or(0.0) as u64;
                if seen >= start {
                    out.from_start.push((seen - start) as f64 / 1e3);
                    out.from_ret.push((seen as f64 - ret as f64) / 1e3);
                    if watcher.is_some() {
                        let wait = Instant::now() + Duration::from_millis(200);
                        let mut a = stamp.load(Ordering::Acquire);
                        while a == 0 && Instant::now() < wait {
                            std::thread::yield_now();
                            a = stamp.load(Ordering::Acquire);
                        }
                        if a >= start && a <= seen {
                            out.from_applied.push((seen - a) as f64 / 1e3);
                        }
                    }
                    break;
                }
            }
        }
        done.store(true, Ordering::Release);
        if let Some(w) = watcher {
            w.thread().unpark();
            let _ = w.join();
        }
    });
    let _ = r.finish();
    out
}
