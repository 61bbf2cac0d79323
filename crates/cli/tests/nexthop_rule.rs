//! `nlkit nexthop …` and `nlkit rule …` against `ip nexthop …` / `ip rule …` for the same
//! kernel state: text line by line, and `-j` JSON as parsed values.

mod common;
use common::*;
use nlkit_testns::{ip, netns_test};

use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

/// `nlkit ARGS` and `ip ARGS` print the same lines and the same `-j` JSON.
fn same_as_ip(args: &[&str]) {
    let ours = ok(args);
    let theirs = ip(args);
    let (o, t): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    assert_eq!(o, t, "nlkit {} differs from ip", args.join(" "));
    let mut j = vec!["-j"];
    j.extend_from_slice(args);
    assert_eq!(
        json(&ok(&j)),
        json(&ip(&j)),
        "nlkit -j {} differs from ip",
        args.join(" ")
    );
}

/// va/vb up, addresses on va, lo up (blackhole nexthops need it).
fn base() {
    setup();
    for a in [
        &["link", "set", "lo", "up"][..],
        &["link", "set", "va", "up"],
        &["link", "set", "vb", "up"],
    ] {
        ip(a);
    }
}

/// Nexthops of every shape, made with `ip` (what is compared is the output).
const IP_NEXTHOPS: &[&[&str]] = &[
    &["nexthop", "add", "id", "1", "via", "10.0.0.2", "dev", "va"],
    &["nexthop", "add", "id", "2", "blackhole"],
    &["nexthop", "add", "id", "3", "dev", "va", "proto", "static"],
    &[
        "nexthop", "add", "id", "4", "via", "10.9.0.3", "dev", "vb", "onlink",
    ],
    &["nexthop", "add", "id", "5", "via", "fd00::2", "dev", "va"],
    &["nexthop", "add", "id", "6", "blackhole", "proto", "99"],
    &["nexthop", "add", "id", "10", "group", "1/4,3"],
    &[
        "nexthop",
        "add",
        "id",
        "11",
        "group",
        "1,4/4",
        "type",
        "resilient",
        "buckets",
        "8",
        "idle_timer",
        "60",
        "unbalanced_timer",
        "120",
    ],
    &["nexthop", "add", "id", "12", "group", "2", "type", "mpath"],
    &["-6", "nexthop", "add", "id", "7", "dev", "vb"],
    &["nexthop", "add", "id", "13", "group", "5/7,2"],
    &["nexthop", "add", "id", "20", "via", "10.0.0.9", "fdb"],
    &["nexthop", "add", "id", "21", "group", "20", "fdb"],
    &["route", "add", "10.15.0.0/16", "nhid", "10"],
    &["route", "add", "10.16.0.0/16", "nhid", "1"],
    &["-6", "route", "add", "fd05::/64", "nhid", "13"],
    &[
        "route",
        "add",
        "10.17.0.0/16",
        "nhid",
        "1",
        "table",
        "100",
        "metric",
        "7",
    ],
];

/// `nexthop show` selectors (and routes by id) compared with `ip`.
const NEXTHOP_SHOWS: &[&[&str]] = &[
    &["nexthop", "show"],
    &["nexthop"],
    &["nexthop", "list", "groups"],
    &["nexthop", "show", "dev", "va"],
    &["nexthop", "show", "dev", "vb"],
    // NHA_MASTER: no nexthop device is enslaved here, so both list nothing.
    &["nexthop", "show", "master", "va"],
    &["nexthop", "show", "id", "11"],
    &["nexthop", "get", "id", "10"],
    &["nexthop", "show", "protocol", "99"],
    &["-6", "nexthop", "show"],
    &["-4", "nexthop", "show"],
    &["route", "show"],
    &["route", "show", "10.16.0.0/16"],
    &["-6", "route", "show"],
    &["route", "show", "table", "100"],
];

