//! `nlkit --mirror …` show commands read through the mirror's shared memory (the view,
//! `nlkit-view`) and print exactly what they print over the mirror's socket, and what they
//! print from the kernel.
//!
//! Each command runs three times against one mirror running in the test's namespace:
//! with `NLKIT_MIRROR_VIEW=1` (the view must map, else the command fails), with
//! `NLKIT_MIRROR_NO_VIEW=1` (the socket protocol only), and without `--mirror` (the kernel).
//! View and socket outputs must be identical, byte for byte and in the same order; both must
//! list what the kernel lists (as sets of lines; conntrack timeouts, which count down in the
//! kernel and are the mirror's last report, and use counts set aside).

mod common;
use common::*;
use nlkit_testns::{ip, netns_test};

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A mirror, once a command reads through its view (the view must map).
fn start(tag: &str) -> MirrorProcess {
    start_with(tag, &[])
}

/// [`start`] with `extra` arguments to `nlkit mirror`.
fn start_with(tag: &str, extra: &[&str]) -> MirrorProcess {
    MirrorProcess::start_with(tag, extra, Some("NLKIT_MIRROR_VIEW"))
}

/// Runs `nlkit --mirror-socket SOCKET args…` with `env`=1.
fn run(m: &MirrorProcess, env: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nlkit"))
        .args(["--mirror-socket", m.path()])
        .args(args)
        .env(env, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run nlkit")
}

/// Standard output and error of a successful run.
fn text(o: Output, what: &str, args: &[&str]) -> (String, String) {
    assert!(
        o.status.success(),
        "{what}: nlkit {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

/// A conntrack line without what the kernel reports anew each time: the timeout (the third
/// field of `ct list` text) and the use count (a `ct get` holds a reference while it answers).
fn without_timeout(l: &str) -> String {
    let mut f: Vec<&str> = l.split_whitespace().collect();
    if f.len() > 3 && f[2].parse::<u32>().is_ok() {
        f.remove(2);
    }
    f.retain(|w| !w.starts_with("use="));
    f.join(" ")
}

/// Waits (bounded) until the view's output of `args` equals the socket's exactly and lists
/// what the kernel lists; `ct`: lines are compared without their timeouts.
fn same_three_ways(m: &MirrorProcess, args: &[&str], ct: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (view, view_err) = text(run(m, "NLKIT_MIRROR_VIEW", args), "view", args);
        let (sock, sock_err) = text(run(m, "NLKIT_MIRROR_NO_VIEW", args), "socket", args);
        let kernel = ok(args);
        let norm = |s: &str| -> std::collections::BTreeSet<String> {
            match serde_json::from_str::<Vec<serde_json::Value>>(s) {
                // JSON: the array's elements as a set, conntrack's volatile fields set aside.
                Ok(items) => items
                    .into_iter()
                    .map(|mut v| {
                        if let (true, Some(o)) = (ct, v.as_object_mut()) {
                            o.remove("timeout");
                            o.remove("use");
                        }
                        v.to_string()
                    })
                    .collect(),
                Err(_) if ct => s.lines().map(without_timeout).collect(),
                Err(_) => lines(s),
            }
        };
        let same = view == sock && view_err == sock_err && norm(&view) == norm(&kernel);
        if same {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}:\nthrough the view:\n{view}{view_err}\nover the socket:\n{sock}{sock_err}\n\
             from the kernel:\n{kernel}",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

netns_test! {
    /// Every show command the view answers: link, addr, route (tables, families, filters,
    /// JSON), neigh, rule, nexthop.
    fn rtnl_shows_are_the_same_through_the_view() {
        setup();
        ip(&["rule", "add", "pref", "100", "from", "10.3.0.0/16", "table", "1000"]);
        ip(&["-6", "rule", "add", "pref", "200", "table", "1000"]);
        ip(&["nexthop", "add", "id", "10", "via", "10.0.0.2", "dev", "va"]);
        ip(&["nexthop", "add", "id", "11", "via", "10.0.0.3", "dev", "va"]);
        ip(&["nexthop", "add", "id", "20", "group", "10/11"]);
        ip(&["route", "add", "10.44.0.0/16", "nhid", "20"]);
        let m = start("rtnl");
        for args in [
            &["link", "show"][..],
            &["link", "show", "va"],
            &["-d", "link", "show"],
            &["-j", "link", "show"],
            &["addr", "show"],
            &["addr", "show", "dev", "va"],
            &["-6", "addr", "show"],
            &["route", "show"],
            &["route", "show", "table", "all"],
            &["route", "show", "table", "1000"],
            &["route", "show", "dev", "va"],
            &["-6", "route", "show"],
            &["-j", "route", "show", "table", "all"],
            &["neigh", "show"],
            &["neigh", "show", "dev", "va"],
            &["rule", "show"],
            &["-6", "rule", "show"],
            &["nexthop", "show"],
            &["nexthop", "show", "groups"],
            &["-4", "nexthop", "show"],
            &["nexthop", "show", "dev", "va"],
            &["nexthop", "show", "id", "10"],
            &["nexthop", "get", "id", "20"],
            &["-j", "nexthop", "get", "id", "11"],
        ] {
            same_three_ways(&m, args, false);
        }
        // An id nobody has: the view finds nothing and the socket answers with the mirror's
        // error, as without the view.
        let missing = ["nexthop", "get", "id", "99"];
        let (v, s) = (run(&m, "NLKIT_MIRROR_VIEW", &missing), run(&m, "NLKIT_MIRROR_NO_VIEW", &missing));
        assert!(!v.status.success());
        assert_eq!((v.status.code(), v.stderr), (s.status.code(), s.stderr));
    }
}

netns_test! {
    /// Conntrack: list (all, by source address through the index, by destination, by mark,
    /// by zone, by family), get by tuple, count.
    fn conntrack_is_the_same_through_the_view() {
        nlkit_testns::load_conntrack(30, 7);
        let m = start("ct");
        let deadline = Instant::now() + Duration::from_secs(15);
        while text(run(&m, "NLKIT_MIRROR_VIEW", &["ct", "count"]), "view", &["ct", "count"]).0.trim() != "30" {
            assert!(Instant::now() < deadline, "the mirror never held the 30 entries");
            std::thread::sleep(Duration::from_millis(100));
        }
        // One entry's tuple, from the kernel's listing.
        let first = ok(&["ct", "list"]);
        let line = first.lines().next().expect("an entry");
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {line}"))
                .to_owned()
        };
        let (src, dst, sport, dport) = (field("src="), field("dst="), field("sport="), field("dport="));
        for args in [
            &["ct", "list"][..],
            &["ct", "list", "-s", &src],
            &["ct", "list", "-s", "10.99.99.99"],
            &["ct", "list", "-d", &dst],
            &["ct", "list", "-s", &src, "-d", &dst, "-p", "udp", "--dport", &dport],
            &["ct", "list", "--mark", "7"],
            &["ct", "list", "--mark", "8"],
            &["ct", "list", "--zone", "0"],
            &["ct", "list", "-f", "ipv4"],
            &["ct", "list", "-f", "ipv6"],
            &["-j", "ct", "list", "-s", &src],
            &["ct", "get", "-p", "udp", "-s", &src, "-d", &dst, "--sport", &sport, "--dport", &dport],
            &["ct", "count"],
        ] {
            same_three_ways(&m, args, true);
        }
        // A tuple nobody has: the view finds nothing, the socket answers with the mirror's
        // error, as without the view.
        let missing = ["ct", "get", "-p", "udp", "-s", "10.99.0.1", "-d", "10.99.0.2", "--sport", "1", "--dport", "2"];
        let (v, s) = (run(&m, "NLKIT_MIRROR_VIEW", &missing), run(&m, "NLKIT_MIRROR_NO_VIEW", &missing));
        assert!(!v.status.success());
        assert_eq!((v.status.code(), v.stderr), (s.status.code(), s.stderr));
    }
}

netns_test! {
    /// The library under the command line: a conntrack entry got through the view (by
    /// either tuple) is the message the mirror's socket serves, byte for byte past the
    /// header the socket stamps; a change the mirror applies shows up in the mapped feed
    /// (futex wait) and in the mapped table.
    fn the_view_serves_the_sockets_bytes_and_follows_the_feed() {
        use nlkit_view::schema::{FeedKind, FeedTag};
        use nlkit_view::{MirrorView, TableId};
        let v = nlkit_testns::veth_pair("va", "vb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_conntrack(10, 5);
        let m = start("lib");
        let view = MirrorView::open(&m.socket).expect("map the mirror's region");
        let deadline = Instant::now() + Duration::from_secs(15);
        while view.ct_count().unwrap() < 10 {
            assert!(Instant::now() < deadline, "the mirror never held the entries");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The test's own connection to the mirror, to compare with what the view reads.
        #[allow(clippy::disallowed_methods)]
        let mut sock = nlkit_socket::Socket::connect_unix(&m.socket, nlkit_socket::Protocol::Netfilter).unwrap();
        let mut n = 0;
        view.ct_walk(&nlkit_view::CtFilter::default(), |found, walked| {
            for (t, dir) in [(found.original, 0), (found.reply, 1)] {
                let mut got = Vec::new();
                let f = view.ct_get(&t, &mut got).unwrap().expect("found by its tuple");
                assert_eq!(f.dir, dir);
                assert_eq!(got, walked);
                let tuple = nlkit_conntrack::Tuple::with_ports(t.proto, t.src, t.src_port, t.dst, t.dst_port);
                let mut req = nlkit_wire::MessageBuilder::new();
                nlkit_conntrack::request::get(&mut req, 0, &tuple, None).unwrap();
                let reply = sock.transact(&mut req).unwrap();
                let served = reply.messages().next().unwrap().unwrap();
                // The socket stamps its own sequence number, port id and flags.
                assert_eq!(&served.bytes()[..6], &got[..6], "length and type");
                assert_eq!(&served.bytes()[16..], &got[16..], "the entry, byte for byte");
            }
            n += 1;
            true
        })
        .unwrap();
        assert_eq!(n, 10);

        // The feed: follow from now, make a change, wait on the mapping's futex for it.
        let mut feed = view.follow_now().expect("the mirror publishes its feed");
        ip(&["route", "add", "10.55.0.0/16", "via", "10.0.0.2"]);
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        let tag = loop {
            assert!(Instant::now() < deadline, "no feed entry for the new route");
            buf.clear();
            let Some(c) = feed.next_wait(&mut buf, Some(Duration::from_secs(1))).unwrap() else {
                continue;
            };
            let Some(tag) = c.tag else { continue };
            let key = nlkit_wire::Messages::new(&buf)
                .next()
                .and_then(|m| nlkit_view::RouteKey::from_msg(&m.ok()?));
            if tag.table == TableId::Routes4
                && key.is_some_and(|k| k.dst == "10.55.0.0".parse::<std::net::IpAddr>().unwrap())
            {
                break tag;
            }
        };
        assert!(matches!(tag, FeedTag { kind: FeedKind::New, .. }), "{tag:?}");
        let m4 = nlkit_wire::Messages::new(&buf).next().unwrap().unwrap();
        let key = nlkit_view::RouteKey::from_msg(&m4).unwrap();
        let mut out = Vec::new();
        assert!(view.route(&key, &mut out).unwrap(), "the route is in the mapped table");
        assert_eq!(nlkit_route::RouteView::parse(&nlkit_wire::Messages::new(&out).next().unwrap().unwrap()).unwrap().dst_len(), 16);
        let mut lo = Vec::new();
        assert!(view.link_by_name("va", &mut lo).unwrap());
    }
}

netns_test! {
    /// A mirror that does not mirror conntrack: its region still holds an (empty) conntrack
    /// table, but `ct list|get|count` give the mirror's error, as over the socket.
    fn a_mirror_without_conntrack_refuses_ct_as_before() {
        nlkit_testns::load_conntrack(3, 1);
        let m = start_with("noct", &["--conntrack", "false"]);
        for args in [
            &["ct", "list"][..],
            &["ct", "list", "-s", "10.200.0.1"],
            &["ct", "count"],
            &["ct", "get", "-p", "udp", "-s", "10.200.0.1", "-d", "10.201.0.1", "--sport", "1024", "--dport", "53"],
        ] {
            let (v, s) = (run(&m, "NLKIT_MIRROR_VIEW", args), run(&m, "NLKIT_MIRROR_NO_VIEW", args));
            assert!(!s.status.success(), "{}: the socket refuses", args.join(" "));
            assert_eq!(
                (v.status.code(), &v.stdout, &v.stderr),
                (s.status.code(), &s.stdout, &s.stderr),
                "{}",
                args.join(" ")
            );
        }
    }
}

netns_test! {
    /// Listings through the view are walked in one thread and formatted on others in batches
    /// of about 1,200 routes: with many routes (many batches, some with nothing a filter
    /// keeps, both families), text and JSON are still the socket's bytes in the socket's order.
    fn many_routes_keep_their_order_through_the_view() {
        setup();
        let mut batch = String::new();
        for i in 0..6000u32 {
            let table = if i % 7 == 0 { " table 1000" } else { "" };
            batch.push_str(&format!(
                "route add 10.{}.{}.0/24 via 10.0.0.2 metric {}{table}\n",
                100 + i / 256,
                i % 256,
                i % 5
            ));
        }
        for i in 0..1500u32 {
            batch.push_str(&format!("route add fd00:{i:x}::/64 dev va\n"));
        }
        let file = std::env::temp_dir().join(format!("nlkit-view-routes-{}", std::process::id()));
        std::fs::write(&file, batch).unwrap();
        ip(&["-batch", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
        let m = start("many");
        for args in [
            &["route", "show"][..],
            &["route", "show", "table", "all"],
            &["route", "show", "table", "1000"],
            &["-j", "route", "show", "table", "all"],
            &["-j", "route", "show", "table", "1000"],
            &["-6", "route", "show"],
        ] {
            same_three_ways(&m, args, false);
        }
    }
}

netns_test! {
    /// `ct list` through the view with many entries (many batches of the ordered listing):
    /// the socket's bytes in the socket's order, in text and JSON, through the address index
    /// too, and with a filter that keeps nothing.
    fn many_conntrack_entries_keep_their_order_through_the_view() {
        nlkit_testns::load_conntrack(2000, 7);
        let m = start("manyct");
        let deadline = Instant::now() + Duration::from_secs(15);
        while text(run(&m, "NLKIT_MIRROR_VIEW", &["ct", "count"]), "view", &["ct", "count"]).0.trim() != "2000" {
            assert!(Instant::now() < deadline, "the mirror never held the 2000 entries");
            std::thread::sleep(Duration::from_millis(100));
        }
        for args in [
            &["ct", "list"][..],
            &["-j", "ct", "list"],
            &["ct", "list", "-s", "10.200.0.1"],
            &["-j", "ct", "list", "-s", "10.200.0.1"],
            &["ct", "list", "--mark", "8"],
        ] {
            same_three_ways(&m, args, true);
        }
    }
}
