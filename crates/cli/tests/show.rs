//! `show` commands print what `ip` prints, in private namespaces.

mod common;
use common::*;
use nlkit_testns::{ip, netns_test};

netns_test! {
    /// With 10,000 routes, `nlkit route show` lists the same routes as `ip route show`.
    fn route_show_matches_ip_with_10000_routes() {
        let v = setup();
        nlkit_testns::load_ipv4_routes(v.a_index, 10_000, 254);
        let ours = ok(&["route", "show"]);
        let theirs = ip(&["route", "show"]);
        assert!(ours.lines().count() > 10_000);
        assert_eq!(lines(&ours), lines(&theirs));
        // Same order too: both print the kernel's dump order.
        assert_eq!(ours, theirs);
        // Shared multi-threaded dump: same set.
        assert_eq!(lines(&ok(&["--threads", "3", "route", "show"])), lines(&theirs));
    }

    fn route_show_filters_match_ip() {
        let v = setup();
        nlkit_testns::load_ipv6_routes(v.a_index, 100, 254);
        for args in [
            &["route", "show", "table", "all"][..],
            &["route", "show", "table", "1000"],
            &["route", "show", "dev", "va"],
            &["route", "show", "proto", "kernel"],
            &["-6", "route", "show"],
            &["-4", "route", "show", "table", "local"],
        ] {
            assert_eq!(lines(&ok(args)), lines(&ip(args)), "{}", args.join(" "));
        }
    }

    fn link_addr_neigh_show_match_ip() {
        setup();
        for args in [
            &["link", "show"][..],
            &["link", "show", "dev", "va"],
            &["link", "show", "up"],
            &["addr", "show"],
            &["addr", "show", "dev", "va"],
            &["-4", "addr", "show"],
            &["neigh", "show"],
            &["neigh", "show", "dev", "va"],
        ] {
            assert_eq!(ok(args), ip(args), "{}", args.join(" "));
        }
    }

    /// JSON output parses and carries what `ip -j` carries for the fields we print.
    fn json_outputs_parse_and_agree() {
        setup();
        let ours: serde_json::Value = serde_json::from_str(&ok(&["-j", "route", "show"])).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(&ip(&["-j", "route", "show"])).unwrap();
        let dsts = |v: &serde_json::Value| -> Vec<String> {
            v.as_array().unwrap().iter().map(|r| r["dst"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(dsts(&ours), dsts(&theirs));
        for cmd in ["link", "addr", "neigh"] {
            let v: serde_json::Value = serde_json::from_str(&ok(&["-j", cmd, "show"])).unwrap();
            assert!(v.is_array(), "{cmd}");
        }
        let names = |out: &str| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(out).unwrap();
            v.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(names(&ok(&["-j", "link", "show"])), names(&ip(&["-j", "link", "show"])));
        let threads: serde_json::Value =
            serde_json::from_str(&ok(&["-j", "--threads", "2", "route", "show"])).unwrap();
        assert_eq!(threads.as_array().unwrap().len(), ours.as_array().unwrap().len());
    }

    fn route_get_matches_ip() {
        setup();
        assert_eq!(ok(&["route", "get", "10.9.1.1"]), ip(&["route", "get", "10.9.1.1"]));
    }

    /// `--mirror-socket PATH`: listings read from a running `nlkit mirror` through the same socket
    /// code as from the kernel (one thread, and a shared dump over mirror connections), and
    /// show what the kernel shows.
    fn mirror_flag_lists_what_the_kernel_lists() {
        let v = setup();
        nlkit_testns::load_ipv4_routes(v.a_index, 2000, 254);
        let dir = std::env::temp_dir().join(format!("nlkit-cli-mirror-{}", std::process::id()));
        let path = dir.join("mirror.sock");
        let mut mirror = std::process::Command::new(env!("CARGO_BIN_EXE_nlkit"))
            .args(["--mirror-socket", path.to_str().unwrap(), "mirror"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start nlkit mirror");
        let flag = format!("--mirror-socket={}", path.display());
        // The mirror listens once its initial sync is done.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !nlkit(&[&flag, "link", "show"]).status.success() {
            assert!(std::time::Instant::now() < deadline, "the mirror did not come up");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for args in [
            &["route", "show"][..],
            &["route", "show", "table", "all"],
            &["-6", "route", "show"],
            &["--threads", "2", "route", "show", "table", "all"],
            &["link", "show"],
            &["addr", "show"],
        ] {
            let with_flag: Vec<&str> = std::iter::once(flag.as_str()).chain(args.iter().copied()).collect();
            let kernel_args = if args[0] == "--threads" { &args[2..] } else { args };
            // The mirror follows the kernel by events (addrconf may still be adding routes).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let (kernel, mirrored) = (ok(kernel_args), ok(&with_flag));
                if lines(&kernel) == lines(&mirrored) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{}: the mirror shows\n{mirrored}\nthe kernel\n{kernel}",
                    with_flag.join(" ")
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let _ = mirror.kill();
        let _ = mirror.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `--netns NAME` enters /run/netns/NAME (in a private mount namespace with its own /run).
    fn netns_flag_enters_named_namespace() {
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir /run/netns && ip netns add other && \
             {nlkit} --netns other link show && {nlkit} -n missing link show",
            nlkit = env!("CARGO_BIN_EXE_nlkit")
        );
        let out = nlkit_testns::run("unshare", &["-m", "sh", "-c", &script]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The named namespace is fresh: only a loopback that is down.
        assert!(stdout.contains("1: lo: <LOOPBACK> mtu 65536 qdisc noop state DOWN"), "{stdout}{stderr}");
        assert_eq!(stdout.lines().count(), 2, "{stdout}");
        assert!(stderr.contains("cannot open network namespace \"missing\""), "{stderr}");
        assert!(!out.status.success());
    }
}
