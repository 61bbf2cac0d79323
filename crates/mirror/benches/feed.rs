//! Feed fan-out benchmark (`cargo bench -p nlkit-mirror --bench feed`), in a private network
//! namespace: a churn of `NLKIT_BENCH_FEED_EVENTS` (default 200,000) IPv4 route events read
//! by one direct kernel event socket, then by 1, 4 and 16 subscribers of the mirror's feed.
//! Printed per run: events received per subscriber, events/s per subscriber (first to last
//! event), its ratio to the direct reader's rate, lost events, and the mirror's CPU time
//! (its `mirror-*` threads) per event. Ratios are within one run.
//!
//! Then the cost of one conntrack verification dump (`MirrorConfig::ct_verify_interval`) with
//! `NLKIT_BENCH_FEED_CT` (default 100,000) entries: its wall time and the mirror's CPU, and
//! both scaled linearly to 1,000,000 entries (`nf_conntrack_max` cannot be raised from a test
//! namespace).

// Each bench uses part of the shared helpers.
#[allow(dead_code)]
mod common;
use common::route_churn;

use std::time::{Duration, Instant};

use nlkit_mirror::{Mirror, MirrorConfig, WriterMode};
use nlkit_socket::{Event, EventSocket, Protocol, RecvBuffer, Socket, SocketOptions};
use nlkit_wire::consts::*;
use nlkit_wire::Messages;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) of this process's threads whose name starts with `mirror-`.
fn mirror_cpu() -> Duration {
    let tick = rustix::param::clock_ticks_per_second() as f64;
    let mut ticks = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("mirror-") {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // Fields after the ")" of the command name: utime and stime are 12th and 13th.
            let rest = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Duration::from_secs_f64(ticks as f64 / tick)
}

/// CPU time (user + system) of the whole process, exited threads included.
fn process_cpu() -> Duration {
    let tick = rustix::param::clock_ticks_per_second() as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_secs_f64((t(11) + t(12)) as f64 / tick)
}

/// Adds then deletes `n / 2` host routes via `oif`: `n` route events.
fn churn(oif: u32, n: usize, base: u32) {
    route_churn(oif, n, 0x0a40_0000 + base);
}

/// What one reader saw: events, seconds from its first to its last event.
struct Seen {
    events: u64,
    secs: f64,
}

fn rate(s: &Seen) -> f64 {
    s.events as f64 / s.secs.max(1e-9)
}

/// Reads route events from `next` until `want` or a second of silence after the churn ended.
fn read_events(want: u64, mut next: impl FnMut(&mut RecvBuffer) -> Option<u64>) -> Seen {
    let mut buf = RecvBuffer::new();
    let (mut first, mut last, mut events) = (None, Instant::now(), 0);
    while events < want {
        match next(&mut buf) {
            Some(n) => {
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                events += n;
            }
            None => break,
        }
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    Seen { events, secs }
}

fn run() {
    let n = env("NLKIT_BENCH_FEED_EVENTS", 200_000);
    let v = nlkit_testns::veth_pair("fa", "fb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 8);
    let dir = std::env::temp_dir().join(format!("nlkit-feed-bench-{}", std::process::id()));
    let mut cfg = MirrorConfig {
        socket_path: Some(dir.join("mirror.sock")),
        writer: WriterMode::Disabled,
        notify_systemd: false,
        conntrack: false,
        neigh_resync_interval: None,
        event_rcvbuf: 64 << 20,
        ..MirrorConfig::default()
    };
    cfg.capacities.routes = 1 << 20;
    let mirror = Mirror::start(cfg).unwrap();
    let timeout = Duration::from_secs(2);

    // The direct reader: one kernel event socket.
    let opts = SocketOptions {
        rcvbuf: 64 << 20,
        ..EventSocket::default_options()
    };
    let mut ev = EventSocket::with_options(Protocol::Route, &opts, &[RTNLGRP_IPV4_ROUTE]).unwrap();
    rustix::net::sockopt::set_socket_timeout(
        ev.socket(),
        rustix::net::sockopt::Timeout::Recv,
        Some(timeout),
    )
    .unwrap();
    let cpu0 = mirror_cpu();
    let direct = std::thread::scope(|s| {
        let r = s.spawn(|| {
            read_events(n as u64, |buf| match ev.recv_event(buf) {
                Ok(Event::Messages { messages, .. }) => Some(messages.count() as u64),
                Ok(Event::Overrun) => Some(0),
                Err(_) => None,
            })
        });
        churn(v.a_index, n, 0);
        r.join().unwrap()
    });
    let cpu_direct = mirror_cpu() - cpu0;
    drop(ev);
    println!(
        "direct kernel reader: {} of {n} events, {:.0} events/s (mirror CPU meanwhile {:.2} µs/event)",
        direct.events,
        rate(&direct),
        cpu_direct.as_secs_f64() * 1e6 / n as f64
    );
    // Routes before a churn (each churn adds and deletes the same routes).
    let baseline = mirror.tables().len(nlkit_mirror::TableId::Routes4);
    for subs in [1usize, 4, 16] {
        // The previous churn fully applied (and so in the feed) before subscribing.
        let deadline = Instant::now() + Duration::from_secs(30);
        while mirror.tables().len(nlkit_mirror::TableId::Routes4) != baseline
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut socks: Vec<Socket> = (0..subs)
            .map(|_| {
                let mut s = Socket::connect_unix(mirror.socket_path(), Protocol::Route).unwrap();
                s.join_group(RTNLGRP_IPV4_ROUTE).unwrap();
                rustix::net::sockopt::set_socket_timeout(
                    &s,
                    rustix::net::sockopt::Timeout::Recv,
                    Some(timeout),
                )
                .unwrap();
                s
            })
            .collect();
        let cpu0 = mirror_cpu();
        let seen: Vec<Seen> = std::thread::scope(|s| {
            let readers: Vec<_> = socks
                .iter_mut()
                .map(|sock| {
                    s.spawn(move || {
                        read_events(n as u64, |buf| match sock.recv(buf) {
                            Ok(()) => Some(
                                Messages::new(buf.unread())
                                    .flatten()
                                    .filter(|m| matches!(m.ty(), RTM_NEWROUTE | RTM_DELROUTE))
                                    .count() as u64,
                            ),
                            Err(_) => None,
                        })
                    })
                })
                .collect();
            churn(v.a_index, n, 0);
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let cpu = mirror_cpu() - cpu0;
        let min = seen.iter().map(|s| s.events).min().unwrap_or(0);
        let worst = seen.iter().map(rate).fold(f64::INFINITY, f64::min);
        println!(
            "{subs:2} subscribers: ≥ {min} of {n} events each (lost ≤ {}), slowest {:.0} events/s = {:.2}× the direct reader; mirror CPU {:.2} µs/event",
            (n as u64).saturating_sub(min),
            worst,
            worst / rate(&direct).max(1e-9),
            cpu.as_secs_f64() * 1e6 / n as f64
        );
    }
    mirror.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    verification_cost(&dir);
}

/// One conntrack verification dump's wall time and CPU.
fn verification_cost(dir: &std::path::Path) {
    use std::sync::atomic::Ordering;
    let n = env("NLKIT_BENCH_FEED_CT", 100_000);
    let loaded = nlkit_testns::load_conntrack(n, 1);
    let mut cfg = MirrorConfig {
        socket_path: Some(dir.join("mirror-ct.sock")),
        writer: WriterMode::Disabled,
        notify_systemd: false,
        neigh_resync_interval: None,
        ct_verify_interval: Some(Duration::from_secs(2)),
        ..MirrorConfig::default()
    };
    cfg.capacities.conntrack = (2 * n as u32).next_power_of_two();
    let mirror = Mirror::start(cfg).unwrap();
    if !mirror.mirrors_conntrack() {
        println!("conntrack verification: ctnetlink unavailable, not measured");
        return;
    }
    let m = mirror.metrics();
    let before = m.last_sync_us.load(Ordering::Relaxed);
    // The dump's threads exit when it is done: count the whole process (this thread sleeps).
    let cpu0 = process_cpu();
    let deadline = Instant::now() + Duration::from_secs(60);
    while m.last_sync_us.load(Ordering::Relaxed) == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = process_cpu() - cpu0;
    let us = m.last_sync_us.load(Ordering::Relaxed);
    let held = mirror.tables().len(nlkit_mirror::TableId::Conntrack);
    let scale = 1_000_000.0 / held.max(1) as f64;
    println!(
        "conntrack verification dump of {held} entries ({loaded} loaded): {:.1} ms wall, {:.1} ms CPU (the process: dump threads, kernel work in their recvmsg); scaled to 1,000,000: {:.2} s wall, {:.2} s CPU (every 60 s by default: {:.1}% of one core)",
        us as f64 / 1e3,
        cpu.as_secs_f64() * 1e3,
        us as f64 / 1e6 * scale,
        cpu.as_secs_f64() * scale,
        cpu.as_secs_f64() * scale / 60.0 * 100.0
    );
    mirror.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    nlkit_testns::run_in_netns(module_path!(), "bench", || {
        run();
        println!("test result: ok. 1 passed");
    });
}
