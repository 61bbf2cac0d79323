//! Runs every program of `examples/` against a private network namespace.
//!
//! Each example keeps its work in `pub fn`s beside `main`; this file compiles the example's
//! source as a module (`#[path]`) and calls them in the test's namespace, with the state set
//! up by `nlkit_testns` fixtures, and checks what they print and return. (`cargo test` also
//! builds each example as its own program.) Examples that wait for events run with
//! `--count N` while the test makes the changes that produce them.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nlkit::prelude::*;

// `main` of each example is its program's entry point, not called here.
#[allow(dead_code)]
#[path = "../examples/ask_mirror.rs"]
mod ask_mirror;
#[allow(dead_code)]
#[path = "../examples/batch_routes.rs"]
mod batch_routes;
#[allow(dead_code)]
#[path = "../examples/change_route.rs"]
mod change_route;
#[allow(dead_code)]
#[path = "../examples/cni.rs"]
mod cni;
#[allow(dead_code)]
#[path = "../examples/conntrack_dump.rs"]
mod conntrack_dump;
#[allow(dead_code)]
#[path = "../examples/conntrack_events.rs"]
mod conntrack_events;
#[allow(dead_code)]
#[path = "../examples/consistent_dump.rs"]
mod consistent_dump;
#[allow(dead_code)]
#[path = "../examples/list_routes.rs"]
mod list_routes;
#[allow(dead_code)]
#[path = "../examples/mirror_feed.rs"]
mod mirror_feed;
#[allow(dead_code)]
#[path = "../examples/mirror_view.rs"]
mod mirror_view;
#[allow(dead_code)]
#[path = "../examples/nexthops.rs"]
mod nexthops;
#[allow(dead_code)]
#[path = "../examples/shared_dump.rs"]
mod shared_dump;
#[allow(dead_code)]
#[path = "../examples/watch_links.rs"]
mod watch_links;

/// Deadline for the events an example waits for.
const EVENT_DEADLINE: Duration = Duration::from_secs(20);

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn text(out: &[u8]) -> String {
    String::from_utf8(out.to_vec()).unwrap()
}

