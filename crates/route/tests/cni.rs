//! The CNI scenario of `examples/cni.rs`, run in a private namespace and checked with `ip`
//! and `bridge`.

#[path = "../examples/cni.rs"]
mod cni;

use std::os::fd::AsRawFd;

use nlkit_testns::{ip, netns_test, run};

/// `cmd args…` inside the namespace open as our descriptor `fd` (`nsenter --net`).
fn in_ns(fd: i32, cmd: &str, args: &[&str]) -> String {
    let path = format!("--net=/proc/{}/fd/{fd}", std::process::id());
    let mut all = vec![path.as_str(), cmd];
    all.extend_from_slice(args);
    let out = run("nsenter", &all);
    assert!(
        out.status.success(),
        "nsenter {}: {}",
        all.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

netns_test! {
    fn cni_scenario_through_the_library() {
        let c = cni::setup().expect("CNI setup");
        let fd = c.netns.as_raw_fd();
        let mac = nlkit_route::fmt::Mac(&c.mac).to_string();

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

        let fdb = run("bridge", &["fdb", "show", "br", "cni0"]);
        let fdb = String::from_utf8_lossy(&fdb.stdout);
        assert!(
            fdb.lines().any(|l| l == format!("{mac} dev veth-c1 master cni0 static")),
            "{fdb}"
        );
    }
}