/// Rules of every shape, made with `ip`.
#[rustfmt::skip]
const IP_RULES: &[&[&str]] = &[
    &["rule", "add", "from", "10.1.0.0/16", "to", "10.2.0.0/16", "table", "100", "prio", "100"],
    &["rule", "add", "iif", "va", "oif", "vb", "fwmark", "0x10/0xff", "lookup", "200", "pref", "200"],
    &["rule", "add", "uidrange", "0-0", "sport", "1000-2000", "dport", "80", "ipproto", "tcp", "table", "300"],
    &["rule", "add", "uidrange", "0-0", "sport", "1000", "dport", "80-90", "ipproto", "udp", "table", "301"],
    &["rule", "add", "tos", "0x10", "goto", "32000", "pref", "300"],
    &["rule", "add", "l3mdev", "pref", "400"],
    &["rule", "add", "table", "main", "suppress_prefixlength", "0", "suppress_ifgroup", "5", "pref", "500"],
    &["rule", "add", "unreachable", "pref", "600"],
    &["rule", "add", "prohibit", "pref", "601"],
    &["rule", "add", "blackhole", "pref", "602", "not", "from", "10.0.0.0/8"],
    &["rule", "add", "fwmark", "0x5", "table", "7", "protocol", "static", "pref", "700"],
    &["rule", "add", "to", "10.0.0.0/8", "table", "5", "pref", "14", "ipproto", "200"],
    &["rule", "add", "from", "10.0.0.0/8", "realms", "3/5", "table", "5", "pref", "13"],
    &["rule", "add", "from", "10.3.0.1", "realms", "5", "table", "5000", "pref", "12"],
    &["rule", "add", "not", "fwmark", "7", "table", "5", "pref", "11"],
    &["rule", "add", "iif", "nosuch", "table", "5", "pref", "10"],
    &["rule", "add", "iif", "lo", "table", "local", "pref", "9"],
    &["-6", "rule", "add", "from", "fd00::/64", "table", "100", "pref", "100"],
    &["-6", "rule", "add", "to", "fd01::1", "iif", "va", "table", "100", "pref", "101"],
    &["-6", "rule", "add", "fwmark", "1", "unreachable", "pref", "102"],
];

/// `rule show` selectors compared with `ip`.
#[rustfmt::skip]
const RULE_SHOWS: &[&[&str]] = &[
    &["rule", "show"],
    &["rule"],
    &["rule", "list", "table", "5"],
    &["rule", "show", "pref", "11"],
    &["rule", "show", "not"],
    &["rule", "show", "iif", "va"],
    &["rule", "show", "oif", "vb"],
    &["rule", "show", "from", "10.0.0.0/8"],
    &["rule", "show", "from", "10.1.0.0/16"],
    &["rule", "show", "from", "all"],
    &["rule", "show", "to", "10.0.0.0/8"],
    &["rule", "show", "10.2.0.0/16"],
    &["rule", "show", "tos", "0x10"],
    &["rule", "show", "fwmark", "0x10/0xff"],
    &["rule", "show", "fwmark", "7"],
    &["rule", "show", "l3mdev"],
    &["rule", "show", "uidrange", "0-0"],
    &["rule", "show", "ipproto", "udp"],
    &["rule", "show", "sport", "1000-2000"],
    &["rule", "show", "dport", "80"],
    &["rule", "show", "protocol", "static"],
    &["rule", "show", "table", "local"],
    &["-6", "rule", "show", "from", "fd00::/16"],
    &["-6", "rule", "show"],
    &["-4", "rule", "show"],
];

