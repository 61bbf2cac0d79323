//! Conntrack entries leave the mirror only when the kernel says so.
//!
//! Traffic refreshes a connection's kernel timer without any event. These tests refresh it
//! the same silent way — a ctnetlink update of `CTA_TIMEOUT` alone, which the kernel applies
//! without a notification — instead of sending packets between two namespaces (conntrack in a
//! test namespace tracks packets only once some ruleset uses it). The 3 minutes are
//! shortened to [`KEEPALIVE`]: the mirror keeps no clock per entry any more, so any run longer
//! than the 3 s timeout shows an entry the kernel keeps alive is kept (the old mirror dropped
//! it at its last `CTA_TIMEOUT`); after the refreshes stop, the kernel expires it and the
//! mirror follows (destroy event or verification dump), with a synthesized or kernel
//! `IPCTNL_MSG_CT_DELETE` in the feed.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use nlkit_mirror::TableId;
use nlkit_socket::feed::{FeedMark, MirrorStart, Subscribed};
use nlkit_socket::{Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, NfGenMsg};

/// How long the entry is kept alive (more than twice its timeout).
const KEEPALIVE: Duration = Duration::from_secs(8);

/// Creates (`create`) or refreshes the UDP connection 10.220.0.1:4000 → 10.221.0.1:53 with a
/// timeout of `timeout_s`.
fn ct_timeout(create: bool, timeout_s: u32) {
    let mut b = MessageBuilder::new();
    let flags = if create {
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK
    } else {
        NLM_F_REQUEST | NLM_F_ACK
    };
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
        flags,
        1,
    );
    b.header(&NfGenMsg {
        family: AF_INET,
        version: NFNETLINK_V0,
        res_id: 0,
    });
    let orig = nlkit_conntrack::Tuple::udp(
        Ipv4Addr::new(10, 220, 0, 1).into(),
        4000,
        Ipv4Addr::new(10, 221, 0, 1).into(),
        53,
    );
    orig.write(&mut b, CTA_TUPLE_ORIG);
    if create {
        orig.reversed().write(&mut b, CTA_TUPLE_REPLY);
    }
    b.attr_be32(CTA_TIMEOUT, timeout_s);
    b.finish().unwrap();
    kernel(Protocol::Netfilter)
        .transact(&mut b)
        .expect("conntrack create/refresh");
}

nlkit_testns::netns_test! {
    /// Kept alive silently past its timeout: stays in the mirror; left alone: the kernel
    /// expires it and it leaves the mirror, with a delete event in the feed.
    fn conntrack_kept_alive_stays_then_leaves_with_the_kernel() {
        let m = start("feed-ct", |c| c.ct_verify_interval = Some(Duration::from_secs(2)));
        if !m.mirrors_conntrack() {
            eprintln!("skipped: ctnetlink is not available here");
            return;
        }
        let mut sub = Socket::connect_unix(m.socket_path(), Protocol::Netfilter).unwrap();
        let at = sub
            .mirror_subscribe(
                &[NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY],
                MirrorStart::Now,
                |_| {},
            )
            .unwrap();
        assert!(matches!(at, Subscribed::Following(_)), "{at:?}");
        ct_timeout(true, 3);
        assert!(wait_until(Duration::from_secs(10), || m.tables().len(TableId::Conntrack) == 1));
        let t0 = Instant::now();
        while t0.elapsed() < KEEPALIVE {
            ct_timeout(false, 3);
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(
                m.tables().len(TableId::Conntrack),
                1,
                "an entry the kernel keeps alive left the mirror after {:?}",
                t0.elapsed()
            );
        }
        // No more refreshes: the kernel expires it within its timeout (plus its gc), and the
        // mirror follows.
        assert!(
            wait_until(Duration::from_secs(60), || m.tables().len(TableId::Conntrack) == 0),
            "the mirror kept an entry the kernel expired"
        );
        set_recv_timeout(&sub, Duration::from_millis(200));
        let mut buf = RecvBuffer::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut deleted = false;
        while !deleted && Instant::now() < deadline {
            if sub.recv(&mut buf).is_err() {
                continue;
            }
            for msg in buf.messages().flatten() {
                assert!(FeedMark::of(msg.bytes()).is_some());
                deleted |= msg.ty() == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE);
            }
        }
        assert!(deleted, "no delete event in the feed");
    }
}
