//! Nexthop objects (`ip nexthop`): deleting or changing one changes or removes the routes that
//! use it without any route notification; the mirror still ends equal to the kernel.

mod common;

use std::time::Duration;

use common::*;
use nlkit_mirror::TableId;

const ROUTES: [TableId; 2] = [TableId::Routes4, TableId::Routes6];

/// Adds `count` routes `prefix.X.Y/32` (IPv4) or `prefix::X/128` (IPv6) using nexthop
/// object `nhid`, with one `ip -batch`.
fn routes_via_nhid(v6: bool, base: u32, count: u32, nhid: u32) {
    let mut batch = String::new();
    for i in base..base + count {
        if v6 {
            batch.push_str(&format!("route add fd00:90::{i:x}/128 nhid {nhid}\n"));
        } else {
            batch.push_str(&format!(
                "route add 10.90.{}.{}/32 nhid {nhid}\n",
                i / 256,
                i % 256
            ));
        }
    }
    let file = std::env::temp_dir().join(format!(
        "nlkit-mirror-nexthops-{}-{base}-{nhid}.batch",
        std::process::id()
    ));
    std::fs::write(&file, batch).unwrap();
    nlkit_testns::ip(&["-batch", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
}

fn routes_in_kernel(v6: bool) -> usize {
    let fam = if v6 { "-6" } else { "-4" };
    nlkit_testns::ip(&[fam, "route", "show", "table", "all"])
        .lines()
        .count()
}

nlkit_testns::netns_test! {
    /// 1,000 IPv4 and 200 IPv6 routes use a nexthop object; deleting the object deletes
    /// them silently in the kernel, and the mirror drops them too.
    fn nexthop_delete_removes_routes() {
        let v = nlkit_testns::veth_pair("na", "nb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        nlkit_testns::ip(&["nexthop", "add", "id", "20", "via", "10.0.0.2", "dev", "na"]);
        nlkit_testns::ip(&["-6", "nexthop", "add", "id", "40", "via", "fd00::2", "dev", "na"]);
        let m = start("nhdel", |_| {});
        routes_via_nhid(false, 0, 1000, 20);
        routes_via_nhid(true, 0, 200, 40);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));
        assert!(m.tables().len(TableId::Routes4) >= 1000);

        let before4 = routes_in_kernel(false);
        nlkit_testns::ip(&["nexthop", "del", "id", "20"]);
        assert!(routes_in_kernel(false) + 1000 <= before4, "the kernel kept the routes");
        assert_converges(&m, &ROUTES, Duration::from_secs(10));
        assert!(m.tables().len(TableId::Routes4) + 1000 <= before4);

        nlkit_testns::ip(&["nexthop", "del", "id", "40"]);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));
    }

    /// Routes use group 30 = 21/22; removing member 22 changes every one of them (the
    /// kernel reports the routes' nexthops from the group); replacing member 21 changes them
    /// again; deleting the group removes them.
    fn nexthop_group_change_updates_routes() {
        let v = nlkit_testns::veth_pair("ga", "gb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::ip(&["nexthop", "add", "id", "21", "via", "10.0.0.2", "dev", "ga"]);
        nlkit_testns::ip(&["nexthop", "add", "id", "22", "via", "10.0.0.3", "dev", "ga"]);
        nlkit_testns::ip(&["nexthop", "add", "id", "30", "group", "21/22"]);
        let m = start("nhgroup", |_| {});
        routes_via_nhid(false, 0, 1000, 30);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));

        nlkit_testns::ip(&["nexthop", "del", "id", "22"]);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));

        nlkit_testns::ip(&["nexthop", "replace", "id", "21", "via", "10.0.0.4", "dev", "ga"]);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));

        // Nexthops created after the mirror started count as well.
        nlkit_testns::ip(&["nexthop", "add", "id", "23", "via", "10.0.0.5", "dev", "ga"]);
        nlkit_testns::ip(&["nexthop", "replace", "id", "30", "group", "21/23"]);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));
        nlkit_testns::ip(&["nexthop", "del", "id", "23"]);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));

        nlkit_testns::ip(&["nexthop", "del", "id", "30"]);
        assert_converges(&m, &ROUTES, Duration::from_secs(10));
        assert!(m.tables().len(TableId::Routes4) < 100);
    }
}
