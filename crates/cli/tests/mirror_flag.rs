//! `--mirror` / `--mirror-socket PATH` on every subcommand (issue #14): reads are answered by
//! the mirror, writes go through it to the kernel it follows, and what the mirror cannot answer
//! is refused — never answered from the caller's own kernel.
//!
//! The mirror runs in the test's namespace; the command line runs in *another*, fresh network
//! namespace (`unshare -n`; the mirror's socket is a path, reachable from any network
//! namespace). So a listing that shows the test's links came from the mirror, and after every
//! command the caller's own namespace is checked to be untouched.

mod common;
use common::*;
use nlkit_testns::{ip, netns_test};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one command run in a fresh network namespace did, and that namespace's state after it.
struct Far {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The caller's own namespace after the command: links, addresses, routes, conntrack count.
    caller: String,
}

/// Marks where the command's standard output ends and the caller's state begins.
const CALLER: &str = "\n--- the caller's namespace ---\n";

/// Runs `nlkit --mirror-socket SOCKET args…` in a fresh network namespace.
fn far(socket: &Path, args: &[&str]) -> Far {
    // "$0" is nlkit; after the command, the state of its namespace is printed.
    let script = r#""$0" --mirror-socket "$S" "$@"; rc=$?
        printf "$MARK"
        { ip -o link show; ip -o addr show; ip route show table all;
          ip -6 route show table all; "$0" ct count; } 2>&1
        exit $rc"#;
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .arg(env!("CARGO_BIN_EXE_nlkit"))
        .args(args)
        .env("S", socket)
        .env("MARK", CALLER)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare -n nlkit");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (cmd_out, caller) = stdout
        .rsplit_once(CALLER)
        .unwrap_or_else(|| panic!("no caller state in {stdout:?}"));
    Far {
        code: out.status.code(),
        stdout: cmd_out.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        caller: caller.to_owned(),
    }
}

/// The state of a fresh network namespace: only `lo` (down), no address, no route, no
/// conntrack entry.
fn pristine(caller: &str) -> bool {
    let lines: Vec<&str> = caller.lines().collect();
    lines.len() == 2 && lines[0].starts_with("1: lo: ") && lines[1] == "0"
}

/// Runs `args` on the mirror from another namespace, expects success, checks the caller's
/// namespace is untouched, returns stdout.
fn via_mirror(m: &MirrorProcess, args: &[&str]) -> String {
    let r = far(&m.socket, args);
    assert_eq!(
        r.code,
        Some(0),
        "nlkit --mirror-socket {} {} failed: {}{}",
        m.path(),
        args.join(" "),
        r.stdout,
        r.stderr
    );
    assert!(
        pristine(&r.caller),
        "{} changed the caller's namespace:\n{}",
        args.join(" "),
        r.caller
    );
    r.stdout
}

