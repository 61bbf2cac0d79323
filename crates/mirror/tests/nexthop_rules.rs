//! The mirror keeps nexthop objects and policy rules: initial sync, events, the kernel's
//! silent changes (a device going flushes its nexthops; rules naming a device or a `goto`
//! target change state), and answers dumps (with the kernel's filters), gets and their errors
//! as the kernel does.

mod common;

use std::time::Duration;

use common::*;
use nlkit_mirror::TableId;
use nlkit_route::request::{self, NexthopFilter};
use nlkit_socket::Protocol;
use nlkit_testns::ip;
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages};

const TABLES: [TableId; 5] = [
    TableId::Nexthops,
    TableId::Rules4,
    TableId::Rules6,
    TableId::Routes4,
    TableId::Routes6,
];

fn converge(m: &nlkit_mirror::Mirror) {
    assert_converges(m, &TABLES, Duration::from_secs(10));
}

/// Message bodies (headers dropped) of a complete dump.
fn bodies(bytes: &[u8]) -> Vec<Vec<u8>> {
    Messages::new(bytes)
        .flatten()
        .filter(|m| !matches!(m.ty(), NLMSG_DONE | NLMSG_ERROR))
        .map(|m| m.bytes()[16..].to_vec())
        .collect()
}

/// The same filtered nexthop dump from the kernel and from the mirror.
fn same_nexthop_dump(c: &mut nlkit_socket::Socket, family: u8, f: &NexthopFilter) {
    let mut req = MessageBuilder::new();
    request::dump_nexthops(&mut req, 0, family, f).unwrap();
    let theirs = dump_consistent(&mut kernel(Protocol::Route), &req).unwrap();
    let ours = dump_consistent(c, &req).expect("mirror dump");
    assert_eq!(
        bodies(&ours),
        bodies(&theirs),
        "nexthop dump family {family} {f:?}"
    );
}

/// A get by id from both: the same object, or the same errno.
fn same_nexthop_get(c: &mut nlkit_socket::Socket, id: u32) {
    let get = |s: &mut nlkit_socket::Socket| {
        let mut req = MessageBuilder::new();
        request::get_nexthop(&mut req, 0, id).unwrap();
        match s.transact(&mut req) {
            Ok(r) => Ok(r
                .messages()
                .flatten()
                .map(|m| m.bytes()[16..].to_vec())
                .collect::<Vec<_>>()),
            Err(e) => Err(e.errno()),
        }
    };
    assert_eq!(
        get(c),
        get(&mut kernel(Protocol::Route)),
        "nexthop get id {id}"
    );
}

