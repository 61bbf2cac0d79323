//! `nlkit ct …` against the kernel's conntrack table (and `conntrack` when installed).

mod common;
use common::*;
use nlkit_testns::netns_test;

const TUPLE: [&str; 10] = [
    "-p", "udp", "-s", "10.1.1.1", "-d", "10.2.2.2", "--sport", "1000", "--dport", "53",
];

fn with(extra: &[&'static str], base: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

netns_test! {
    fn ct_create_get_update_delete() {
        ok(&with(&["-t", "100", "-m", "7"], &with(&TUPLE, &["ct", "create"])));
        let got = ok(&with(&TUPLE, &["ct", "get"]));
        assert!(got.starts_with("udp      17 "), "{got}");
        assert!(got.contains("src=10.1.1.1 dst=10.2.2.2 sport=1000 dport=53 [UNREPLIED] src=10.2.2.2 dst=10.1.1.1 sport=53 dport=1000 mark=7"), "{got}");
        ok(&with(&["-m", "9", "-t", "200"], &with(&TUPLE, &["ct", "update"])));
        assert!(ok(&with(&TUPLE, &["ct", "get"])).contains("mark=9"));
        let j: serde_json::Value = serde_json::from_str(ok(&with(&TUPLE, &["-j", "ct", "get"])).trim()).unwrap();
        assert!(j.is_object());
        ok(&with(&TUPLE, &["ct", "delete"]));
        let e = fails(&with(&TUPLE, &["ct", "get"]), 1);
        assert!(e.contains("No such file or directory"), "{e}");
    }

    fn ct_list_count_flush_match_the_kernel() {
        nlkit_testns::load_conntrack(500, 3);
        ok(&with(&["-t", "100", "-m", "4"], &with(&TUPLE, &["ct", "create"])));
        assert_eq!(ok(&["ct", "count"]).trim(), "501");
        let all = ok(&["ct", "list"]);
        assert_eq!(all.lines().count(), 501);
        assert_eq!(ok(&["ct", "list", "-m", "4"]).lines().count(), 1);
        assert_eq!(ok(&["ct", "list", "-p", "udp", "--dport", "53", "-m", "3"]).lines().count(), 500);
        assert_eq!(ok(&["ct", "list", "-s", "10.1.1.1"]).lines().count(), 1);
        let j: serde_json::Value = serde_json::from_str(&ok(&["-j", "ct", "list"])).unwrap();
        assert_eq!(j.as_array().unwrap().len(), 501);
        // A shared dump over two threads lists the same entries (timeouts aside).
        let untimed = |s: &str| -> std::collections::BTreeSet<String> {
            s.lines().map(|l| {
                let mut w: Vec<&str> = l.split_whitespace().collect();
                w.remove(2);
                w.join(" ")
            }).collect()
        };
        assert_eq!(untimed(&ok(&["--threads", "2", "ct", "list"])), untimed(&all));
        let jt: serde_json::Value = serde_json::from_str(&ok(&["-j", "--threads", "2", "ct", "list"])).unwrap();
        assert_eq!(jt.as_array().unwrap().len(), 501);
        // conntrack(8), when installed, sees the same entries.
        if nlkit_testns::have_command("conntrack") {
            let out = nlkit_testns::run("conntrack", &["-L"]);
            let theirs = String::from_utf8_lossy(&out.stdout);
            let norm = |s: &str| -> std::collections::BTreeSet<String> {
                // Timeouts tick between the two listings: compare without them.
                s.lines().map(|l| {
                    let mut w: Vec<&str> = l.split_whitespace().collect();
                    if w.len() > 2 { w.remove(2); }
                    w.join(" ")
                }).collect()
            };
            assert_eq!(norm(&all), norm(&theirs));
        } else {
            eprintln!("conntrack(8) not installed: skipping the comparison");
        }
        // Delete everything that matches (streamed), then flush by mark, then flush all.
        ok(&["ct", "delete", "-m", "4"]);
        assert_eq!(ok(&["ct", "count"]).trim(), "500");
        ok(&["ct", "flush", "-m", "3"]);
        assert_eq!(ok(&["ct", "count"]).trim(), "0");
        nlkit_testns::load_conntrack(10, 1);
        ok(&["ct", "flush"]);
        assert_eq!(ok(&["ct", "list"]).lines().count(), 0);
        let stats = ok(&["ct", "stats"]);
        assert!(stats.starts_with("cpu=0"), "{stats}");
    }

    /// `ct events` and `monitor` print events as they happen. Events are caused until both
    /// have printed one (they may subscribe late under load), for at most 20 s.
    fn events_and_monitor() {
        setup();
        let spawn = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_nlkit"))
                .args(args)
                .env("NLKIT_EVENTS_MAX", "1")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut ev = spawn(&["ct", "events"]);
        let mut mon = spawn(&["monitor", "route"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut i = 0u16;
        while ev.try_wait().unwrap().is_none() || mon.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = ev.kill();
                let _ = mon.kill();
                panic!("no event reached the monitors in 20 s");
            }
            let sport = (2000 + i).to_string();
            ok(&["ct", "create", "-p", "udp", "-s", "10.1.1.1", "-d", "10.2.2.2", "--sport", &sport, "--dport", "53", "-t", "50"]);
            let dst = format!("10.70.{i}.0/24");
            ok(&["route", "add", &dst, "via", "10.0.0.2"]);
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let ev = String::from_utf8_lossy(&ev.wait_with_output().unwrap().stdout).into_owned();
        let mon = String::from_utf8_lossy(&mon.wait_with_output().unwrap().stdout).into_owned();
        assert!(ev.starts_with("    [NEW] udp      17 50 src=10.1.1.1 dst=10.2.2.2 sport=2"), "{ev}");
        assert!(mon.starts_with("10.70.") && mon.trim_end().ends_with(".0/24 via 10.0.0.2 dev va"), "{mon}");
    }

}
