//! Mirror benchmark (`cargo bench -p nlkit-mirror`), in a private network namespace:
//! initial sync versus the raw kernel dumps, a full route dump served by the mirror versus the
//! kernel's raw dump, conntrack lookups by tuple through the server, and peak memory.
//!
//! Sizes: `NLKIT_BENCH_ROUTES` (default 1,000,000 IPv4 routes) and `NLKIT_BENCH_CT` (default
//! 200,000 conntrack entries: `nf_conntrack_max` is global, 262,144 by default, and can only be
//! raised from the initial namespace). Ratios are taken within one run.

use std::time::{Duration, Instant};

use nlkit_mirror::kernel::KernelSocket;
use nlkit_mirror::{Mirror, MirrorClient, MirrorConfig, WriterMode};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, NfGenMsg, RtMsg};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Best of `n` runs of a raw kernel dump (a bare receive loop counting messages).
fn raw_dump(proto: i32, req: &[u8], n: usize) -> (Duration, usize) {
    let mut sock = KernelSocket::open(proto, 0).unwrap();
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..n {
        let mut r = req.to_vec();
        let t = Instant::now();
        let end = sock.dump_chunks(&mut r, |_| {}).unwrap();
        best = best.min(t.elapsed());
        count = end.messages;
    }
    (best, count)
}

fn route_dump_req() -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 0);
    b.header(&RtMsg {
        family: AF_INET,
        ..Default::default()
    });
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn ct_dump_req() -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET),
        NLM_F_REQUEST | NLM_F_DUMP,
        0,
    );
    b.header(&NfGenMsg {
        family: AF_UNSPEC,
        version: NFNETLINK_V0,
        res_id: 0,
    });
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn ct_get(t: &nlkit_table::Tuple) -> MessageBuilder {
    let mut b = MessageBuilder::new();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET),
        NLM_F_REQUEST,
        0,
    );
    b.header(&NfGenMsg {
        family: AF_INET,
        version: NFNETLINK_V0,
        res_id: 0,
    });
    let n = b.nest_begin(CTA_TUPLE_ORIG);
    let ip = b.nest_begin(CTA_TUPLE_IP);
    b.attr_ip(CTA_IP_V4_SRC, t.src);
    b.attr_ip(CTA_IP_V4_DST, t.dst);
    b.nest_end(ip);
    let p = b.nest_begin(CTA_TUPLE_PROTO);
    b.attr_u8(CTA_PROTO_NUM, t.proto);
    b.attr_be16(CTA_PROTO_SRC_PORT, t.src_port);
    b.attr_be16(CTA_PROTO_DST_PORT, t.dst_port);
    b.nest_end(p);
    b.nest_end(n);
    b
}

fn run() {
    let routes = env("NLKIT_BENCH_ROUTES", 1_000_000);
    let cts = env("NLKIT_BENCH_CT", 200_000);
    let v = nlkit_testns::veth_pair("ba", "bb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    let t = Instant::now();
    nlkit_testns::load_ipv4_routes(v.a_index, routes, 254);
    let load_routes = t.elapsed();
    let t = Instant::now();
    let cts = nlkit_testns::load_conntrack(cts, 1);
    let load_ct = t.elapsed();
    eprintln!(
        "loaded {routes} routes in {load_routes:.2?}, {cts} conntrack entries in {load_ct:.2?}"
    );

    let (raw_routes, nroutes) = raw_dump(NETLINK_ROUTE, &route_dump_req(), 3);
    let (raw_ct, nct) = raw_dump(NETLINK_NETFILTER, &ct_dump_req(), 3);
    let rss_before = vm_rss_kib();

    let dir = std::env::temp_dir().join(format!("nlkit-mirror-bench-{}", std::process::id()));
    let mut cfg = MirrorConfig {
        socket_path: Some(dir.join("mirror.sock")),
        writer: WriterMode::Disabled,
        notify_systemd: false,
        ..MirrorConfig::default()
    };
    cfg.capacities.routes = (routes * 5 / 4).max(1 << 16);
    cfg.capacities.conntrack = (cts as u32 * 5 / 4).max(1 << 16);
    let t = Instant::now();
    let m = Mirror::start(cfg).unwrap();
    let sync = t.elapsed();
    let rss_after = vm_rss_kib();

    let mut c = MirrorClient::connect(m.socket_path()).unwrap();
    let mut served = Duration::MAX;
    let mut served_first = Duration::ZERO;
    let mut served_n = 0;
    for i in 0..3 {
        let mut req = MessageBuilder::new();
        req.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 0);
        req.header(&RtMsg {
            family: AF_INET,
            ..Default::default()
        });
        let t = Instant::now();
        let (r, _) = c.dump_once(&mut req).unwrap();
        let took = t.elapsed();
        if i == 0 {
            // The first dump after the sync also renders the table's dump cache.
            served_first = took;
        }
        served = served.min(took);
        served_n = r.len();
    }

    let tuples: Vec<_> = m
        .tables()
        .ct
        .iter()
        .take(50_000)
        .map(|c| c.original())
        .collect();
    let mut reqs: Vec<MessageBuilder> = tuples.iter().map(ct_get).collect();
    let t = Instant::now();
    let mut found = 0;
    for r in reqs.iter_mut() {
        if c.transact(r).is_ok() {
            found += 1;
        }
    }
    let lookups = t.elapsed();
    let lookup_rate = found as f64 / lookups.as_secs_f64().max(1e-9);
    let hwm = vm_hwm_kib();
    let table_mem = m.tables().routes[0].memory_bytes() + m.tables().ct.memory_bytes();

    let raw_total = raw_routes + raw_ct;
    println!();
    println!("nlkit-mirror bench: {nroutes} IPv4 routes, {nct} conntrack entries (netns)");
    println!("{:<46} {:>12} {:>10}", "measure", "value", "target");
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "kernel raw dump, routes", raw_routes, ""
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "kernel raw dump, conntrack", raw_ct, ""
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "mirror initial sync (all tables)", sync, ""
    );
    println!(
        "{:<46} {:>12.2} {:>10}",
        "initial sync / raw dumps (routes + conntrack)",
        sync.as_secs_f64() / raw_total.as_secs_f64(),
        "<= 1.3"
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        format!("mirror served route dump ({served_n} msgs)"),
        served,
        ""
    );
    println!(
        "{:<46} {:>12.3?} {:>10}",
        "first served dump (renders the cache)", served_first, ""
    );
    println!(
        "{:<46} {:>12.2} {:>10}",
        "kernel raw dump / mirror served dump",
        raw_routes.as_secs_f64() / served.as_secs_f64(),
        ">= 4"
    );
    println!(
        "{:<46} {:>12.0} {:>10}",
        format!("conntrack gets by tuple via server ({found})/s"),
        lookup_rate,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        "mirror RSS growth during sync",
        (rss_after.saturating_sub(rss_before)) / 1024,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        "table memory (routes4 + conntrack)",
        table_mem >> 20,
        ""
    );
    println!(
        "{:<46} {:>9} MiB {:>10}",
        "process peak memory (VmHWM)",
        hwm / 1024,
        "<= 400"
    );
    m.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    nlkit_testns::run_in_netns(module_path!(), "bench", || {
        run();
        // The namespace harness checks for a libtest-style summary from its child.
        println!("test result: ok. 1 passed");
    });
}
