//! Conntrack entries leave the mirror only when the kernel says so — with real traffic.
//!
//! Two private namespaces joined by a veth pair: the test's own (where the mirror runs) and a
//! peer. Conntrack tracks packets in a namespace only while some netfilter hook there uses it,
//! so the test loads a `ct state` rule with `nft` (installed by `scripts/setup`; without it the
//! test skips and says so). The peer sends one UDP datagram every [`PACKET_EVERY`] to a
//! socket in the test namespace that never answers: the connection stays unreplied, so each
//! packet re-arms the kernel's timer to `net.netfilter.nf_conntrack_udp_timeout` — without
//! any event (the kernel reports a refresh only when the entry's status changes).
//!
//! The 30 s timeout kept alive for 3 minutes is scaled down: the namespace's UDP
//! timeout is set to [`TIMEOUT_S`] (the sysctl is per namespace and writable by the
//! namespace's owner, root or not; the kernel takes 1 s, 2 s leaves room for a loaded CI
//! machine to be late with a packet) and the traffic lasts [`TRAFFIC`], six timeouts. That
//! proves the same property: the entry outlives several of its timeouts with no event, and
//! the mirror (which keeps no clock per entry, only destroy events and verification dumps)
//! keeps it, equal to the kernel's table; once the traffic stops, the kernel destroys the
//! entry and the mirror follows, with an `IPCTNL_MSG_CT_DELETE` in the feed.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use nlkit_mirror::TableId;
use nlkit_socket::feed::{FeedMark, MirrorStart, Subscribed};
use nlkit_socket::{netns, Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;

/// The namespace's UDP conntrack timeout during the test, in seconds.
const TIMEOUT_S: u64 = 2;
/// How long the traffic keeps the entry alive: six timeouts.
const TRAFFIC: Duration = Duration::from_secs(6 * TIMEOUT_S);
/// Interval between datagrams (well under the timeout).
const PACKET_EVERY: Duration = Duration::from_millis(250);

const UDP_TIMEOUT: &str = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout";

/// Runs `nft ARGS` in this namespace; panics with its output on failure.
fn nft(args: &[&str]) {
    let out = nlkit_testns::run("nft", args);
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets the namespace's UDP timeout to [`TIMEOUT_S`]; returns the timeout in force.
fn set_udp_timeout() -> Duration {
    if let Err(e) = std::fs::write(UDP_TIMEOUT, TIMEOUT_S.to_string()) {
        eprintln!("note: cannot set {UDP_TIMEOUT} ({e}); using its current value");
    }
    let s = std::fs::read_to_string(UDP_TIMEOUT).expect("read the UDP conntrack timeout");
    Duration::from_secs(s.trim().parse().expect("a number of seconds"))
}

/// The events of the conntrack feed `sub` has ready now: (the kernel's new/update, delete)
/// counts.
fn drain(sub: &mut Socket, buf: &mut RecvBuffer) -> (usize, usize) {
    let (mut news, mut dels) = (0, 0);
    while sub.recv(buf).is_ok() {
        for msg in buf.messages().flatten() {
            assert!(
                FeedMark::of(msg.bytes()).is_some(),
                "a feed event without its position"
            );
            if msg.ty() == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE) {
                dels += 1;
            } else if msg.ty() == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW) {
                // Only the kernel's own: a verification dump may refresh the stored content
                // (a synthesized `NEW`: the dump has `CTA_MARK` and `CTA_USE`, the kernel's
                // `NEW` event not), which is no lapse.
                let synthesized = FeedMark::of(msg.bytes())
                    .is_some_and(|f| f.flags & nlkit_wire::feed::FEED_SYNTHESIZED != 0);
                news += usize::from(!synthesized);
            }
        }
    }
    (news, dels)
}

