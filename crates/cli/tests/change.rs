//! Commands that change kernel state, checked against what `ip` then reports.

mod common;
use common::*;
use nlkit_testns::{ip, netns_test};

netns_test! {
    fn route_add_replace_del() {
        setup();
        ok(&["route", "add", "10.50.0.0/16", "via", "10.0.0.2", "metric", "5", "proto", "static"]);
        assert!(ip(&["route", "show"]).contains("10.50.0.0/16 via 10.0.0.2 dev va proto static metric 5"));
        ok(&["route", "replace", "10.50.0.0/16", "via", "10.0.0.3", "metric", "5", "proto", "static"]);
        assert!(ip(&["route", "show"]).contains("10.50.0.0/16 via 10.0.0.3 dev va proto static metric 5"));
        ok(&["route", "add", "10.51.0.0/16", "dev", "va", "table", "5000"]);
        assert!(ip(&["route", "show", "table", "5000"]).contains("10.51.0.0/16 dev va"));
        ok(&["route", "add", "10.52.0.0/16", "nexthop", "via", "10.0.0.2", "weight", "3", "nexthop", "via", "10.0.0.4"]);
        let mp = ip(&["route", "show", "10.52.0.0/16"]);
        assert!(mp.contains("nexthop via 10.0.0.2 dev va weight 3"), "{mp}");
        ok(&["-6", "route", "add", "fd02::/64", "via", "fd00::2"]);
        assert!(ip(&["-6", "route", "show"]).contains("fd02::/64 via fd00::2 dev va"));
        ok(&["route", "del", "10.50.0.0/16", "via", "10.0.0.3", "metric", "5"]);
        ok(&["route", "del", "10.51.0.0/16", "table", "5000"]);
        assert!(!ip(&["route", "show", "table", "all"]).contains("10.50.0.0/16"));
        assert!(!ip(&["route", "show", "table", "all"]).contains("10.51.0.0/16"));
    }

    /// Kernel errors carry the extended-ack text and a non-zero exit status.
    fn kernel_errors_are_reported() {
        setup();
        let e = fails(&["route", "add", "10.60.0.0/16", "via", "10.99.0.1"], 1);
        assert_eq!(e.trim(), "Error: Nexthop has invalid gateway.");
        let e = fails(&["route", "add", "10.9.0.0/16", "via", "10.0.0.2", "metric", "10"], 1);
        assert_eq!(e.trim(), "Error: File exists.");
        let e = fails(&["route", "del", "10.61.0.0/16"], 1);
        assert!(e.starts_with("Error: "), "{e}");
    }

    fn addr_add_del() {
        setup();
        ok(&["addr", "add", "10.1.2.3/24", "dev", "vb", "label", "vb:x"]);
        assert!(ip(&["addr", "show", "dev", "vb"]).contains("inet 10.1.2.3/24 scope global vb:x"));
        ok(&["addr", "add", "fd05::5/64", "dev", "vb", "nodad"]);
        assert!(ip(&["-6", "addr", "show", "dev", "vb"]).contains("inet6 fd05::5/64 scope global"));
        ok(&["addr", "del", "10.1.2.3/24", "dev", "vb"]);
        ok(&["addr", "del", "fd05::5/64", "dev", "vb"]);
        let after = ip(&["addr", "show", "dev", "vb"]);
        assert!(!after.contains("10.1.2.3") && !after.contains("fd05::5"), "{after}");
    }

    fn neigh_add_replace_del() {
        setup();
        ok(&["neigh", "add", "10.0.0.9", "lladdr", "02:00:00:00:00:09", "dev", "va"]);
        assert!(ip(&["neigh", "show"]).contains("10.0.0.9 dev va lladdr 02:00:00:00:00:09 PERMANENT"));
        ok(&["neigh", "replace", "10.0.0.9", "lladdr", "02:00:00:00:00:0a", "dev", "va", "nud", "reachable"]);
        assert!(ip(&["neigh", "show"]).contains("10.0.0.9 dev va lladdr 02:00:00:00:00:0a REACHABLE"));
        ok(&["neigh", "del", "10.0.0.9", "dev", "va"]);
        assert!(!ip(&["neigh", "show"]).contains("10.0.0.9 dev va lladdr"));
    }

    fn link_set_add_del() {
        setup();
        ok(&["link", "set", "va", "mtu", "1400"]);
        assert!(ip(&["link", "show", "va"]).contains("mtu 1400"));
        ok(&["link", "set", "dev", "va", "down"]);
        assert!(!ip(&["link", "show", "va"]).contains(",UP"));
        ok(&["link", "set", "va", "up"]);
        assert!(ip(&["link", "show", "va"]).contains(",UP"));
        ok(&["link", "add", "vc", "type", "veth", "peer", "name", "vd"]);
        assert!(ip(&["link", "show"]).contains("vd@vc"));
        ok(&["link", "del", "vc"]);
        assert!(!ip(&["link", "show"]).contains("vd"));
    }

    /// Bad command lines get a usage error (status 2), never a panic.
    fn bad_input_is_a_usage_error() {
        setup();
        for args in [
            &["frobnicate"][..],
            &["route", "frob"],
            &["route", "add"],
            &["route", "add", "10.0.0.0/99"],
            &["route", "add", "10.0.0.0/8", "via"],
            &["route", "add", "10.0.0.0/8", "dev", "nosuchdev"],
            &["route", "show", "table", "nosuchtable"],
            &["addr", "add", "nonsense", "dev", "va"],
            &["neigh", "add", "10.0.0.1", "lladdr", "zz:zz", "dev", "va"],
            &["link", "set", "va"],
            &["ct", "create", "-p", "udp"],
            &["ct", "list", "-p", "nosuchproto"],
            &["monitor", "nosuchobject"],
            &["--threads", "x", "route", "show"],
        ] {
            let out = nlkit(args);
            assert_eq!(out.status.code(), Some(2), "{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
            assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        }
    }
}