/// veth `va`–`vb`, both up, with 10.0.0.1/24 on `va`.
fn setup() -> nlkit_testns::Veth {
    let v = nlkit_testns::veth_pair("va", "vb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    v
}

/// Repeats `change` until `worker` has finished (it waits for the events the changes make),
/// and returns its result.
fn drive<T>(worker: JoinHandle<T>, mut change: impl FnMut(u32)) -> T {
    let deadline = Instant::now() + EVENT_DEADLINE;
    let mut i = 0;
    while !worker.is_finished() {
        assert!(Instant::now() < deadline, "the example saw no events");
        change(i);
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    worker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A mirror in this test's namespace, on a socket in a fresh directory named after `tag`
/// (small tables; conntrack only when `conntrack`): the mirror, the directory to remove
/// after `shutdown`, and the socket path.
fn start_mirror(
    tag: &str,
    conntrack: bool,
) -> (nlkit_mirror::Mirror, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("nlkit-{tag}-{}", std::process::id()));
    let path = dir.join("mirror.sock");
    let mut cfg = nlkit_mirror::MirrorConfig {
        socket_path: Some(path.clone()),
        writer: nlkit_mirror::WriterMode::Thread,
        notify_systemd: false,
        conntrack,
        ..Default::default()
    };
    cfg.capacities.routes = 1 << 12;
    cfg.capacities.conntrack = 1 << 12;
    let mirror = nlkit_mirror::Mirror::start(cfg).unwrap();
    (mirror, dir, path)
}

nlkit_testns::netns_test! {
    /// `list_routes` prints what `ip route` prints, and counts what it printed.
    fn list_routes_like_ip_route() {
        let v = setup();
        let loaded = nlkit_testns::load_ipv4_routes(v.a_index, 300, 254).len() as u64;
        let mut out = Vec::new();
        let n = list_routes::run(&[], &mut out).unwrap();
        assert_eq!(n, loaded + 1, "the loaded routes and the connected 10.0.0.0/24");
        let out = text(&out);
        assert!(out.contains("10.0.0.0/24 dev va proto kernel scope link src 10.0.0.1"), "{out}");
        if nlkit_testns::have_command("ip") {
            let ip = nlkit_testns::ip(&["-4", "route", "show"]);
            let ours: Vec<&str> = out.lines().map(str::trim_end).collect();
            let theirs: Vec<&str> = ip.lines().map(str::trim_end).collect();
            assert_eq!(ours, theirs);
        }
        // Every table: the local table's routes too, each tagged with its table.
        let mut all = Vec::new();
        assert!(list_routes::run(&args(&["table", "all"]), &mut all).unwrap() > n);
        assert!(text(&all).contains("local 10.0.0.1 dev va table local"), "{}", text(&all));
        // IPv6 and a bad argument.
        list_routes::run(&args(&["-6"]), &mut Vec::new()).unwrap();
        let e = list_routes::run(&args(&["--bogus"]), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().starts_with("usage:"), "{e}");
    }

    /// `change_route` adds, replaces and deletes, and reports the kernel's extended ack.
    fn change_route_reports_ext_ack() {
        setup();
        let mut sock = Socket::open(Protocol::Route).unwrap();

        let mut out = Vec::new();
        let add = args(&["add", "10.9.0.0/16", "via", "10.0.0.2", "dev", "va"]);
        change_route::run(&add, &mut out).unwrap();
        assert_eq!(text(&out), "add 10.9.0.0/16: done\n");
        assert_eq!(gateway_of_10_9(&mut sock), Some(Some(v4(10, 0, 0, 2))));

        let replace = args(&["replace", "10.9.0.0/16", "via", "10.0.0.3", "metric", "0"]);
        change_route::run(&replace, &mut Vec::new()).unwrap();
        assert_eq!(gateway_of_10_9(&mut sock), Some(Some(v4(10, 0, 0, 3))));

        // The same route again: EEXIST.
        let again = args(&["add", "10.9.0.0/16", "via", "10.0.0.3"]);
        let e = change_route::run(&again, &mut Vec::new()).unwrap_err();
        let e = e.downcast_ref::<Error>().expect("a socket error");
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(e.to_string(), "Error: File exists.");

        // A gateway with no route to it: the kernel's own words, and the errno.
        let mut out = Vec::new();
        let e = change_route::run(&args(&["add", "10.8.0.0/16", "via", "192.0.2.1"]), &mut out)
            .unwrap_err();
        assert_eq!(e.to_string(), "Error: Nexthop has invalid gateway.");
        let Some(Error::Kernel(k)) = e.downcast_ref::<Error>() else {
            panic!("not a kernel error: {e:?}");
        };
        assert_eq!(k.msg.as_deref(), Some("Nexthop has invalid gateway"));
        let out = text(&out);
        assert!(out.starts_with("add 10.8.0.0/16: refused, errno "), "{out}");
        assert!(out.ends_with(": Nexthop has invalid gateway\n"), "{out}");

        change_route::run(&args(&["del", "10.9.0.0/16"]), &mut Vec::new()).unwrap();
        assert_eq!(gateway_of_10_9(&mut sock), None);
        let e = change_route::run(&args(&["del", "10.9.0.0/16"]), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().starts_with("Error: "), "{e}");
    }

    /// `batch_routes` sends a thousand changes at once and reports each one's result.
    fn batch_routes_reports_every_result() {
        setup();
        let run = |a: &[&str]| {
            let mut out = Vec::new();
            let s = batch_routes::run(&args(a), &mut out).unwrap();
            (s, text(&out))
        };
        let (s, out) = run(&["add", "--dev", "va", "--count", "1000"]);
        assert_eq!((s.done, s.refused), (1000, 0), "{out}");
        assert_eq!(out, "add: 1000 done, 0 refused\n");
        let listed = list_routes::run(&[], &mut Vec::new()).unwrap();
        assert_eq!(listed, 1001, "the batch's routes and the connected one");

        // Half of them again, from the middle: each refused on its own, the rest added.
        let (s, out) = run(&["add", "--dev", "va", "--count", "1000", "--from", "10.128.1.245"]);
        assert_eq!((s.done, s.refused), (500, 500), "{out}");
        assert_eq!(s.errors.get("Error: File exists."), Some(&500), "{out}");
        assert!(out.ends_with("  500 × Error: File exists.\n"), "{out}");

        let (s, _) = run(&["del", "--dev", "va", "--count", "1500"]);
        assert_eq!((s.done, s.refused), (1500, 0));
        assert_eq!(list_routes::run(&[], &mut Vec::new()).unwrap(), 1);
        let no_dev = args(&["add", "--dev", "nosuch", "--count", "1"]);
        let e = batch_routes::run(&no_dev, &mut Vec::new()).unwrap_err();
        let errno = e.downcast_ref::<Error>().and_then(Error::errno);
        assert_eq!(errno, Some(libc::ENODEV), "{e}");
    }

    /// `watch_links --count N` prints the links first, then the events of links created
    /// while it runs.
    fn watch_links_prints_events() {
        // No other links: every event is one of the veths made below (creation, carrier).
        let worker = std::thread::spawn(|| {
            let mut out = Vec::new();
            let n = watch_links::run(&args(&["--count", "2"]), &mut out).unwrap();
            (n, text(&out))
        });
        let (n, out) = drive(worker, |i| {
            nlkit_testns::veth_pair(&format!("wa{i}"), &format!("wb{i}"));
        });
        assert!(n >= 2, "{out}");
        assert!(out.starts_with("resync: "), "{out}");
        let veth = |l: &&str| l.contains(": wa") || l.contains(": wb");
        assert!(out.lines().skip(1).filter(veth).count() >= 2, "{out}");
    }

    /// After a burst that overflows the event socket's queue, `watch` resyncs from a dump and
    /// goes on with the events still queued.
    fn watch_links_resyncs_after_enobufs() {
        let opts = SocketOptions { rcvbuf: 1, ..EventSocket::default_options() }; // the minimum
        let mut events =
            EventSocket::with_options(Protocol::Route, &opts, &[consts::RTNLGRP_LINK]).unwrap();
        // Nobody reads while these are made: far more notifications than the queue holds.
        for i in 0..20 {
            nlkit_testns::veth_pair(&format!("xa{i}"), &format!("xb{i}"));
        }
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let mut out = Vec::new();
        let n = watch_links::watch(&mut events, &mut sock, Some(1), &mut out).unwrap();
        let out = text(&out);
        assert!(n >= 1, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "resync: 41 links", "{out}");
        assert!(lines[1].starts_with("events lost (ENOBUFS); receive buffer now "), "{out}");
        assert_eq!(lines[2], "resync: 41 links", "{out}");
        assert!(lines.len() > 3, "an event after the resync: {out}");
        assert_eq!(events.overruns(), 1);
    }

    /// `consistent_dump` returns every link, in one attempt when nothing changes.
    fn consistent_dump_snapshots_links() {
        setup();
        for i in 0..5 {
            nlkit_testns::veth_pair(&format!("ca{i}"), &format!("cb{i}"));
        }
        let mut out = Vec::new();
        let links = consistent_dump::run(&[], &mut out).unwrap();
        assert_eq!(links.len(), 13);
        assert_eq!(links[&1].name.as_deref(), Some("lo"));
        let out = text(&out);
        assert!(out.contains(": ca4 mtu 1500 UP\n"), "{out}");
        assert!(out.ends_with("13 links, consistent after 1 attempt(s)\n"), "{out}");
        consistent_dump::run(&args(&["--attempts", "1"]), &mut Vec::new()).unwrap();
    }

    /// `shared_dump` splits one dump between threads, and together they see every route
    /// exactly once.
    fn shared_dump_sees_every_route_once() {
        let v = setup();
        nlkit_testns::load_ipv4_routes(v.a_index, 20_000, 254);
        let all = list_routes::run(&args(&["table", "all"]), &mut std::io::sink()).unwrap();
        let mut out = Vec::new();
        let counts = shared_dump::run(&args(&["--threads", "3"]), &mut out).unwrap();
        assert_eq!(counts.len(), 3);
        assert_eq!(counts.iter().sum::<u64>(), all);
        assert!(text(&out).ends_with(&format!("{all} routes in all\n")));
        let one = shared_dump::run(&args(&["--threads", "1", "-6"]), &mut Vec::new()).unwrap();
        assert_eq!(one.len(), 1);
    }

    /// `conntrack_dump` gets only the matching entries from the kernel (mark, and a
    /// `CTA_FILTER` tuple).
    fn conntrack_dump_filters_in_the_kernel() {
        nlkit_testns::load_conntrack(50, 7);
        let mut sock = Socket::open(Protocol::Netfilter).unwrap();
        let entries: Vec<CtEntry> = (0..20u16)
            .map(|i| {
                let dport = if i < 10 { 53 } else { 123 };
                let t = Tuple::udp(v4(10, 202, 0, 1), 2000 + i, v4(10, 203, 0, 1), dport);
                CtEntry::new(t).timeout(600).mark(9)
            })
            .collect();
        for r in conntrack::ops::create_many(&mut sock, &entries).unwrap() {
            r.unwrap();
        }

        let run = |a: &[&str]| {
            let mut out = Vec::new();
            let s = conntrack_dump::run(&args(a), &mut out).unwrap();
            (s.delivered, s.received, text(&out))
        };
        let (delivered, received, out) = run(&["--mark", "7"]);
        assert_eq!((delivered, received), (50, 50), "the kernel sent only mark 7: {out}");
        assert!(out.lines().next().unwrap().starts_with("udp      17 "), "{out}");
        let mark7 = |l: &str| l.contains(" dport=53 ") && l.contains(" mark=7 ");
        assert!(out.lines().take(50).all(mark7), "{out}");

        let (delivered, received, _) =
            run(&["--mark", "9/0xff", "-p", "udp", "-d", "10.203.0.1", "--dport", "123"]);
        assert_eq!((delivered, received), (10, 10), "the kernel applied CTA_FILTER");
        let (delivered, _, out) = run(&[]);
        assert_eq!(delivered, 70);
        assert!(out.ends_with("70 entries matched; the kernel sent 70\n"), "{out}");
    }

    /// `conntrack_events --count 1` prints the event of an entry created while it runs.
    fn conntrack_events_prints_new_entries() {
        let worker = std::thread::spawn(|| {
            let mut out = Vec::new();
            let a = args(&["--count", "1", "-e", "new"]);
            let n = conntrack_events::run(&a, &mut out).unwrap();
            (n, text(&out))
        });
        let mut sock = Socket::open(Protocol::Netfilter).unwrap();
        let (n, out) = drive(worker, |i| {
            let t = Tuple::udp(v4(10, 204, 0, 1), 3000 + i as u16, v4(10, 205, 0, 1), 53);
            conntrack::ops::create(&mut sock, &CtEntry::new(t).timeout(600)).unwrap();
        });
        assert!(n >= 1, "{out}");
        assert!(out.starts_with("    [NEW] udp      17 "), "{out}");
        assert!(out.contains(" src=10.204.0.1 dst=10.205.0.1 sport=30"), "{out}");
    }

    /// `nexthops` prints what `ip nexthop` and `ip route` print after its one replace moved
    /// every route to the two-gateway group.
    fn nexthops_moves_routes_with_one_replace() {
        nlkit_testns::ip(&["link", "set", "lo", "up"]);
        let mut out = Vec::new();
        nexthops::run(&mut out).unwrap();
        let out = text(&out);
        let mut want = nlkit_testns::ip(&["nexthop", "show"]);
        for l in nlkit_testns::ip(&["route", "show"]).lines() {
            if l.contains(" nhid ") || l.starts_with('\t') || l.starts_with("    ") {
                want.push_str(l);
                want.push('\n');
            }
        }
        let ours: Vec<&str> = out.lines().map(str::trim_end).collect();
        let theirs: Vec<&str> = want.lines().map(str::trim_end).collect();
        assert_eq!(ours, theirs);
        assert_eq!(out.matches("nhid 100").count(), usize::from(nexthops::ROUTES), "{out}");
        assert_eq!(out.matches("nexthop via 198.51.100.2 dev nh1 weight 3").count(), 4, "{out}");
    }

    /// The CNI scenario of `cni`, entirely through the library, checked with `ip` and
    /// `bridge` (the container's side through `nsenter`).
    fn cni_scenario_through_the_library() {
        let c = cni::setup().expect("CNI setup");
        let fd = c.netns.as_raw_fd();
        let mac = route::fmt::Mac(&c.mac).to_string();
        let ip = nlkit_testns::ip;

        let br = ip(&["-o", "link", "show", "cni0"]);
        assert!(br.contains("cni0: <") && br.contains(",UP"), "{br}");
        assert!(ip(&["-4", "-o", "addr", "show", "dev", "cni0"]).contains("inet 10.22.0.1/24"));
        let host = ip(&["-o", "link", "show", "veth-c1"]);
        assert!(host.contains("master cni0"), "{host}");
        // The peer is in the other namespace: `@ifN` and a link-netnsid.
        assert!(host.contains("veth-c1@if") && host.contains("link-netnsid 0"), "{host}");
        assert!(!ip(&["link", "show"]).contains("eth0"));

        let eth0 = in_ns(fd, "ip", &["-o", "link", "show", "eth0"]);
        assert!(eth0.contains(",UP") && eth0.contains(&mac), "{eth0}");
        let addr = in_ns(fd, "ip", &["-4", "-o", "addr", "show", "dev", "eth0"]);
        assert!(addr.contains("inet 10.22.0.2/24"), "{addr}");
        assert_eq!(
            in_ns(fd, "ip", &["route", "show", "default"]),
            "default via 10.22.0.1 dev eth0 \n"
        );

        let fdb = nlkit_testns::run("bridge", &["fdb", "show", "br", "cni0"]);
        let fdb = String::from_utf8_lossy(&fdb.stdout);
        assert!(
            fdb.lines().any(|l| l == format!("{mac} dev veth-c1 master cni0 static")),
            "{fdb}"
        );
    }

    /// `mirror_feed` takes a snapshot then follows route changes with their positions; a
    /// second run resumes after the first one's last position, without a repeat.
    fn mirror_feed_snapshot_follow_and_resume() {
        let v = setup();
        nlkit_testns::load_ipv4_routes(v.a_index, 50, 254);
        let (mirror, dir, path) = start_mirror("feed-ex", false);
        let p = path.to_str().unwrap().to_string();
        let toggle = |i: u32| {
            // Either way round is a change (a failed delete of an absent route is none).
            let verb = if i % 2 == 0 { "replace" } else { "del" };
            let _ = nlkit_testns::run("ip", &["route", verb, "10.77.0.0/16", "dev", "va"]);
        };
        let a = args(&["--socket", &p, "--count", "2"]);
        let first = drive(
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let last = mirror_feed::run(&a, &mut out).unwrap();
                (last, text(&out))
            }),
            toggle,
        );
        let (last, out) = first;
        assert!(out.starts_with("snapshot: "), "{out}");
        let n: u64 = out["snapshot: ".len()..].split(' ').next().unwrap().parse().unwrap();
        assert!(n >= 50, "{out}");
        assert!(out.contains("10.77.0.0/16 dev va"), "{out}");
        let resume = format!("{}:{}", last.epoch, last.position);
        let a = args(&["--socket", &p, "--count", "1", "--resume", &resume]);
        let (next, out) = drive(
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let next = mirror_feed::run(&a, &mut out).unwrap();
                (next, text(&out))
            }),
            |i| toggle(i + 1),
        );
        assert!(out.starts_with(&format!("resumed after {resume}")), "{out}");
        assert!(next.position > last.position && next.epoch == last.epoch, "{out}");
        mirror.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `ask_mirror` gets the same routes from a mirror as the kernel has, and its
    /// conntrack entries.
    fn ask_mirror_answers_like_the_kernel() {
        let v = setup();
        nlkit_testns::load_ipv4_routes(v.a_index, 200, 254);
        nlkit_testns::load_conntrack(25, 3);
        let (mirror, dir, path) = start_mirror("examples", true);

        let mut out = Vec::new();
        let socket = args(&["--socket", path.to_str().unwrap()]);
        let (routes, entries) = ask_mirror::run(&socket, &mut out).unwrap();
        let mut kernel = Vec::new();
        assert_eq!(routes, list_routes::run(&[], &mut kernel).unwrap());
        assert_eq!(routes, 201);
        // The same lines (the mirror's tables keep their own order), then the summary.
        let out = text(&out);
        let mut ours: Vec<&str> = out.lines().collect();
        let summary = ours.pop().unwrap();
        assert!(summary.starts_with("201 routes and "), "{summary}");
        let kernel = text(&kernel);
        let mut theirs: Vec<&str> = kernel.lines().collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
        assert!(mirror.mirrors_conntrack(), "ctnetlink works in test namespaces");
        assert_eq!(entries, 25, "{out}");
        mirror.shutdown();
        let _ = std::fs::remove_dir_all(&dir);

        // Nobody listening any more: a typed connect error naming the path.
        let e = ask_mirror::run(&socket, &mut Vec::new()).unwrap_err();
        assert!(matches!(e.downcast_ref::<Error>(), Some(Error::Connect { .. })), "{e:?}");
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The gateway of the route 10.9.0.0/16 in the main table: `None` without such a route.
fn gateway_of_10_9(sock: &mut Socket) -> Option<Option<IpAddr>> {
    let mut found = None;
    let filter = route::request::RouteFilter::main();
    route::ops::dump_routes(sock, consts::AF_INET, &filter, |r| {
        if r.dst() == Some(v4(10, 9, 0, 0)) && r.dst_len() == 16 {
            found = Some(r.gateway());
        }
        Ok(())
    })
    .unwrap();
    found
}

/// `cmd args…` inside the namespace open as our descriptor `fd` (`nsenter --net`).
fn in_ns(fd: i32, cmd: &str, args: &[&str]) -> String {
    let path = format!("--net=/proc/{}/fd/{fd}", std::process::id());
    let mut all = vec![path.as_str(), cmd];
    all.extend_from_slice(args);
    let out = nlkit_testns::run("nsenter", &all);
    assert!(
        out.status.success(),
        "nsenter {}: {}",
        all.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

nlkit_testns::netns_test! {
    /// `mirror_view` maps a mirror's tables: finds the link, walks the same main-table routes
    /// as the kernel has, counts the conntrack entries.
    fn mirror_view_reads_the_mapped_tables() {
        let v = setup();
        nlkit_testns::load_ipv4_routes(v.a_index, 100, 254);
        nlkit_testns::load_conntrack(12, 1);
        let (mirror, dir, path) = start_mirror("examples-view", true);

        let mut out = Vec::new();
        let a = args(&["--socket", path.to_str().unwrap(), "--link", "va"]);
        let found = mirror_view::run(&a, &mut out).unwrap();
        let out = text(&out);
        assert_eq!(found.link, Some(v.a_index), "{out}");
        assert!(out.starts_with(&format!("va is link {}", v.a_index)), "{out}");
        let mut kernel = Vec::new();
        assert_eq!(found.routes, list_routes::run(&[], &mut kernel).unwrap());
        assert_eq!(found.routes, 101);
        // The kernel's lines (the mirror's tables keep their own order), then the summary.
        let mut ours: Vec<&str> = out.lines().skip(1).collect();
        let summary = ours.pop().unwrap();
        assert!(summary.starts_with("101 routes ("), "{summary}");
        let kernel = text(&kernel);
        let mut theirs: Vec<&str> = kernel.lines().collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
        assert_eq!(found.conntrack, Some(12), "{out}");
        // A link the mirror does not have.
        let none = args(&["--socket", path.to_str().unwrap(), "--link", "nope"]);
        assert_eq!(mirror_view::run(&none, &mut Vec::new()).unwrap().link, None);
        mirror.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        // Nobody listening: the view's typed socket error.
        let e = mirror_view::run(&a, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(e.downcast_ref::<nlkit::view::ViewError>(), Some(nlkit::view::ViewError::Socket(_))),
            "{e:?}"
        );
    }
}
