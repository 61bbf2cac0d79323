//! The sync thread waits on its event sockets, the shutdown descriptor and its next periodic
//! deadline, never on a fixed poll timeout: with every periodic step an hour away, a shutdown
//! still ends it (and events still arrive meanwhile).

mod common;

use std::time::Duration;

use common::*;
use nlkit_mirror::TableId;

nlkit_testns::netns_test! {
    /// Periodic steps an hour away: events are applied when they come, and `shutdown` joins
    /// the sync thread (bounded wait: a hang fails the test instead of stalling it).
    fn sync_thread_wakes_for_events_and_shutdown() {
        let m = start("sync-wait", |c| {
            c.ct_gc_interval = Duration::from_secs(3600);
            c.neigh_resync_interval = None;
        });
        let before = m.tables().len(TableId::Links);
        let v = nlkit_testns::veth_pair("sw0", "sw1");
        assert!(
            wait_until(Duration::from_secs(20), || m.tables().len(TableId::Links) >= before + 2),
            "the veth pair's link events were not applied"
        );
        nlkit_testns::delete_link(&v.a);
        assert!(
            wait_until(Duration::from_secs(20), || m.tables().len(TableId::Links) == before),
            "the deletion was not applied"
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            m.shutdown();
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(30)).is_ok(),
            "shutdown did not stop the mirror's threads"
        );
    }
}