nlkit_testns::netns_test! {
    /// Nexthops and rules made before the mirror starts and after; every change, the
    /// filtered dumps and the gets agree with the kernel.
    fn nexthops_and_rules_follow_the_kernel() {
        let v = nlkit_testns::veth_pair("na", "nb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        ip(&["link", "set", "lo", "up"]);
        ip(&["link", "set", "nb", "up"]);
        ip(&["nexthop", "add", "id", "1", "via", "10.0.0.2", "dev", "na"]);
        ip(&["nexthop", "add", "id", "2", "via", "10.0.0.5", "dev", "na"]);
        ip(&["nexthop", "add", "id", "6", "blackhole"]);
        ip(&["-6", "nexthop", "add", "id", "3", "via", "fd00::2", "dev", "na"]);
        ip(&["nexthop", "add", "id", "10", "group", "1/2"]);
        ip(&["rule", "add", "pref", "100", "from", "10.1.0.0/16", "table", "100"]);
        ip(&["rule", "add", "pref", "100", "fwmark", "7", "table", "101"]);
        ip(&["-6", "rule", "add", "pref", "200", "from", "fd01::/64", "table", "200"]);
        let m = start("nhrules", |_| {});
        let mut c = connect(&m);
        converge(&m);

        // Events: new objects, a group, a replace, routes by id, rules in both families.
        ip(&["nexthop", "add", "id", "4", "via", "10.0.0.3", "dev", "na", "proto", "static"]);
        ip(&["-6", "nexthop", "add", "id", "5", "dev", "nb"]);
        ip(&["nexthop", "add", "id", "11", "group", "1,3/4", "type", "resilient", "buckets", "8"]);
        ip(&["nexthop", "add", "id", "20", "via", "10.0.0.9", "fdb"]);
        ip(&["nexthop", "add", "id", "21", "group", "20", "fdb"]);
        ip(&["nexthop", "replace", "id", "4", "via", "10.0.0.4", "dev", "na"]);
        ip(&["route", "add", "10.20.0.0/16", "nhid", "10"]);
        ip(&["route", "add", "10.21.0.0/16", "nhid", "4"]);
        ip(&["rule", "add", "pref", "100", "iif", "nb", "table", "102"]);
        ip(&["rule", "add", "pref", "50", "to", "10.2.0.0/16", "prohibit"]);
        ip(&["-6", "rule", "add", "fwmark", "3/0xff", "table", "300"]);
        ip(&["rule", "del", "pref", "100", "fwmark", "7", "table", "101"]);
        converge(&m);

        for f in [
            NexthopFilter::default(),
            NexthopFilter { groups: true, ..Default::default() },
            NexthopFilter { fdb: true, ..Default::default() },
            NexthopFilter { fdb: true, groups: true, ..Default::default() },
            NexthopFilter { oif: Some(v.a_index), ..Default::default() },
            NexthopFilter { oif: Some(v.b_index), ..Default::default() },
        ] {
            for family in [AF_UNSPEC, AF_INET, AF_INET6] {
                same_nexthop_dump(&mut c, family, &f);
            }
        }
        for id in [1, 2, 3, 4, 6, 10, 11, 21, 99] {
            same_nexthop_get(&mut c, id);
        }

        // A master filter: na enslaved to a bridge.
        if ip_ok(&["link", "add", "br0", "type", "bridge"]) {
            ip(&["link", "set", "na", "master", "br0"]);
            converge(&m);
            // The master filter reads the links table: wait for the enslavement there too.
            assert_converges(&m, &[TableId::Links], Duration::from_secs(10));
            let br = link_index("br0");
            same_nexthop_dump(&mut c, AF_UNSPEC, &NexthopFilter { master: Some(br), ..Default::default() });
            ip(&["link", "set", "na", "nomaster"]);
            converge(&m);
        }

        // A goto rule resolved when its target comes and unresolved when it goes; an iif
        // rule detached when its device goes and attached when it comes back.
        ip(&["rule", "add", "pref", "10", "goto", "500"]);
        converge(&m);
        ip(&["rule", "add", "pref", "500", "table", "500"]);
        converge(&m);
        ip(&["rule", "del", "pref", "500"]);
        converge(&m);
        ip(&["link", "set", "nb", "name", "nc"]);
        converge(&m);
        ip(&["link", "set", "nc", "name", "nb"]);
        converge(&m);

        // Deleting a member changes its group; deleting a group removes its routes.
        ip(&["nexthop", "del", "id", "2"]);
        converge(&m);
        ip(&["nexthop", "del", "id", "10"]);
        converge(&m);
        ip(&["rule", "flush"]);
        ip(&["-6", "rule", "flush"]);
        converge(&m);
        same_nexthop_get(&mut c, 10);
    }

    /// A device going down deletes the nexthops through it, and the groups lose them, all
    /// without a nexthop notification; the mirror re-dumps and agrees.
    fn link_down_flushes_nexthops_silently() {
        let v = nlkit_testns::veth_pair("da", "db");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        ip(&["link", "set", "lo", "up"]);
        nlkit_testns::add_addr(v.b_index, "10.9.0.1".parse().unwrap(), 24);
        nlkit_testns::set_link_up(v.b_index);
        ip(&["nexthop", "add", "id", "1", "via", "10.0.0.2", "dev", "da"]);
        ip(&["nexthop", "add", "id", "2", "via", "10.9.0.2", "dev", "db"]);
        ip(&["nexthop", "add", "id", "3", "group", "1/2"]);
        let m = start("nhdown", |_| {});
        converge(&m);
        let before = m.tables().len(TableId::Nexthops);
        set_link(v.a_index, false);
        assert!(
            wait_until(Duration::from_secs(5), || !ip(&["nexthop", "show"]).contains("id 1 ")),
            "the kernel kept nexthop 1"
        );
        converge(&m);
        assert!(m.tables().len(TableId::Nexthops) < before);
        nlkit_testns::delete_link("da");
        converge(&m);
    }
}

/// Runs `ip ARGS`; whether it succeeded (a kind the kernel lacks is skipped, with its error).
fn ip_ok(args: &[&str]) -> bool {
    let out = nlkit_testns::run("ip", args);
    if !out.status.success() {
        eprintln!(
            "skipped: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out.status.success()
}

/// The interface index of `name` (from `ip -o link show`).
fn link_index(name: &str) -> u32 {
    let out = ip(&["-o", "link", "show", name]);
    out.split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .expect("ifindex")
}
