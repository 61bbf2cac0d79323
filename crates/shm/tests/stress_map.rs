//! Cross-process stress: this process is the writer, applying inserts, replaces, aux changes
//! and removes to a map in a [`Region`], while two reader processes (this test binary
//! re-executed, the memfd inherited as an fd and mapped read-only with [`RegionView`]) look
//! up, index-scan and walk continuously.
//!
//! Every record carries its key, its version and a checksum of its own bytes; readers verify
//! every record they are handed (never torn, never mixed, never under another key), that the
//! aux word matches the record, and that a key's versions never go back. Walks are bounded.
//!
//! Operations: 2,000,000 (the count; about half a minute in a debug build on two
//! cores); `NLKIT_STRESS_OPS` overrides.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nlkit_shm::{Entry, MapLayout, MapReader, Memory, Region, RegionView, SharedMap, ShmError};

const MAP_ID: u64 = 0x5354_0001;
const STOP_ID: u64 = 0x5354_0002;
const FD_ENV: &str = "NLKIT_STRESS_MAP_FD";
const KEYS: u64 = 3000;
const CAPACITY: u32 = 4096;
const INDEX: u64 = 16;

fn ops() -> u64 {
    if let Some(n) = std::env::var("NLKIT_STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    2_000_000
}

/// xorshift64*: a reproducible stream of numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn key_of(k: u64) -> [u64; 2] {
    [k, k.wrapping_mul(0x9e37_79b9_7f4a_7c15)]
}

/// `[key0, key1, version, payload..., checksum]`, 40 to ~420 bytes (up to 128 inline, longer
/// in the heap), and one in 97 of 20 KB (so the heap, and the region's file, grow while the
/// readers read).
fn record(k: u64, version: u64) -> Vec<u8> {
    let len = if version % 97 == 0 {
        20_000
    } else {
        8 + (version.wrapping_mul(31) % 380) as usize
    };
    let mut r = Vec::with_capacity(len + 32);
    for w in key_of(k) {
        r.extend_from_slice(&w.to_ne_bytes());
    }
    r.extend_from_slice(&version.to_ne_bytes());
    r.extend((0..len).map(|i| (i as u64 ^ version) as u8));
    let c = checksum(&r);
    r.extend_from_slice(&c.to_ne_bytes());
    r
}

/// Verifies a record handed out for key `k` (if known) and returns `(key, version)`.
fn verify(e: &Entry, rec: &[u8], k: Option<u64>) -> (u64, u64) {
    assert!(rec.len() >= 32, "short record {}", rec.len());
    let (body, sum) = rec.split_at(rec.len() - 8);
    assert_eq!(
        checksum(body),
        u64::from_ne_bytes(sum.try_into().unwrap()),
        "torn record"
    );
    let w = |i: usize| u64::from_ne_bytes(rec[i * 8..i * 8 + 8].try_into().unwrap());
    let key = w(0);
    assert_eq!([w(0), w(1)], key_of(key), "record of no key");
    assert_eq!(e.keys[0][..2], key_of(key), "record under another key");
    assert_eq!(e.keys[1][0], key % INDEX, "index key of another entry");
    if let Some(k) = k {
        assert_eq!(key, k, "record of another key");
    }
    let version = w(2);
    assert_eq!(e.aux, version, "aux word of another version");
    assert_eq!(rec, record(key, version).as_slice(), "mixed record");
    (key, version)
}

#[derive(Debug, Default)]
struct Counts {
    gets: u64,
    found: u64,
    indexed: u64,
    walks: u64,
    walked: u64,
    consistent: u64,
    contended: u64,
}

/// A line to the parent, on the real stdout (the test harness captures `println!`).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The reader process's body.
fn read_until_stopped(view: &RegionView) -> Counts {
    let map = MapReader::open(view, view.find(MAP_ID).unwrap()).unwrap();
    let stop = view.word(view.find(STOP_ID).unwrap()).unwrap();
    let mut last = vec![0u64; KEYS as usize];
    let mut c = Counts::default();
    let mut rng = Rng(std::process::id().into());
    let mut out = Vec::new();
    say("STRESS-READY");
    let parent = std::os::unix::process::parent_id();
    // Until the writer sets the stop word, or dies (a failed test must leave no spinning
    // readers behind).
    while stop.load(Ordering::Acquire) == 0 {
        if std::os::unix::process::parent_id() != parent {
            panic!("the writer process is gone");
        }
        for _ in 0..1000 {
            let k = rng.next() % KEYS;
            out.clear();
            c.gets += 1;
            match map.get(0, &key_of(k), &mut out) {
                Ok(Some(e)) => {
                    let (_, v) = verify(&e, &out, Some(k));
                    assert!(
                        v >= last[k as usize],
                        "key {k}: version {v} after {}",
                        last[k as usize]
                    );
                    last[k as usize] = v;
                    c.found += 1;
                }
                Ok(None) => {}
                Err(ShmError::Contended) => c.contended += 1,
                Err(e) => panic!("get: {e}"),
            }
        }
        let idx = rng.next() % INDEX;
        match map.get_all(1, &[idx], |e, rec| {
            let (key, _) = verify(e, rec, None);
            assert_eq!(key % INDEX, idx);
            c.indexed += 1;
            true
        }) {
            Ok(()) => {}
            Err(ShmError::Contended) => c.contended += 1,
            Err(e) => panic!("get_all: {e}"),
        }
        if rng.next() % 8 == 0 {
            let w = map
                .walk(|e, rec| {
                    verify(e, rec, None);
                    true
                })
                .unwrap();
            assert!(w.visited <= u64::from(CAPACITY));
            c.walks += 1;
            c.walked += w.visited;
            c.consistent += u64::from(w.consistent);
        }
    }
    c
}

