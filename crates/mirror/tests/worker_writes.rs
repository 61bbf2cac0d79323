//! Writes through the worker process ([`WriterMode::Worker`]): the kernel's ack and errors come
//! back through the worker's channel; forged replies are ignored; a stopped, killed or dead
//! worker fails its writes with a clear error and is replaced.
//!
//! `harness = false`: the worker re-executes this binary, so `main` must call
//! `maybe_run_worker` before anything else. Each test runs in its own network namespace.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use nlkit_mirror::{Mirror, TableId, WriterMode};
use nlkit_socket::{Error, Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{ErrorMsg, MessageBuilder, Messages, RtMsg};

fn route_req(dst: &str, oif: u32) -> MessageBuilder {
    route_req_seq(dst, oif, 0)
}

fn route_req_seq(dst: &str, oif: u32, seq: u32) -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    );
    req.header(&RtMsg {
        family: AF_INET,
        dst_len: 32,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_STATIC,
        scope: RT_SCOPE_LINK,
        ty: RTN_UNICAST,
        ..Default::default()
    });
    req.attr_ip(RTA_DST, dst.parse().unwrap());
    req.attr_u32(RTA_OIF, oif);
    req.finish().unwrap();
    req
}

fn client(m: &Mirror) -> Socket {
    let c = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
    rustix::net::sockopt::set_socket_timeout(
        &c,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    c
}

/// Whether the kernel (not the mirror) has the host route `dst`.
fn kernel_has_route(dst: &str) -> bool {
    let mut k = Socket::open(Protocol::Route).unwrap();
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETROUTE, NLM_F_REQUEST, 0);
    req.header(&RtMsg {
        family: AF_INET,
        dst_len: 32,
        ..Default::default()
    });
    req.attr_ip(RTA_DST, dst.parse().unwrap());
    req.finish().unwrap();
    let Ok(r) = k.transact(&mut req) else {
        return false;
    };
    r.messages().flatten().any(|m| {
        nlkit_route::RouteView::parse(&m)
            .is_ok_and(|v| v.dst().is_some_and(|d| d.to_string() == dst) && v.dst_len() == 32)
    })
}

/// The worker processes of this mirror: our children started with the worker marker.
fn worker_pids() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, …
        let mut rest = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid: i32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let marked = cmdline
            .split(|b| *b == 0)
            .any(|a| a == nlkit_worker::WORKER_ARG.as_bytes());
        if ppid == me && marked && state != "Z" {
            out.push(pid);
        }
    }
    out
}

/// The one live worker (waits a little: a replacement may be starting).
fn the_worker() -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = worker_pids();
        if pids.len() == 1 {
            return pids[0];
        }
        assert!(Instant::now() < deadline, "workers: {pids:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The port ids of `pid`'s netlink sockets of `protocol`, from `/proc/net/netlink` (sockets of
/// this namespace, by inode) and `/proc/PID/fd` — what an attacker in the namespace can see.
fn netlink_ports(pid: i32, protocol: i32) -> Vec<u32> {
    let mut inodes = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(link) = std::fs::read_link(e.path()) {
            let link = link.to_string_lossy().into_owned();
            if let Some(ino) = link
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                inodes.push(ino.to_owned());
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/netlink").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
            let proto: i32 = f.get(1)?.parse().ok()?;
            let port: u32 = f.get(2)?.parse().ok()?;
            let ino = f.get(9)?;
            (proto == protocol && inodes.iter().any(|i| i == ino)).then_some(port)
        })
        .collect()
}

