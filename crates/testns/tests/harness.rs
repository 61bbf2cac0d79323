//! The harness itself, against the real kernel.

use nlkit_testns::{in_test_netns, ip, netns_test};

netns_test! {
    /// A fresh namespace has only loopback, and it is up.
    fn fresh_namespace_has_only_loopback() {
        assert!(in_test_netns());
        let out = ip(&["-o", "link", "show"]);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("lo:") && out.contains("UP"), "{out}");
    }

    /// veth, addresses and batched routes (IPv4 in a table beyond 255, IPv6 in main).
    fn veth_addresses_and_routes() {
        let v = nlkit_testns::veth_pair("ta", "tb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        let r4 = nlkit_testns::load_ipv4_routes(v.a_index, 3000, 1000);
        let r6 = nlkit_testns::load_ipv6_routes(v.a_index, 500, 254);
        let out4 = ip(&["-4", "route", "show", "table", "1000"]);
        assert_eq!(out4.lines().count(), r4.len());
        assert!(out4.contains("10.128.0.1 dev ta proto static scope link"), "{}", &out4[..200]);
        let out6 = ip(&["-6", "route", "show", "proto", "static"]);
        assert_eq!(out6.lines().count(), r6.len());
        nlkit_testns::delete_link("ta");
        assert_eq!(ip(&["-o", "link", "show"]).lines().count(), 1);
    }

    /// Conntrack entries created in batches are visible in this namespace.
    fn conntrack_entries() {
        let n = nlkit_testns::load_conntrack(2000, 7);
        assert_eq!(n, 2000);
    }
}

netns_test! {
    /// Two namespaces never see each other's links.
    fn namespaces_are_private() {
        nlkit_testns::veth_pair("pa", "pb");
        assert_eq!(ip(&["-o", "link", "show"]).lines().count(), 3);
    }
}

/// `isolate` on its own: the child sees a fresh namespace with only loopback (down, since
/// nothing brought it up), and with a user namespace it is root there whoever runs the test.
/// It never touches the host's namespace: only the child's own fresh one.
#[test]
fn isolate_gives_a_child_its_own_namespace() {
    for user_ns in [false, true] {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "id -u && ip -o link show"]);
        nlkit_testns::isolate(&mut cmd, user_ns);
        let out = cmd.output().expect("spawn in a private namespace");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines = stdout.lines();
        let uid = lines.next().unwrap_or_default();
        if user_ns || !nlkit_testns::is_root() {
            assert_eq!(uid, "0", "mapped to root in its user namespace");
        }
        let links: Vec<&str> = lines.collect();
        assert_eq!(links.len(), 1, "{stdout}");
        assert!(
            links[0].contains("lo:") && !links[0].contains(",UP"),
            "{stdout}"
        );
    }
}