netns_test! {
    fn nexthop_show_matches_ip() {
        base();
        for a in IP_NEXTHOPS {
            ip(a);
        }
        for args in NEXTHOP_SHOWS {
            same_as_ip(args);
        }
        // `fdb`: iproute2 6.1 sends the filter but prints every nexthop it gets back; the kernel
        // filters, so compare with ip's FDB lines.
        let fdb: Vec<String> = ip(&["nexthop", "show"]).lines().filter(|l| l.ends_with("fdb")).map(str::to_owned).collect();
        let ours: Vec<String> = ok(&["nexthop", "show", "fdb"]).lines().map(str::to_owned).collect();
        assert_eq!(ours, fdb);
        // NHA_MASTER with a real master: the nexthops out of a bridge port.
        let br = nlkit_testns::run("ip", &["link", "add", "br0", "type", "bridge"]);
        if br.status.success() {
            ip(&["link", "set", "vb", "master", "br0"]);
            let listed = ok(&["nexthop", "show", "master", "br0"]);
            assert_eq!(listed.lines().count(), 2, "{listed}");
            same_as_ip(&["nexthop", "show", "master", "br0"]);
            ip(&["link", "set", "vb", "nomaster"]);
        } else {
            eprintln!("no bridge here: {}", String::from_utf8_lossy(&br.stderr));
        }
        // vb going down deletes its nexthops at once; its peer va loses carrier, which the
        // kernel applies later (link watch), deleting va's nexthops then: wait for that.
        ip(&["link", "set", "vb", "down"]);
        nlkit_testns::wait_link_settled("va");
        same_as_ip(&["nexthop", "show"]);
    }

    fn nexthop_add_replace_del_flush() {
        base();
        for a in IP_NEXTHOPS {
            ok(a);
        }
        // What nlkit made, `ip` shows as if ip had made it.
        let made_by_nlkit = ip(&["-d", "nexthop", "show"]);
        ip(&["nexthop", "flush"]);
        for a in IP_NEXTHOPS {
            ip(a);
        }
        assert_eq!(made_by_nlkit, ip(&["-d", "nexthop", "show"]));
        ok(&["nexthop", "replace", "id", "1", "via", "10.0.0.7", "dev", "va"]);
        assert!(ip(&["nexthop", "show", "id", "1"]).starts_with("id 1 via 10.0.0.7 dev va"));
        ok(&["nexthop", "replace", "id", "10", "group", "3"]);
        assert!(ip(&["route", "show", "10.15.0.0/16"]).starts_with("10.15.0.0/16 nhid 10 dev va"));
        // Errors come from the kernel's extended ack.
        let e = fails(&["nexthop", "add", "id", "1", "via", "10.0.0.8", "dev", "va"], 1);
        assert_eq!(e.trim(), "Error: File exists.");
        let e = fails(&["nexthop", "add", "id", "30", "group", "1", "type", "resilient"], 1);
        assert_eq!(e.trim(), "Error: Number of buckets not specified for nexthop group insertion.");
        // Deleting a nexthop deletes the routes that use it.
        ok(&["nexthop", "del", "id", "10"]);
        assert!(!ip(&["route", "show"]).contains("10.15.0.0"));
        assert_eq!(ok(&["nexthop", "flush", "dev", "vb"]).trim(), "Flushed 2 nexthops");
        let n = ip(&["nexthop", "show"]).lines().count();
        assert_eq!(ok(&["nexthop", "flush"]).trim(), format!("Flushed {n} nexthops"));
        assert_eq!(ok(&["nexthop", "flush"]).trim(), "Nothing to flush");
        assert_eq!(ok(&["-j", "nexthop", "show"]).trim(), "[]");
    }

    fn nexthop_bad_input_is_a_usage_error() {
        base();
        for args in [
            &["nexthop", "add", "id", "x", "blackhole"][..],
            &["nexthop", "add", "id", "1", "via"],
            &["nexthop", "add", "id", "1", "group", "1,0"],
            &["nexthop", "add", "id", "1", "group", "1", "type", "frob"],
            &["nexthop", "add", "id", "1", "via", "10.0.0.2", "dev", "nosuch"],
            &["nexthop", "add", "id", "1", "frob"],
            &["nexthop", "get"],
            &["nexthop", "del", "7"],
            &["nexthop", "show", "frob"],
            &["nexthop", "frob"],
        ] {
            fails(args, 2);
        }
    }

    fn rule_show_matches_ip() {
        base();
        for a in IP_RULES {
            ip(a);
        }
        for args in RULE_SHOWS {
            same_as_ip(args);
        }
    }

    fn rule_add_del_flush() {
        base();
        let shapes: &[&[&str]] = &[
            &["from", "10.1.0.0/16", "to", "10.2.0.0/16", "table", "100", "prio", "100"],
            &["iif", "va", "oif", "vb", "fwmark", "0x10/0xff", "lookup", "200", "pref", "200"],
            &["uidrange", "0-0", "sport", "1000-2000", "dport", "80", "ipproto", "tcp", "table", "300", "pref", "250"],
            &["tos", "0x10", "goto", "32000", "pref", "300"],
            &["l3mdev", "pref", "400"],
            &["table", "main", "suppress_prefixlength", "0", "suppress_ifgroup", "5", "pref", "500"],
            &["unreachable", "pref", "600"],
            &["type", "prohibit", "pref", "601"],
            &["blackhole", "pref", "602", "not", "from", "10.0.0.0/8"],
            &["fwmark", "0x5", "table", "7", "protocol", "static", "pref", "700"],
            &["from", "10.0.0.0/8", "realms", "3/5", "table", "5000", "pref", "13"],
        ];
        for s in shapes {
            let mut a = vec!["rule", "add"];
            a.extend_from_slice(s);
            ok(&a);
        }
        ok(&["-6", "rule", "add", "from", "fd00::/64", "table", "100", "pref", "100"]);
        ok(&["rule", "add", "from", "fd02::/64", "table", "100", "pref", "103"]);
        let made_by_nlkit = (ip(&["rule", "show"]), ip(&["-6", "rule", "show"]));
        ip(&["rule", "flush"]);
        ip(&["-6", "rule", "flush"]);
        ip(&["rule", "add", "table", "main", "pref", "32766"]);
        ip(&["rule", "add", "table", "default", "pref", "32767"]);
        ip(&["-6", "rule", "add", "table", "main", "pref", "32766"]);
        for s in shapes {
            let mut a = vec!["rule", "add"];
            a.extend_from_slice(s);
            ip(&a);
        }
        ip(&["-6", "rule", "add", "from", "fd00::/64", "table", "100", "pref", "100"]);
        ip(&["-6", "rule", "add", "from", "fd02::/64", "table", "100", "pref", "103"]);
        assert_eq!(made_by_nlkit, (ip(&["rule", "show"]), ip(&["-6", "rule", "show"])));

        let e = fails(&["rule", "add", "unreachable", "pref", "600"], 1);
        assert_eq!(e.trim(), "Error: File exists.");
        ok(&["rule", "del", "pref", "600"]);
        ok(&["rule", "delete", "from", "10.1.0.0/16", "table", "100"]);
        let e = fails(&["rule", "del", "pref", "600"], 1);
        assert!(e.starts_with("Error: "), "{e}");
        let left = ip(&["rule", "show"]);
        assert!(!left.contains("600:") && !left.contains("100:"), "{left}");
        ok(&["rule", "flush", "table", "5000"]);
        assert!(!ip(&["rule", "show"]).contains("realms"));
        ok(&["rule", "flush"]);
        assert_eq!(ip(&["rule", "show"]).trim(), "0:\tfrom all lookup local");
        ok(&["-6", "rule", "flush"]);
        assert_eq!(ip(&["-6", "rule", "show"]).trim(), "0:\tfrom all lookup local");
        for args in [
            &["rule", "add"][..],
            &["rule", "del"],
            &["rule", "add", "frob"],
            &["rule", "add", "pref", "x"],
            &["rule", "add", "sport", "1-x"],
            &["rule", "add", "uidrange", "5"],
            &["rule", "show", "frob"],
            &["rule", "frob"],
        ] {
            fails(args, 2);
        }
    }

    /// With `--mirror`, writes go through the mirror to its kernel, and `nexthop show|get|flush`
    /// and `rule show|flush` are answered from the mirror's tables: the same lines and JSON as
    /// `ip` for the same kernel state.
    fn mirror_answers_nexthops_and_rules() {
        base();
        let dir = std::env::temp_dir().join(format!("nlkit-nhr-{}", std::process::id()));
        let sock = dir.join("mirror.sock");
        let path = sock.to_str().unwrap().to_owned();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_nlkit"))
            .args(["--mirror-socket", &path, "mirror", "--conntrack", "false"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start nlkit mirror");
        // Stopped however the test ends (a mirror left running would hold the test's output).
        let _mirror = StopOnDrop(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !nlkit(&["--mirror-socket", &path, "link", "show"]).status.success() {
            assert!(std::time::Instant::now() < deadline, "the mirror did not come up");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let m = |args: &[&str]| {
            let mut a = vec!["--mirror-socket", path.as_str()];
            a.extend_from_slice(args);
            a.iter().map(|s| s.to_string()).collect::<Vec<String>>()
        };
        let run = |args: &[&str]| {
            let a = m(args);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            nlkit(&a)
        };
        // The mirror follows the kernel through events: compare until equal (bounded).
        let same = |args: &[&str]| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut j = vec!["-j"];
            j.extend_from_slice(args);
            loop {
                let (text, js) = (run(args), run(&j));
                assert!(text.status.success(), "{args:?}: {}", String::from_utf8_lossy(&text.stderr));
                let text = String::from_utf8_lossy(&text.stdout).into_owned();
                let js = String::from_utf8_lossy(&js.stdout).into_owned();
                if text == ip(args) && json(&js) == json(&ip(&j)) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "nlkit --mirror {args:?} differs from ip:\n{text}\n---\n{}",
                    ip(args)
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        };
        let out = run(&["nexthop", "add", "id", "1", "via", "10.0.0.2", "dev", "va"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = run(&["nexthop", "add", "id", "1", "blackhole"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "Error: File exists.");
        for a in &IP_NEXTHOPS[1..] {
            let out = run(a);
            assert!(out.status.success(), "{a:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        for a in IP_RULES {
            ip(a);
        }
        // Route listings from the mirror keep the mirror's own order; only nexthops and rules
        // are compared here.
        for args in NEXTHOP_SHOWS.iter().chain(RULE_SHOWS).filter(|a| !a.contains(&"route")) {
            same(args);
        }
        same(&["nexthop", "show", "id", "12"]);
        let out = run(&["nexthop", "get", "id", "99"]);
        assert_eq!(out.status.code(), Some(1));
        // Flushes: listed by the mirror, deleted through it.
        let out = run(&["nexthop", "flush", "dev", "vb"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        same(&["nexthop", "show"]);
        let out = run(&["rule", "flush", "table", "5"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        same(&["rule", "show"]);
        for args in [&["nexthop", "flush"][..], &["rule", "flush"], &["-6", "rule", "flush"]] {
            let out = run(args);
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert_eq!(ip(&["nexthop", "show"]), "");
        same(&["nexthop", "show"]);
        same(&["rule", "show"]);
        same(&["-6", "rule", "show"]);
        drop(_mirror);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A child process stopped (`SIGTERM`) and reaped when dropped.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.0.wait();
    }
}