/// The re-executed reader: a no-op unless started by `two_reader_processes` below.
#[test]
fn stress_reader_child() {
    let Some(fd) = std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: the parent passed this inherited fd number for us alone; nothing else in this
    // process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let view = RegionView::map(fd).unwrap();
    let c = read_until_stopped(&view);
    say(&format!(
        "STRESS-COUNTS gets={} found={} indexed={} walks={} walked={} consistent={} contended={}",
        c.gets, c.found, c.indexed, c.walks, c.walked, c.consistent, c.contended
    ));
}

// The caller waits for the child (`wait_with_deadline`). When the test panics before that,
// the reader notices that its parent is gone and exits (see `read_until_stopped`).
#[allow(clippy::zombie_processes)]
fn spawn_reader(fd: &OwnedFd) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stress_reader_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FD_ENV, fd.as_raw_fd().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("reader died before it was ready: {status}");
        }
        // libtest may have printed "test stress_reader_child ... " before it on the line.
        if line.contains("STRESS-READY") {
            return (child, out);
        }
    }
}

fn wait_with_deadline(child: &mut Child, deadline: Instant) {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "reader failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("reader did not stop");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_reader_processes() {
    let region = Arc::new(Region::create("stress-map").unwrap());
    let map = SharedMap::create(
        region.clone(),
        // Records of up to 128 bytes in their slots (about a quarter of them): replaces move
        // records between the slot and the heap both ways under the readers.
        MapLayout::new(CAPACITY)
            .key(2, true)
            .key(1, false)
            .inline(128),
    )
    .unwrap();
    region.publish(MAP_ID, map.offset()).unwrap();
    let stop = region.alloc(8).unwrap();
    region.publish(STOP_ID, stop).unwrap();

    // One inheritable fd for both children (FD_CLOEXEC cleared on a dup), closed once they run.
    let fd = rustix::io::dup(region.fd()).unwrap();
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).unwrap();
    let mut readers = vec![spawn_reader(&fd), spawn_reader(&fd)];
    drop(fd);

    let n = ops();
    let mut slots = vec![None; KEYS as usize];
    let mut rng = Rng(0x1234_5678);
    let started = Instant::now();
    for version in 1..=n {
        let k = rng.next() % KEYS;
        let mut w = map.lock();
        match slots[k as usize] {
            None => {
                let s = w
                    .insert(&[&key_of(k), &[k % INDEX]], version, &record(k, version))
                    .unwrap();
                slots[k as usize] = Some(s);
            }
            Some(s) => match rng.next() % 10 {
                0..=4 => w.replace(s, version, &record(k, version)).unwrap(),
                5 => {
                    // A change of generation that keeps the entry as it is.
                    let aux = w.aux(s);
                    w.set_aux(s, aux);
                }
                _ => {
                    w.remove(s);
                    slots[k as usize] = None;
                }
            },
        }
    }
    let took = started.elapsed();
    region.word(stop).unwrap().store(1, Ordering::Release);

    let deadline = Instant::now() + Duration::from_secs(60);
    for (child, out) in &mut readers {
        let mut counts = None;
        for line in out.lines() {
            let line = line.unwrap();
            if let Some((_, c)) = line.split_once("STRESS-COUNTS ") {
                counts = Some(c.to_owned());
            }
        }
        wait_with_deadline(child, deadline);
        let counts = counts.expect("reader printed no counts");
        eprintln!("reader {}: {counts}", child.id());
        let field = |name: &str| -> u64 {
            counts
                .split(' ')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(field("gets") > 0 && field("found") > 0, "{counts}");
        assert!(field("walks") > 0, "{counts}");
    }
    eprintln!(
        "writer: {n} operations in {took:?}, {} live, {} bytes",
        map.len(),
        map.memory_bytes()
    );
    // The writer's own reader agrees with its bookkeeping at the end.
    let live = slots.iter().filter(|s| s.is_some()).count();
    assert_eq!(map.len(), live);
    let w = map.reader().walk(|e, rec| {
        verify(e, rec, None);
        true
    });
    assert_eq!(w.unwrap().visited, live as u64);
}
