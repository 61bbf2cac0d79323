//! Helpers for the command-line tests: run `nlkit` and `ip` in the test's namespace.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

/// Runs `nlkit args…` and returns its output.
pub fn nlkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nlkit"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run nlkit")
}

/// Runs `nlkit args…`, asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = nlkit(args);
    assert!(
        out.status.success(),
        "nlkit {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `nlkit args…`, asserts failure with `code`, returns stderr.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = nlkit(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "nlkit {} should exit {code}; stdout: {} stderr: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of `s` as a set (for outputs whose order is not defined).
pub fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// A namespace with a veth pair va/vb, addresses and a few routes of each kind.
pub fn setup() -> nlkit_testns::Veth {
    let v = nlkit_testns::veth_pair("va", "vb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
    for args in [
        &[
            "route",
            "add",
            "10.9.0.0/16",
            "via",
            "10.0.0.2",
            "metric",
            "10",
        ][..],
        &["route", "add", "10.8.0.0/16", "dev", "va", "table", "1000"],
        &[
            "route",
            "add",
            "10.7.0.0/16",
            "nexthop",
            "via",
            "10.0.0.2",
            "weight",
            "1",
            "nexthop",
            "via",
            "10.0.0.3",
            "weight",
            "2",
        ],
        &["route", "add", "blackhole", "10.6.0.0/16"],
        &["-6", "route", "add", "fd01::/64", "via", "fd00::2"],
        &[
            "neigh",
            "add",
            "10.0.0.5",
            "lladdr",
            "02:00:00:00:00:05",
            "dev",
            "va",
        ],
    ] {
        nlkit_testns::ip(args);
    }
    v
}
