//! What `nlkit demo` and `nlkit bench` measure.
//!
//! * the **raw receive loop**: one socket, one `recvmsg` per datagram into a 32 KiB+ buffer,
//!   walking only the message headers — the physical limit of a single dump;
//! * **nlkit**: a [`SharedDump`] consumed by 1, 2 or 4 threads, each decoding every message
//!   into a typed view (`RouteView` / `CtEntryView`) and inserting a key into its own map;
//! * **commands** (`nlkit route show`, `ip route show`, `conntrack -L`, …) run with their
//!   output sent to `/dev/null`, timed from spawn to exit, with the child's own peak resident
//!   memory (`VmHWM`).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nlkit_socket::{DumpBuffer, Pool, Protocol, RecvBuffer, SharedDump, Socket, SocketOptions};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder, Messages};

/// One timed run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Messages (objects) seen.
    pub messages: usize,
    /// Wall time.
    pub secs: f64,
    /// Peak resident memory of the measured child, KiB (commands only).
    pub peak_kib: Option<u64>,
}

/// The route dump request (IPv4, main table).
pub fn route_dump_request() -> MessageBuilder {
    let mut b = MessageBuilder::new();
    nlkit_route::request::dump_routes(
        &mut b,
        0,
        AF_INET,
        &nlkit_route::request::RouteFilter::main(),
    )
    .expect("static request");
    b
}

/// The conntrack dump request (IPv4).
pub fn conntrack_dump_request() -> MessageBuilder {
    let mut b = MessageBuilder::new();
    let f = nlkit_conntrack::request::DumpFilter {
        family: AF_INET,
        ..Default::default()
    };
    nlkit_conntrack::request::dump(&mut b, 0, &f).expect("static request");
    b
}

/// The raw receive loop: send the dump request, receive datagrams, walk headers to DONE.
/// Datagrams not sent by the kernel are dropped by [`Socket::recv`]; messages with another
/// sequence number (a stale reply) are skipped.
pub fn raw_walk(protocol: Protocol, request: &MessageBuilder) -> Result<Sample> {
    raw_walk_on(&mut Socket::open(protocol)?, request)
}

/// [`raw_walk`] on a socket the caller opened (a kernel socket, or one on the mirror:
/// `Socket::connect_unix`), so a served dump is measured the same way as the kernel's.
pub fn raw_walk_on(sock: &mut Socket, request: &MessageBuilder) -> Result<Sample> {
    let mut req = request.clone();
    let mut buf = RecvBuffer::new();
    let start = Instant::now();
    let seq = sock.send_dump(&mut req)?;
    let mut n = 0;
    loop {
        sock.recv(&mut buf)?;
        for m in Messages::new(buf.unread()) {
            let m = m?;
            if m.seq() != seq {
                continue;
            }
            match m.ty() {
                NLMSG_DONE => {
                    return Ok(Sample {
                        messages: n,
                        secs: start.elapsed().as_secs_f64(),
                        peak_kib: None,
                    })
                }
                NLMSG_ERROR => bail!(
                    "dump failed: {:?}",
                    nlkit_wire::ErrorMsg::parse(&m)?.to_error()
                ),
                _ => n += 1,
            }
        }
    }
}

/// A key for one decoded object, so the per-message work is real (decode + hash insert).
fn object_key(protocol: Protocol, m: &Message<'_>) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match protocol {
        Protocol::Netfilter => {
            let e = nlkit_conntrack::CtEntryView::parse(m)?;
            e.orig().hash(&mut h);
            e.zone_or_default().hash(&mut h);
        }
        _ => {
            let r = nlkit_route::RouteView::parse(m)?;
            (r.table(), r.dst(), r.dst_len(), r.priority(), r.oif()).hash(&mut h);
        }
    }
    Ok(h.finish())
}

/// `threads` threads share one dump; each decodes every message it gets and inserts its key.
pub fn shared_dump(protocol: Protocol, request: &MessageBuilder, threads: usize) -> Result<Sample> {
    let pool = Pool::new(protocol, SocketOptions::default());
    let mut req = request.clone();
    let start = Instant::now();
    let dump = SharedDump::start(&pool, &mut req)?;
    let counts: Vec<Result<usize>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<usize> {
                    let mut buf = DumpBuffer::new();
                    let mut seen: HashMap<u64, ()> = HashMap::new();
                    let mut n = 0;
                    while let Some(m) = dump.next(&mut buf)? {
                        seen.insert(object_key(protocol, &m)?, ());
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("dump thread panicked")))
            .collect()
    });
    dump.finish()?;
    let mut n = 0;
    for c in counts {
        n += c?;
    }
    Ok(Sample {
        messages: n,
        secs: start.elapsed().as_secs_f64(),
        peak_kib: None,
    })
}

/// The child's own peak resident memory so far (`VmHWM`), in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `program args…` with stdout to `/dev/null`; returns its time and peak memory.
///
/// The peak is the child's `VmHWM`, polled every 2 ms until it exits (the last reading
/// before exit). `wait4`'s `ru_maxrss` cannot be used: Linux carries the parent's high-water
/// mark into the child across `fork`/`exec`, so every child would report the benchmark's own
/// footprint.
pub fn command(program: &str, args: &[&str]) -> Result<Sample> {
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{program} {} failed", args.join(" "));
    }
    Ok(Sample {
        messages: 0,
        secs,
        peak_kib: Some(peak),
    })
}

/// The median of `repeat` samples of `f` (by time).
pub fn median(repeat: usize, mut f: impl FnMut() -> Result<Sample>) -> Result<Sample> {
    let mut v = Vec::with_capacity(repeat.max(1));
    for _ in 0..repeat.max(1) {
        v.push(f()?);
    }
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    Ok(v[v.len() / 2])
}

/// Formats seconds for tables.
pub fn secs(d: f64) -> String {
    if d < 1.0 {
        format!("{:.1} ms", d * 1e3)
    } else {
        format!("{d:.2} s")
    }
}

/// Waits until `cond` holds, polling every 10 ms, at most `limit`; returns the time it took.
pub fn converge(
    limit: Duration,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<Option<Duration>> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond()? {
            return Ok(Some(start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(None)
}