/// Sends a forged `NLMSG_ERROR(EPERM)` for sequence number `seq` to netlink port `port`.
fn forge_eperm(port: u32, seq: u32) {
    let bytes = nlkit_testns::forged_error(seq, port, libc::EPERM, RTM_NEWROUTE);
    nlkit_testns::send_forged(&nlkit_testns::attacker(), port, &bytes);
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Waits until `pid` is no longer a live process (gone or a zombie).
fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while worker_pids().contains(&pid) {
        assert!(Instant::now() < deadline, "worker {pid} still alive");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn setup(tag: &str, timeout: Duration) -> (nlkit_testns::Veth, Mirror) {
    let v = nlkit_testns::veth_pair("wa", "wb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    let m = start(tag, |c| {
        c.writer = WriterMode::Worker;
        c.write_timeout = timeout;
    });
    (v, m)
}

/// Acks and errors come back through the worker.
fn acks_and_errors() {
    let (v, m) = setup("worker", Duration::from_secs(30));
    let mut c = client(&m);
    c.transact(&mut route_req("10.77.0.1", v.a_index)).unwrap();
    match c.transact(&mut route_req("10.77.0.1", v.a_index)) {
        Err(Error::Kernel(e)) => assert_eq!(e.errno, libc::EEXIST),
        other => panic!("expected EEXIST, got {other:?}"),
    }
    assert_converges(&m, &[TableId::Routes4], Duration::from_secs(10));
    assert!(!m.tables().routes[0].is_empty());
    m.shutdown();
}

/// A process with CAP_NET_ADMIN in the namespace queues forged `NLMSG_ERROR(EPERM)` datagrams
/// on the worker's rtnetlink socket, with the sequence numbers the next two clients' requests
/// carry: both clients get their own real acks, and both routes are installed.
fn forged_replies_are_ignored() {
    let (v, m) = setup("forged", Duration::from_secs(30));
    let mut c1 = client(&m);
    let mut c2 = client(&m);
    // The worker opens its kernel socket on the first write.
    c1.transact(&mut route_req("10.77.1.1", v.a_index)).unwrap();
    let pid = the_worker();
    let ports = netlink_ports(pid, NETLINK_ROUTE);
    assert!(!ports.is_empty(), "worker {pid} has no rtnetlink socket");
    let (s1, s2) = (c1.alloc_seq(0), c2.alloc_seq(0));
    for &port in &ports {
        for seq in [s1, s2, s1.wrapping_add(1), s2.wrapping_add(1)] {
            forge_eperm(port, seq);
        }
    }
    for (c, dst, seq) in [(&mut c1, "10.77.1.2", 1111), (&mut c2, "10.77.1.3", 2222)] {
        let reply = c
            .transact_raw(route_req_seq(dst, v.a_index, seq).as_bytes())
            .unwrap();
        let msgs: Vec<_> = Messages::new(&reply).map(|m| m.unwrap()).collect();
        assert_eq!(msgs.len(), 1, "one ack");
        let ack = ErrorMsg::parse(&msgs[0]).unwrap();
        assert!(ack.is_ack(), "client got {:?}, not its ack", ack.to_error());
        // The client's own sequence number: its own ack, not another client's.
        assert_eq!(msgs[0].seq(), seq);
        assert!(kernel_has_route(dst), "{dst} installed");
    }
    assert_eq!(worker_pids(), vec![pid], "same worker throughout");
    m.shutdown();
}

/// A SIGSTOPped worker: the write fails after the configured deadline with a clear error, the
/// worker is killed, and the next write succeeds on a fresh worker.
fn stopped_worker_times_out() {
    let (v, m) = setup("stopped", Duration::from_millis(700));
    let mut c = client(&m);
    c.transact(&mut route_req("10.77.2.1", v.a_index)).unwrap();
    let pid = the_worker();
    signal(pid, libc::SIGSTOP);
    let t = Instant::now();
    match c.transact(&mut route_req("10.77.2.2", v.a_index)) {
        Err(Error::Kernel(e)) => {
            assert_eq!(e.errno, libc::ETIMEDOUT, "{e}");
            assert!(e.to_string().contains("timed out"), "{e}");
        }
        other => panic!("expected ETIMEDOUT, got {other:?}"),
    }
    println!("    stopped worker: write failed after {:?}", t.elapsed());
    wait_gone(pid);
    c.transact(&mut route_req("10.77.2.3", v.a_index)).unwrap();
    assert!(kernel_has_route("10.77.2.3"));
    assert_ne!(the_worker(), pid, "a fresh worker");
    assert!(m.metrics().restarts.load(Ordering::Relaxed) >= 1);
    m.shutdown();
}

/// A worker killed while idle is replaced before the next write, submitted 50 ms later.
fn idle_death_is_noticed() {
    let (v, m) = setup("idle", Duration::from_secs(30));
    let mut c = client(&m);
    c.transact(&mut route_req("10.77.3.1", v.a_index)).unwrap();
    let pid = the_worker();
    signal(pid, libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(50));
    c.transact(&mut route_req("10.77.3.2", v.a_index))
        .expect("the write after an idle worker's death succeeds");
    assert!(kernel_has_route("10.77.3.2"));
    assert_ne!(the_worker(), pid);
    m.shutdown();
}

/// kill -9 of a worker holding writes: the write it was running fails promptly (long before its
/// deadline) with a clear error, the write queued behind it runs on the restarted worker.
fn kill_9_fails_in_flight() {
    let (v, m) = setup("kill9", Duration::from_secs(60));
    let mut c = client(&m);
    c.transact(&mut route_req("10.77.4.1", v.a_index)).unwrap();
    let pid = the_worker();
    // Stopped, the worker holds the next writes without answering them.
    signal(pid, libc::SIGSTOP);
    let writes = m.metrics().writes.load(Ordering::Relaxed);
    let held: Vec<_> = ["10.77.4.2", "10.77.4.3"]
        .into_iter()
        .map(|dst| {
            let path = m.socket_path().to_owned();
            let oif = v.a_index;
            std::thread::spawn(move || {
                let mut c = Socket::connect_unix(path, Protocol::Route).unwrap();
                let r = c.transact(&mut route_req(dst, oif));
                (dst, r, Instant::now())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.metrics().writes.load(Ordering::Relaxed) < writes + 2 {
        assert!(
            Instant::now() < deadline,
            "the writes never reached the mirror"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the writer hand them to the worker.
    std::thread::sleep(Duration::from_millis(100));
    signal(pid, libc::SIGKILL);
    let killed = Instant::now();
    let (mut failed, mut applied) = (0, 0);
    for h in held {
        let (dst, r, at) = h.join().unwrap();
        let took = at.saturating_duration_since(killed);
        match r {
            Err(Error::Kernel(e)) => {
                assert_eq!(e.errno, libc::EIO, "{e}");
                assert!(e.to_string().contains("died"), "{e}");
                assert!(
                    took < Duration::from_secs(30),
                    "failed by the deadline, not the death"
                );
                println!("    kill -9: the running write failed {took:?} after the kill");
                failed += 1;
            }
            Ok(_) => {
                assert!(kernel_has_route(dst));
                applied += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(
        (failed, applied),
        (1, 1),
        "the running write fails, the queued one runs"
    );
    c.transact(&mut route_req("10.77.4.4", v.a_index)).unwrap();
    assert_ne!(the_worker(), pid);
    m.shutdown();
}

/// The mirror process killed with SIGKILL: its worker exits promptly. The mirror runs in a
/// child process (this binary, `MIRROR_CHILD_ENV`) in this test's namespace; its worker's
/// exit is timed with a pidfd (whoever reaps it). Loose bound, the time is printed.
fn mirror_sigkilled() {
    let v = nlkit_testns::veth_pair("wa", "wb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    nlkit_testns::load_ipv4_routes(v.a_index, 20_000, 254);
    let mut child = std::process::Command::new("/proc/self/exe")
        .env(MIRROR_CHILD_ENV, v.a_index.to_string())
        .env_remove(nlkit_testns::CHILD_ENV)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (_pid, _killed, took) = nlkit_testns::kill_and_time_worker(&mut child);
    // What stays visible after this point is the worker's zombie: orphaned, it is reaped by
    // whichever init inherits it, on that init's schedule (about 2 s for this VM's PID 1),
    // which no code of ours can speed up. `kill -0` and `ps` count a zombie as alive.
    println!("    mirror SIGKILLed → its worker exited after {took:?}");
}

/// Set in the mirror process of `mirror_sigkilled`.
const MIRROR_CHILD_ENV: &str = "NLKIT_TEST_MIRROR_CHILD";

/// The mirror process of `mirror_sigkilled`: a mirror with routes and a worker that has run a
/// write; prints the worker's pid, then waits to be killed.
fn mirror_child() {
    let oif: u32 = std::env::var(MIRROR_CHILD_ENV).unwrap().parse().unwrap();
    let m = start("sigkilled", |c| c.writer = WriterMode::Worker);
    let mut c = client(&m);
    c.transact(&mut route_req("10.77.5.1", oif)).unwrap();
    println!("{}", the_worker());
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

type Test = (&'static str, fn());

fn main() {
    nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry);
    if std::env::var_os(MIRROR_CHILD_ENV).is_some() {
        return mirror_child();
    }
    let tests: [Test; 6] = [
        ("acks_and_errors", acks_and_errors),
        ("forged_replies_are_ignored", forged_replies_are_ignored),
        ("stopped_worker_times_out", stopped_worker_times_out),
        ("idle_death_is_noticed", idle_death_is_noticed),
        ("kill_9_fails_in_flight", kill_9_fails_in_flight),
        ("mirror_sigkilled", mirror_sigkilled),
    ];
    let child = std::env::var(nlkit_testns::CHILD_ENV).ok();
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut passed = 0;
    for (name, body) in tests {
        if child.as_deref().is_some_and(|c| c != name) {
            continue;
        }
        if child.is_none() && filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        nlkit_testns::run_in_netns(module_path!(), name, || {
            body();
            println!("test result: ok. 1 passed");
        });
        if child.is_none() {
            println!("test {name} ... ok");
        }
        passed += 1;
    }
    if child.is_none() {
        println!("\ntest result: ok. {passed} passed; 0 failed");
    }
}
