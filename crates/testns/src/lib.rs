//! `nlkit-testns`: run each kernel test in its own fresh network namespace.
//!
//! Tests must never touch the host's interfaces, routes or conntrack table, and must pass as
//! root and as an ordinary user. [`netns_test!`] turns a test body into a `#[test]` that
//! re-executes the test binary for that one test, in a child process that has entered a new
//! network namespace (and, unless real root, a new user namespace in which it is root).
//!
//! Why a child process: `unshare(CLONE_NEWUSER)` fails with `EINVAL` in a multithreaded process,
//! and the test harness runs tests on threads. The child unshares between `fork` and `exec`,
//! where it is single-threaded ([`isolate()`], also used by the sandboxes of `nlkit demo` and
//! `nlkit bench`).
//!
//! The fixtures ([`veth_pair`], [`load_ipv4_routes`], [`load_conntrack`], …) speak Netlink
//! through a deliberately small channel of their own built on `nlkit-wire`, so that the
//! fixtures tests rely on do not depend on the socket code under test. Nothing in this crate
//! depends on `nlkit-socket`.
//!
//! ```no_run
//! nlkit_testns::netns_test! {
//!     fn routes_are_visible() {
//!         let v = nlkit_testns::veth_pair("va", "vb");
//!         nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
//!         nlkit_testns::load_ipv4_routes(v.a_index, 1000, 254);
//!         assert!(nlkit_testns::ip(&["-4", "route", "show"]).contains("10.128.0.1 dev va"));
//!     }
//! }
//! ```

mod addrs;
mod channel;
pub mod corpus;
mod fixtures;
mod forge;
mod harness;
mod isolate;
mod line_bench;
mod orphan;

pub use addrs::shaped_addr;
pub use channel::{Channel, ChannelError};
pub use fixtures::{
    add_addr, delete_link, load_conntrack, load_ipv4_routes, load_ipv6_routes, set_link_up,
    veth_pair, wait_link_settled, Veth,
};
pub use forge::{attacker, forged_error, send_forged};
pub use harness::{have_command, in_test_netns, ip, run, run_in_netns, CHILD_ENV};
pub use isolate::{is_root, isolate};
pub use line_bench::{size_from_env, LineBench};
pub use orphan::kill_and_time_worker;

/// Declares tests that each run in a fresh network namespace (see the crate docs).
///
/// ```no_run
/// nlkit_testns::netns_test! {
///     /// Only loopback exists in a fresh namespace.
///     fn only_loopback() {
///         let out = nlkit_testns::ip(&["-o", "link", "show"]);
///         assert_eq!(out.lines().count(), 1);
///     }
/// }
/// ```
#[macro_export]
macro_rules! netns_test {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                $crate::run_in_netns(module_path!(), stringify!($name), || $body);
            }
        )*
    };
}
