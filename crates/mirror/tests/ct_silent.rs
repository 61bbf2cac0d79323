//! Conntrack entries that never send an event: the kernel gives a connection its event cache
//! only if a ctnetlink listener existed when it was created (`nf_conntrack_events` = 2, the
//! default; the listener flag is global to the host), so connections that predate the mirror
//! may be deleted without a `DESTROY` event. The mirror must still drop them.
//!
//! Setting `net.netfilter.nf_conntrack_events` to 0 in the test's namespace while loading makes
//! the loaded connections eventless whatever else runs on the host (with 2 it depends on
//! whether some other process, in any namespace, happens to listen at that moment).

mod common;

use std::time::{Duration, Instant};

use common::*;
use nlkit_mirror::TableId;
use nlkit_socket::Protocol;

const EVENTS_SYSCTL: &str = "/proc/sys/net/netfilter/nf_conntrack_events";

/// Sets this namespace's `nf_conntrack_events`.
fn set_ct_events(v: u8) {
    std::fs::write(EVENTS_SYSCTL, format!("{v}\n")).expect("write nf_conntrack_events");
}

/// Waits (bounded) until the mirror's conntrack table holds `n` connections.
fn wait_ct_len(m: &nlkit_mirror::Mirror, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let len = m.tables().len(TableId::Conntrack);
        if len == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting: {what} (the mirror holds {len}, expected {n})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

nlkit_testns::netns_test! {
    /// Connections created without an event cache, deleted (a flush, then one by one) after
    /// the mirror started: they leave the mirror too; connections created afterwards still
    /// come and go by their events.
    fn eventless_connections_leave_the_mirror() {
        set_ct_events(0);
        nlkit_testns::load_conntrack(50, 3);
        set_ct_events(2);
        let m = start("ct-silent", |_| {});
        if !m.mirrors_conntrack() {
            return; // no ctnetlink events in this kernel
        }
        wait_ct_len(&m, 50, "the initial dump");
        let mut k = kernel(Protocol::Netfilter);
        nlkit_conntrack::ops::flush(&mut k, nlkit_wire::consts::AF_INET).expect("flush");
        assert_eq!(nlkit_conntrack::ops::count(&mut k).expect("count"), 0);
        wait_ct_len(&m, 0, "the flushed eventless connections leave the mirror");
        // Created while the mirror listens: these carry the event cache.
        nlkit_testns::load_conntrack(10, 4);
        wait_ct_len(&m, 10, "new connections arrive by their events");
        nlkit_conntrack::ops::flush(&mut k, nlkit_wire::consts::AF_INET).expect("flush");
        wait_ct_len(&m, 0, "their destroy events");
    }

    /// Some eventless connections deleted, the others kept: the mirror drops exactly the
    /// deleted ones and keeps the rest (a re-dump must not lose what is still there).
    fn eventless_partial_delete() {
        let mut k = kernel(Protocol::Netfilter);
        set_ct_events(0);
        assert_eq!(conntrack(&mut k, true, 0..20, 5), 0);
        set_ct_events(2);
        let m = start("ct-silent-part", |_| {});
        if !m.mirrors_conntrack() {
            return;
        }
        wait_ct_len(&m, 20, "the initial dump");
        assert_eq!(conntrack(&mut k, false, 0..7, 5), 0);
        wait_ct_len(&m, 13, "seven deleted without events");
        assert_converges(&m, &[TableId::Conntrack], Duration::from_secs(20));
    }
}
