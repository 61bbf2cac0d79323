//! Link kinds, `link set`, `bridge fdb|vlan` and `netns` print and do what `ip` / `bridge`
//! do, in private namespaces. Kinds this kernel lacks are skipped with its own error shown.

mod common;
use common::*;
use nlkit_testns::{ip, netns_test, run};

/// Runs `nlkit args…`; on failure returns the error text (for kinds this kernel lacks).
fn try_nlkit(args: &[&str]) -> Result<String, String> {
    let out = nlkit(args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON {e}: {s}"))
}

fn bridge(args: &[&str]) -> String {
    let out = run("bridge", args);
    assert!(
        out.status.success(),
        "bridge {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text identical and JSON structurally equal for `ip`-style commands.
fn same_as_ip(args: &[&str]) {
    assert_eq!(ok(args), ip(args), "{}", args.join(" "));
    let mut j = vec!["-j"];
    j.extend_from_slice(args);
    assert_eq!(json(&ok(&j)), json(&ip(&j)), "-j {}", args.join(" "));
}

fn same_as_bridge(args: &[&str]) {
    let mut ours = vec!["bridge"];
    ours.extend_from_slice(args);
    assert_eq!(ok(&ours), bridge(args), "bridge {}", args.join(" "));
    let mut j = vec!["-j", "bridge"];
    j.extend_from_slice(args);
    let mut theirs = vec!["-j"];
    theirs.extend_from_slice(args);
    assert_eq!(
        json(&ok(&j)),
        json(&bridge(&theirs)),
        "bridge -j {}",
        args.join(" ")
    );
}

netns_test! {
    /// Every kind is created by `nlkit link add` and shows as `ip link show` shows it.
    fn link_add_kinds_and_show_match_ip() {
        ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        let kinds: &[&[&str]] = &[
            &["link", "add", "br0", "type", "bridge", "stp_state", "1", "ageing_time", "1000"],
            &["link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "local", "10.0.0.1", "nolearning"],
            &["link", "add", "vx1", "type", "vxlan", "id", "43", "remote", "10.0.0.9", "dev", "v0", "dstport", "4790"],
            &["link", "add", "link", "v0", "mv0", "type", "macvlan", "mode", "bridge"],
            &["link", "add", "link", "v0", "mt0", "type", "macvtap", "mode", "vepa"],
            &["link", "add", "ifb0", "type", "ifb"],
            &["link", "add", "link", "v0", "v0.10", "type", "vlan", "id", "10"],
            &["link", "add", "link", "v0", "v0.20", "type", "vlan", "id", "20", "protocol", "802.1ad"],
            &["link", "add", "link", "v0", "ipv0", "type", "ipvlan", "mode", "l3"],
            &["link", "add", "bond0", "type", "bond", "mode", "active-backup", "miimon", "100"],
            &["link", "add", "vrf0", "type", "vrf", "table", "10"],
        ];
        for args in kinds {
            if let Err(e) = try_nlkit(args) {
                println!("skipped: nlkit {}: the kernel says: {e}", args.join(" "));
            }
        }
        same_as_ip(&["link", "show"]);
        same_as_ip(&["link", "show", "type", "vxlan"]);
        // The kernel's view of the options we sent.
        let d = ip(&["-d", "link", "show", "vx0"]);
        assert!(d.contains("vxlan id 42 local 10.0.0.1") && d.contains("dstport 4789 nolearning"), "{d}");
        let d = ip(&["-d", "link", "show", "br0"]);
        assert!(d.contains("ageing_time 1000 stp_state 1"), "{d}");
        assert!(ip(&["-d", "link", "show", "mv0"]).contains("macvlan mode bridge"));
        assert!(ip(&["-d", "link", "show", "mt0"]).contains("macvtap mode vepa"));
        // Kernel errors come back with the extended ack text.
        let e = fails(&["link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789"], 1);
        assert!(e.contains("exists"), "{e}");
    }

    /// `nlkit -d link show` prints the details `ip -d link show` prints (kinds with options:
    /// bridge and its ports, vxlan, macvlan, macvtap; veth, ifb). Bridges stay down so that
    /// their timers do not move between the two listings.
    fn link_show_details_match_ip() {
        ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ok(&["link", "add", "br0", "type", "bridge", "priority", "7", "ageing_time", "2000"]);
        ok(&["link", "set", "v1", "master", "br0"]);
        ok(&["link", "add", "vx0", "type", "vxlan", "id", "42", "group", "239.1.1.1", "local", "10.0.0.1", "dev", "v0", "dstport", "4789", "nolearning", "ttl", "9"]);
        ok(&["link", "add", "vx6", "type", "vxlan", "id", "43", "remote", "fd00::2", "local", "fd00::1", "dstport", "4790"]);
        ok(&["link", "add", "link", "v0", "mv0", "type", "macvlan", "mode", "private"]);
        ok(&["link", "add", "link", "v0", "mt0", "type", "macvtap"]);
        ok(&["link", "add", "ifb0", "type", "ifb"]);
        // Bridge timers (gc_timer runs even on a bridge that is down) tick between the two
        // listings: compare everything but their values.
        let text = |s: String| -> String {
            let mut out = Vec::new();
            let mut after_timer = false;
            for w in s.split(' ') {
                out.push(if after_timer && !w.is_empty() { "T" } else { w });
                if !w.is_empty() {
                    after_timer = w.ends_with("_timer");
                }
            }
            out.join(" ")
        };
        fn untime(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m.iter_mut() {
                        if k.ends_with("_timer") {
                            *x = serde_json::Value::Null;
                        } else {
                            untime(x);
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(untime),
                _ => {}
            }
        }
        assert_eq!(text(ok(&["-d", "link", "show"])), text(ip(&["-d", "link", "show"])));
        let (mut ours, mut theirs) = (json(&ok(&["-d", "-j", "link", "show"])), json(&ip(&["-d", "-j", "link", "show"])));
        untime(&mut ours);
        untime(&mut theirs);
        assert_eq!(ours, theirs);
        assert_eq!(text(ok(&["-d", "link", "show", "dev", "v1"])), text(ip(&["-d", "link", "show", "dev", "v1"])));
    }

    /// `link set` changes what `ip link set` changes; `link del` deletes.
    fn link_set_and_del_match_ip() {
        ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ok(&["link", "add", "br0", "type", "bridge"]);
        ok(&["link", "set", "v1", "master", "br0"]);
        ok(&["link", "set", "br0", "up"]);
        ok(&["link", "set", "v1", "up", "mtu", "1400", "alias", "port one", "txqueuelen", "500"]);
        ok(&["link", "set", "dev", "v0", "address", "02:00:00:00:00:aa", "name", "v0x"]);
        ip(&["link", "property", "add", "dev", "v1", "altname", "first-port-long-name"]);
        same_as_ip(&["link", "show"]);
        same_as_ip(&["addr", "show"]);
        same_as_ip(&["link", "show", "master", "br0"]);
        ok(&["link", "set", "br0", "type", "bridge", "stp_state", "1"]);
        assert!(ip(&["-d", "link", "show", "br0"]).contains("stp_state 1"));
        ok(&["link", "set", "v1", "nomaster", "down"]);
        same_as_ip(&["link", "show"]);
        if let Err(e) = try_nlkit(&["link", "set", "br0", "type", "bridge", "vlan_filtering", "1"]) {
            println!("skipped: vlan_filtering: the kernel says: {e}");
        }
        ok(&["link", "del", "br0"]);
        ok(&["link", "del", "dev", "v0x"]);
        assert_eq!(ip(&["-o", "link", "show"]).lines().count(), 1);
        let e = fails(&["link", "set", "nosuch", "up"], 2);
        assert!(e.contains("Cannot find device \"nosuch\""), "{e}");
    }

    /// `bridge fdb` writes and shows like iproute2's `bridge`.
    fn bridge_fdb_matches_bridge() {
        ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ok(&["link", "add", "br0", "type", "bridge"]);
        ok(&["link", "set", "v1", "master", "br0"]);
        ok(&["link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "local", "10.0.0.1"]);
        ok(&["bridge", "fdb", "add", "02:00:00:00:00:02", "dev", "v1", "master", "static"]);
        ok(&["bridge", "fdb", "replace", "02:00:00:00:00:04", "dev", "v1", "master"]);
        ok(&["bridge", "fdb", "add", "00:00:00:00:00:00", "dev", "vx0", "dst", "10.0.0.2", "vni", "42", "port", "4790", "self"]);
        ok(&["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", "10.0.0.3"]);
        ok(&["bridge", "fdb", "add", "02:00:00:00:00:03", "dev", "vx0", "dst", "10.0.0.4"]);
        if let Err(e) = try_nlkit(&["bridge", "fdb", "add", "02:00:00:00:00:05", "dev", "v1", "master", "vlan", "10"]) {
            println!("skipped: fdb vlan: the kernel says: {e}");
        }
        same_as_bridge(&["fdb", "show"]);
        same_as_bridge(&["fdb", "show", "br", "br0"]);
        same_as_bridge(&["fdb", "show", "dev", "vx0"]);
        ok(&["bridge", "fdb", "del", "02:00:00:00:00:02", "dev", "v1", "master"]);
        ok(&["bridge", "fdb", "del", "00:00:00:00:00:00", "dev", "vx0", "dst", "10.0.0.3"]);
        same_as_bridge(&["fdb", "show"]);
        assert!(!bridge(&["fdb", "show"]).contains("02:00:00:00:00:02"));
        let e = fails(&["bridge", "fdb", "add", "02:00:00:00:00:04", "dev", "v1", "master"], 1);
        assert!(e.contains("exists"), "{e}");
    }

    /// `bridge vlan`: shows like `bridge vlan show`; add/del where the kernel has VLAN
    /// filtering.
    fn bridge_vlan_matches_bridge() {
        ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ok(&["link", "add", "br0", "type", "bridge"]);
        ok(&["link", "set", "v1", "master", "br0"]);
        match try_nlkit(&["bridge", "vlan", "add", "dev", "v1", "vid", "10", "pvid", "untagged"]) {
            Ok(_) => {
                ok(&["bridge", "vlan", "add", "dev", "v1", "vid", "20-22"]);
                same_as_bridge(&["vlan", "show"]);
                ok(&["bridge", "vlan", "del", "dev", "v1", "vid", "10"]);
            }
            Err(e) => println!("skipped: bridge vlan add: the kernel says: {e}"),
        }
        same_as_bridge(&["vlan", "show"]);
        same_as_bridge(&["vlan", "show", "dev", "v1"]);
    }

    /// `netns add|list|set|list-id|del` and `link set DEV netns NAME|PID`, in a private
    /// mount namespace with its own /run (so the host's /run/netns is never touched).
    fn netns_commands_match_ip() {
        if !nlkit_testns::have_command("unshare") {
            println!("skipped: no unshare(1) for a private mount namespace");
            return;
        }
        let nl = env!("CARGO_BIN_EXE_nlkit");
        let script = format!(
            r#"set -e
mount -t tmpfs none /run
N={nl}
cmp() {{ "$N" "$@" > /tmp/ours.$$; ip "$@" > /tmp/theirs.$$; diff -u /tmp/theirs.$$ /tmp/ours.$$; echo "same: $*"; }}
$N netns add blue
ip netns add red
cmp netns list
$N netns set blue 5
ip netns set red 9
cmp netns list
cmp -j netns list
cmp netns list-id
cmp -j netns list-id
$N link add v0 type veth peer name v1
$N link add w0 type veth peer name w1
$N link set v1 netns blue
ip -n blue link show v1 >/dev/null
sleep 1000 & pid=$!
$N link set w1 netns $pid
kill $pid
cmp link show
cmp -j link show
$N link add x0 type veth peer name x1 netns red
ip -n red link show x1 >/dev/null
cmp link show
$N netns del blue
cmp netns list
echo done
"#
        );
        let out = run("unshare", &["-m", "sh", "-c", &script]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}");
        if !out.status.success() && stderr.contains("mount") && !stdout.contains("same:") {
            println!("skipped: no private /run here: {stderr}");
            return;
        }
        assert!(out.status.success() && stdout.contains("done"), "stdout:\n{stdout}\nstderr:\n{stderr}");
    }

    /// With --mirror, commands the mirror cannot answer refuse with a usage error.
    fn mirror_refusals() {
        for args in [
            &["--mirror", "netns", "list"][..],
            &["--mirror", "netns", "add", "x"],
            &["--mirror", "bridge", "fdb", "show"],
            &["--mirror", "bridge", "vlan", "show"],
        ] {
            let e = fails(args, 2);
            assert!(e.contains("does not work with --mirror"), "{}: {e}", args.join(" "));
        }
    }
}

/// A `nlkit mirror` child serving on its own socket; stopped (SIGTERM) on drop.
struct Mirror {
    child: std::process::Child,
    dir: std::path::PathBuf,
    socket: String,
}

impl Mirror {
    fn start() -> Mirror {
        let dir = std::env::temp_dir().join(format!("nlkit-linkkinds-{}", std::process::id()));
        let socket = dir.join("mirror.sock").to_str().unwrap().to_owned();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_nlkit"))
            .args(["--mirror-socket", &socket, "mirror"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start nlkit mirror");
        let m = Mirror { child, dir, socket };
        eventually("the mirror comes up", || {
            nlkit(&["--mirror-socket", &m.socket, "link", "show"])
                .status
                .success()
        });
        m
    }

    /// `nlkit --mirror-socket S args…` from a fresh network namespace (so a change that shows
    /// up here went through the mirror); true on success.
    fn run(&self, args: &[&str]) -> bool {
        let out = std::process::Command::new("unshare")
            .args([
                "-n",
                env!("CARGO_BIN_EXE_nlkit"),
                "--mirror-socket",
                &self.socket,
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run unshare -n nlkit");
        if !out.status.success() {
            println!(
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

netns_test! {
    /// Link-kind and FDB writes with --mirror go through the mirror to its kernel.
    fn writes_through_the_mirror() {
        ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        let m = Mirror::start();
        assert!(m.run(&["link", "add", "br0", "type", "bridge", "stp_state", "1"]));
        assert!(ip(&["-d", "link", "show", "br0"]).contains("stp_state 1"));
        // The mirror learns of br0 by its event: retry until it resolves the name.
        eventually("link set through the mirror", || m.run(&["link", "set", "v1", "master", "br0", "up"]));
        assert!(ip(&["link", "show", "v1"]).contains("master br0"));
        assert!(m.run(&["bridge", "fdb", "add", "02:00:00:00:00:07", "dev", "v1", "master", "static"]));
        assert!(bridge(&["fdb", "show", "br", "br0"]).contains("02:00:00:00:00:07 dev v1 master br0 static"));
        assert!(m.run(&["bridge", "fdb", "del", "02:00:00:00:00:07", "dev", "v1", "master"]));
        assert!(!bridge(&["fdb", "show"]).contains("02:00:00:00:00:07"));
        assert!(m.run(&["link", "del", "br0"]));
        assert!(!ip(&["link", "show"]).contains("br0"));
    }
}