nlkit_testns::netns_test! {
    /// Real traffic keeps an entry alive for six of its timeouts: it stays in the mirror,
    /// without any event; once the traffic stops, the kernel destroys it and the mirror
    /// follows, with a delete event in the feed.
    fn conntrack_kept_alive_by_traffic_stays_then_leaves_with_the_kernel() {
        if !nlkit_testns::have_command("nft") {
            println!("skipped: no nft (nftables) to make conntrack track packets here (scripts/setup installs it)");
            return;
        }
        let m = start("feed-ct", |c| c.ct_verify_interval = Some(Duration::from_secs(2)));
        if !m.mirrors_conntrack() {
            println!("skipped: ctnetlink is not available here");
            return;
        }
        let timeout = set_udp_timeout();
        assert!(TRAFFIC >= 3 * timeout, "the traffic must outlast three timeouts ({timeout:?})");
        // IPv4 only: no IPv6 neighbour discovery or MLD in the table.
        nft(&["add", "table", "ip", "t"]);
        nft(&["add", "chain", "ip", "t", "c", "{ type filter hook input priority 0; }"]);
        nft(&["add", "rule", "ip", "t", "c", "ct", "state", "new,established", "accept"]);

        // The peer namespace, joined by veth.
        let v = nlkit_testns::veth_pair("ca", "cb");
        nlkit_testns::add_addr(v.a_index, "10.230.0.1".parse().unwrap(), 24);
        let peer = netns::create().unwrap();
        let mut k = kernel(Protocol::Route);
        nlkit_route::ops::move_link_to_netns(&mut k, v.b_index, std::os::fd::AsFd::as_fd(&peer))
            .unwrap();
        let sender = netns::run_in(std::os::fd::AsFd::as_fd(&peer), || {
            let c = std::ffi::CString::new("cb").unwrap();
            // SAFETY: `c` is a valid NUL-terminated string.
            let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
            assert!(index != 0, "cb is not in the peer namespace");
            nlkit_testns::add_addr(index, "10.230.0.2".parse().unwrap(), 24);
            nlkit_testns::set_link_up(index);
            Ok(UdpSocket::bind("10.230.0.2:5000"))
        })
        .unwrap()
        .expect("bind the sender in the peer namespace");
        // Bound, so the kernel does not answer with port unreachable; never read or answered.
        let _receiver = UdpSocket::bind("10.230.0.1:4000").unwrap();

        let mut sub = Socket::connect_unix(m.socket_path(), Protocol::Netfilter).unwrap();
        let at = sub
            .mirror_subscribe(
                &[NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY],
                MirrorStart::Now,
                |_| {},
            )
            .unwrap();
        assert!(matches!(at, Subscribed::Following(_)), "{at:?}");
        set_recv_timeout(&sub, Duration::from_millis(10));
        let mut buf = RecvBuffer::new();

        // Traffic. The veth link may still be coming up: send until the entry exists.
        let send = || {
            sender.send_to(b"keepalive", "10.230.0.1:4000").expect("send a datagram");
        };
        assert!(
            wait_until(Duration::from_secs(10), || {
                send();
                std::thread::sleep(PACKET_EVERY);
                m.tables().len(TableId::Conntrack) == 1
            }),
            "the traffic made no conntrack entry in the mirror"
        );
        let (mut news, mut dels) = drain(&mut sub, &mut buf);
        let t0 = Instant::now();
        while t0.elapsed() < TRAFFIC {
            send();
            std::thread::sleep(PACKET_EVERY);
            let (n, d) = drain(&mut sub, &mut buf);
            news += n;
            dels += d;
            assert_eq!(
                m.tables().len(TableId::Conntrack),
                1,
                "an entry the traffic keeps alive left the mirror after {:?}",
                t0.elapsed()
            );
        }
        // One entry all along: created once by the kernel, never destroyed (a lapse of the timer would
        // show as a delete and a new entry), and still equal to the kernel's.
        assert_eq!((news, dels), (1, 0), "feed events while the traffic ran");
        assert_converges(&m, &[TableId::Conntrack], Duration::from_secs(5));
        assert_eq!(kernel_snapshot(TableId::Conntrack).len(), 1);

        // The traffic stops: the kernel destroys the entry after its timeout (at its gc or at
        // the mirror's next verification dump, which evicts expired entries), and the mirror
        // follows.
        let stopped = Instant::now();
        let left = wait_until(Duration::from_secs(60), || {
            dels += drain(&mut sub, &mut buf).1;
            m.tables().len(TableId::Conntrack) == 0
        });
        assert!(left, "the mirror kept an entry the kernel destroyed");
        assert!(stopped.elapsed() >= timeout - Duration::from_millis(500), "left before its timeout");
        assert!(kernel_snapshot(TableId::Conntrack).is_empty());
        let deadline = Instant::now() + Duration::from_secs(10);
        while dels == 0 && Instant::now() < deadline {
            dels += drain(&mut sub, &mut buf).1;
        }
        assert_eq!(dels, 1, "the feed's delete events");
    }
}