/// Runs `args` on the mirror from another namespace, expects exit `code`, returns stderr.
fn via_mirror_fails(m: &MirrorProcess, args: &[&str], code: i32) -> String {
    let r = far(&m.socket, args);
    assert_eq!(
        r.code,
        Some(code),
        "nlkit --mirror {} should exit {code}: {}{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    assert!(pristine(&r.caller), "{}", r.caller);
    r.stderr
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the mirror's answer to `args` (from another namespace) equals the kernel's
/// (`nlkit args` here), as sets of lines.
fn same_as_kernel(m: &MirrorProcess, args: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (kernel, mirrored) = (ok(args), via_mirror(m, args));
        if lines(&kernel) == lines(&mirrored) {
            assert!(!mirrored.is_empty(), "{}: nothing listed", args.join(" "));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: the mirror shows\n{mirrored}\nthe kernel\n{kernel}",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const TUPLE: [&str; 10] = [
    "-p", "udp", "-s", "10.1.1.1", "-d", "10.2.2.2", "--sport", "1000", "--dport", "53",
];

/// `ct ACTION TUPLE EXTRA…`.
fn ct(action: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    ["ct", action]
        .into_iter()
        .chain(TUPLE)
        .chain(extra.iter().copied())
        .collect()
}

netns_test! {
    /// link/addr/route/neigh: every show reads the mirror, every write changes the mirror's
    /// namespace (and not the caller's), route get is answered there.
    fn rtnl_commands_go_to_the_mirror() {
        setup();
        let m = MirrorProcess::start("rtnl");
        for args in [
            &["link", "show"][..],
            &["addr", "show"],
            &["route", "show"],
            &["route", "show", "table", "all"],
            &["-6", "route", "show"],
            &["--threads", "2", "route", "show", "table", "all"],
            &["neigh", "show"],
            &["route", "get", "10.9.1.1"],
        ] {
            same_as_kernel(&m, args);
        }
        // link add / set / del.
        via_mirror(&m, &["link", "add", "vc", "type", "veth", "peer", "name", "vd"]);
        assert!(ip(&["-o", "link", "show"]).contains(": vc@vd:"));
        // The mirror follows the kernel by events: wait until it knows vc before naming it.
        eventually("the mirror lists vc", || far(&m.socket, &["link", "show", "vc"]).code == Some(0));
        via_mirror(&m, &["link", "set", "vc", "mtu", "1400"]);
        via_mirror(&m, &["link", "set", "vc", "up"]);
        let vc = ip(&["link", "show", "vc"]);
        assert!(vc.contains("mtu 1400") && vc.contains(",UP"), "{vc}");
        eventually("the mirror lists vc", || via_mirror(&m, &["link", "show", "vc"]).contains("mtu 1400"));
        // addr add / replace / del.
        via_mirror(&m, &["addr", "add", "10.5.0.1/24", "dev", "vc"]);
        assert!(ip(&["addr", "show", "dev", "vc"]).contains("inet 10.5.0.1/24"));
        via_mirror(&m, &["addr", "replace", "10.5.0.1/24", "dev", "vc", "metric", "5"]);
        assert!(ip(&["addr", "show", "dev", "vc"]).contains("inet 10.5.0.1/24 metric 5"));
        eventually("the mirror lists 10.5.0.1", || via_mirror(&m, &["addr", "show", "dev", "vc"]).contains("10.5.0.1/24"));
        via_mirror(&m, &["addr", "del", "10.5.0.1/24", "dev", "vc"]);
        assert!(!ip(&["addr", "show", "dev", "vc"]).contains("10.5.0.1"));
        // route add / replace / append / get / del.
        via_mirror(&m, &["route", "add", "10.77.0.0/16", "via", "10.0.0.2", "metric", "7"]);
        assert!(ip(&["route", "show"]).contains("10.77.0.0/16 via 10.0.0.2 dev va metric 7"));
        via_mirror(&m, &["route", "replace", "10.77.0.0/16", "via", "10.0.0.3", "metric", "7"]);
        assert!(ip(&["route", "show"]).contains("10.77.0.0/16 via 10.0.0.3 dev va metric 7"));
        via_mirror(&m, &["route", "append", "10.78.0.0/16", "via", "10.0.0.2", "table", "1000"]);
        assert!(ip(&["route", "show", "table", "1000"]).contains("10.78.0.0/16 via 10.0.0.2 dev va"));
        eventually("the mirror lists 10.77.0.0/16", || via_mirror(&m, &["route", "show"]).contains("10.77.0.0/16 via 10.0.0.3"));
        let got = via_mirror(&m, &["route", "get", "10.77.1.1"]);
        assert!(got.contains("10.77.1.1 via 10.0.0.3 dev va"), "{got}");
        via_mirror(&m, &["route", "del", "10.77.0.0/16", "metric", "7"]);
        assert!(!ip(&["route", "show"]).contains("10.77.0.0/16"));
        // neigh add / replace / del.
        via_mirror(&m, &["neigh", "add", "10.0.0.9", "lladdr", "02:00:00:00:00:09", "dev", "va"]);
        assert!(ip(&["neigh", "show"]).contains("10.0.0.9 dev va lladdr 02:00:00:00:00:09 PERMANENT"));
        via_mirror(&m, &["neigh", "replace", "10.0.0.9", "lladdr", "02:00:00:00:00:0a", "dev", "va"]);
        assert!(ip(&["neigh", "show"]).contains("10.0.0.9 dev va lladdr 02:00:00:00:00:0a PERMANENT"));
        eventually("the mirror lists 10.0.0.9", || via_mirror(&m, &["neigh", "show"]).contains("10.0.0.9 dev va lladdr 02:00:00:00:00:0a"));
        via_mirror(&m, &["neigh", "del", "10.0.0.9", "dev", "va"]);
        assert!(!ip(&["neigh", "show"]).contains("10.0.0.9 dev va lladdr"));
        // Kernel errors come back through the mirror with their text and exit 1.
        let e = via_mirror_fails(&m, &["route", "add", "10.9.0.0/16", "via", "10.0.0.2", "metric", "10"], 1);
        assert_eq!(e.trim(), "Error: File exists.");
        via_mirror(&m, &["link", "del", "vc"]);
        assert!(!ip(&["-o", "link", "show"]).contains("vd"));
        // monitor follows the mirror's change feed (from another namespace): the route
        // toggled here is printed as `ip monitor` prints it.
        let mut mon = Command::new("unshare")
            .args(["-n", env!("CARGO_BIN_EXE_nlkit"), "--mirror-socket"])
            .arg(&m.socket)
            .args(["monitor", "route"])
            .env("NLKIT_EVENTS_MAX", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start nlkit --mirror monitor");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut add = true;
        while mon.try_wait().expect("monitor status").is_none() {
            assert!(Instant::now() < deadline, "monitor --mirror printed no event");
            let verb = if add { "add" } else { "del" };
            ip(&["route", verb, "10.66.0.0/16", "dev", "va"]);
            add = !add;
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = mon.wait_with_output().expect("monitor output");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("10.66.0.0/16 dev va"), "{text}");
        if !add {
            ip(&["route", "del", "10.66.0.0/16", "dev", "va"]);
        }
        // Without the mirror nothing answers: no silent fallback to the caller's kernel.
        let mut m = m;
        m.stop();
        for args in [&["link", "show"][..], &["route", "add", "10.79.0.0/16", "dev", "va"], &["route", "get", "10.9.1.1"]] {
            let e = via_mirror_fails(&m, args, 1);
            assert!(e.contains("cannot reach the mirror at"), "{e}");
        }
    }

    /// ct: list/get/count answered by the mirror; create/update/delete/flush change the
    /// mirror's conntrack table; stats and events refused.
    fn ct_commands_go_to_the_mirror() {
        nlkit_testns::load_conntrack(50, 3);
        let m = MirrorProcess::start("ct");
        eventually("the mirror counts 50", || via_mirror(&m, &["ct", "count"]).trim() == "50");
        via_mirror(&m, &ct("create", &["-t", "100", "-m", "7"]));
        assert!(ok(&ct("get", &[])).contains("mark=7"));
        assert_eq!(ok(&["ct", "count"]).trim(), "51");
        eventually("the mirror gets the entry", || far(&m.socket, &ct("get", &[])).stdout.contains("mark=7"));
        via_mirror(&m, &ct("update", &["-m", "9"]));
        assert!(ok(&ct("get", &[])).contains("mark=9"));
        eventually("the mirror counts 51", || via_mirror(&m, &["ct", "count"]).trim() == "51");
        assert_eq!(via_mirror(&m, &["ct", "list"]).lines().count(), 51);
        assert_eq!(via_mirror(&m, &["--threads", "2", "ct", "list", "-m", "3"]).lines().count(), 50);
        // delete by tuple, then the same again: nothing deleted is exit 1, as conntrack(8).
        let r = far(&m.socket, &ct("delete", &[]));
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stderr.contains("nlkit (conntrack): 1 flow entries have been deleted."), "{}", r.stderr);
        let e = fails(&ct("get", &[]), 1);
        assert!(e.contains("No such file or directory"), "{e}");
        let e = via_mirror_fails(&m, &ct("delete", &[]), 1);
        assert_eq!(e.trim(), "nlkit (conntrack): 0 flow entries have been deleted.");
        // delete by filter: a mirror dump, deletes through the mirror.
        let r = far(&m.socket, &["ct", "delete", "-m", "3"]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stderr.contains("50 flow entries have been deleted."), "{}", r.stderr);
        assert_eq!(ok(&["ct", "count"]).trim(), "0");
        eventually("the mirror counts 0", || via_mirror(&m, &["ct", "count"]).trim() == "0");
        let e = via_mirror_fails(&m, &["ct", "delete", "-m", "3"], 1);
        assert!(e.contains("0 flow entries have been deleted."), "{e}");
        // flush: everything, by mark, by zone.
        nlkit_testns::load_conntrack(20, 4);
        via_mirror(&m, &["ct", "flush", "-m", "5"]);
        assert_eq!(ok(&["ct", "count"]).trim(), "20");
        via_mirror(&m, &["ct", "flush", "-m", "4"]);
        assert_eq!(ok(&["ct", "count"]).trim(), "0");
        ok(&ct("create", &["-t", "100", "-w", "3"]));
        eventually("the mirror counts 1", || via_mirror(&m, &["ct", "count"]).trim() == "1");
        via_mirror(&m, &["ct", "flush", "-w", "3"]);
        assert_eq!(ok(&["ct", "count"]).trim(), "0");
        nlkit_testns::load_conntrack(10, 1);
        via_mirror(&m, &["ct", "flush"]);
        assert_eq!(ok(&["ct", "count"]).trim(), "0");
        // What only the kernel has is refused, exit 2.
        let e = via_mirror_fails(&m, &["ct", "stats"], 2);
        assert!(e.contains("ct stats does not work with --mirror: per-CPU conntrack statistics"), "{e}");
        let e = via_mirror_fails(&m, &["ct", "events"], 2);
        assert!(e.contains("ct events does not work with --mirror: use `nlkit --mirror monitor ct`"), "{e}");
        // Without the mirror nothing answers.
        let mut m = m;
        m.stop();
        for args in [&["ct", "count"][..], &["ct", "flush"], &["ct", "list"]] {
            let e = via_mirror_fails(&m, args, 1);
            assert!(e.contains("cannot reach the mirror at"), "{e}");
        }
    }

    /// `ct delete` of an entry that does not exist exits 1 with conntrack(8)'s text.
    fn ct_delete_of_nothing_fails_like_conntrack() {
        let e = fails(&ct("delete", &[]), 1);
        assert_eq!(e.trim(), "nlkit (conntrack): 0 flow entries have been deleted.");
        let e = fails(&["ct", "delete", "-m", "77"], 1);
        assert_eq!(e.trim(), "nlkit (conntrack): 0 flow entries have been deleted.");
        if nlkit_testns::have_command("conntrack") {
            let out = nlkit_testns::run("conntrack", &["-D", "-p", "udp", "-s", "10.1.1.1", "-d", "10.2.2.2", "--sport", "1000", "--dport", "53"]);
            assert_eq!(out.status.code(), Some(1));
            let theirs = String::from_utf8_lossy(&out.stderr);
            assert!(theirs.trim().ends_with("(conntrack-tools): 0 flow entries have been deleted."), "{theirs}");
        }
        ok(&ct("create", &["-t", "100"]));
        let out = nlkit(&ct("delete", &[]));
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "nlkit (conntrack): 1 flow entries have been deleted.");
    }

    /// `nlkit --mirror route show`, the README's example: `--mirror` takes no value, the
    /// default socket path is used. Run in a private mount namespace with its own /run (the
    /// default path as root), the mirror started at its default path too.
    fn mirror_flag_takes_no_value() {
        setup();
        let script = r#"mount -t tmpfs tmpfs /run && export XDG_RUNTIME_DIR=/run/user-test &&
            mkdir -m 700 /run/user-test &&
            { "$0" mirror >/dev/null 2>&1 & pid=$!; } &&
            i=0; until "$0" --mirror link show >/dev/null 2>&1; do
                i=$((i+1)); [ $i -lt 300 ] || { echo "no mirror" >&2; kill $pid; exit 9; }
                sleep 0.1
            done
            "$0" --mirror route show; rc=$?
            kill -TERM $pid; wait $pid; exit $rc"#;
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c", script, env!("CARGO_BIN_EXE_nlkit")])
            .stdin(Stdio::null())
            .output()
            .expect("run unshare -m");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(lines(&String::from_utf8_lossy(&out.stdout)), lines(&ok(&["route", "show"])));
        // A value after --mirror is not taken as a path: it is the next word.
        let e = fails(&["--mirror", "/some/path", "route", "show"], 2);
        assert!(e.contains("unrecognized subcommand '/some/path'"), "{e}");
        // --mirror does not apply to the commands that run their own mirror.
        let e = fails(&["--mirror", "demo"], 2);
        assert!(e.contains("--mirror does not apply to `nlkit demo`"), "{e}");
        let e = fails(&["--mirror", "mirror"], 2);
        assert!(e.contains("--mirror-socket PATH"), "{e}");
        // -n names a namespace the mirror does not answer for.
        let e = fails(&["-n", "other", "--mirror", "link", "show"], 2);
        assert!(e.contains("--netns and --mirror cannot be combined"), "{e}");
    }
}
