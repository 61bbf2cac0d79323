//! Idle and stalled clients cannot exhaust the mirror, refused clients read the reason, and
//! requests are classified as dumps the way the kernel does.

mod common;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use nlkit_socket::{Error, Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder, RtMsg};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// `lo` through `sock`.
fn get_lo(sock: &mut Socket) -> Result<usize, Error> {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETLINK, 0, 0);
    req.header(&IfInfoMsg {
        index: 1,
        ..Default::default()
    });
    req.finish().unwrap();
    sock.transact(&mut req).map(|r| r.len())
}

/// A raw connection that sends nothing.
fn raw_connect(path: &Path) -> OwnedFd {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::connect(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
    fd
}

/// Waits (at most `timeout`) until the server hangs up `fd`; returns whether it did.
fn wait_hangup(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(fd, PollFlags::RDHUP)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => {
                let r = fds[0].revents();
                if r.intersects(PollFlags::RDHUP | PollFlags::HUP) {
                    return true;
                }
            }
            Ok(_) => return false,
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// The IPv4 route dump request with `flags` (no `NLM_F_DUMP` added by anyone).
fn route_request(flags: u16, seq: u32) -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETROUTE, NLM_F_REQUEST | flags, seq);
    req.header(&RtMsg {
        family: AF_INET,
        ..Default::default()
    });
    req.finish().unwrap();
    req
}

/// Sends `req` as is and reads until `NLMSG_DONE` (or an error): the routes received.
fn raw_dump(sock: &mut Socket, req: &MessageBuilder) -> Result<usize, String> {
    sock.send(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = RecvBuffer::new();
    let mut routes = 0;
    loop {
        sock.recv(&mut buf).map_err(|e| e.to_string())?;
        while let Some(m) = buf.next_message() {
            let m = m.map_err(|e| e.to_string())?;
            match m.ty() {
                NLMSG_DONE => return Ok(routes),
                NLMSG_ERROR => {
                    let e = nlkit_wire::ErrorMsg::parse(&m).map_err(|e| e.to_string())?;
                    return Err(format!("error reply {e:?} (not a dump)"));
                }
                RTM_NEWROUTE => {
                    assert!(
                        m.flags() & NLM_F_MULTI != 0,
                        "dump part without NLM_F_MULTI"
                    );
                    routes += 1;
                }
                t => return Err(format!("unexpected message type {t}")),
            }
        }
    }
}

nlkit_testns::netns_test! {
    /// 300 connections that never send anything cost the mirror descriptors, not its
    /// service: a normal client still gets answers, and so do the idle ones when they speak.
    fn idle_connections_do_not_lock_others_out() {
        let m = start("idle300", |c| c.client_idle_timeout = Duration::from_secs(600));
        let idle: Vec<OwnedFd> = (0..300).map(|_| raw_connect(m.socket_path())).collect();
        assert!(wait_until(Duration::from_secs(20), || m.clients() >= 300), "{} clients", m.clients());
        let mut sock = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
        let mut req = common::dump_request(nlkit_mirror::TableId::Links);
        let end = sock.dump(&mut req, |_| Ok::<(), Error>(())).unwrap();
        assert!(end.received >= 1);
        drop(idle);
        assert!(wait_until(Duration::from_secs(20), || m.clients() == 1), "{} clients", m.clients());
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
    }

    /// A client over `max_clients` reads the refusal (`EBUSY` and its text) as a typed kernel
    /// error, not `EPIPE`; once a slot is free a new client is served.
    fn refused_client_reads_the_reason() {
        let m = start("max", |c| c.max_clients = 4);
        let mut held: Vec<Socket> = (0..4)
            .map(|_| Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap())
            .collect();
        assert!(wait_until(Duration::from_secs(10), || m.clients() == 4));
        let mut extra = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        match get_lo(&mut extra) {
            Err(Error::Kernel(k)) => {
                assert_eq!(k.errno, libc::EBUSY);
                let text = k.msg.unwrap_or_default();
                assert!(text.contains("too many mirror clients"), "text: {text}");
                println!("refused with: {text}");
            }
            other => panic!("expected the EBUSY refusal, got {other:?}"),
        }
        // A dump is refused the same way.
        let mut extra = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let mut req = common::dump_request(nlkit_mirror::TableId::Links);
        match extra.dump(&mut req, |_| Ok::<(), Error>(())) {
            Err(Error::Kernel(k)) => assert_eq!(k.errno, libc::EBUSY),
            other => panic!("expected the EBUSY refusal, got {other:?}"),
        }
        assert!(m.metrics().clients_refused.load(Ordering::Relaxed) >= 2);
        // The held ones are served; freeing one admits a new client.
        assert_eq!(get_lo(&mut held[0]).unwrap(), 1);
        held.pop();
        assert!(wait_until(Duration::from_secs(10), || m.clients() == 3));
        let mut next = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut next).unwrap(), 1);
    }

    /// A client that says nothing for `client_idle_timeout` is disconnected; a busy one is not.
    fn idle_client_is_timed_out() {
        let m = start("idleto", |c| c.client_idle_timeout = Duration::from_millis(300));
        let mut sock = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
        let silent = raw_connect(m.socket_path());
        assert!(wait_hangup(&silent, Duration::from_secs(20)), "idle client never dropped");
        assert!(m.metrics().clients_idle_closed.load(Ordering::Relaxed) >= 1);
        match get_lo(&mut sock) {
            Err(Error::PeerClosed) | Err(Error::Sys { .. }) => {}
            other => panic!("the idle client was not dropped: {other:?}"),
        }
        assert!(wait_until(Duration::from_secs(10), || m.clients() == 0));
    }

    /// A client that sends a dump and never reads is dropped after the configured send
    /// timeout — one deadline for the whole stall (checked loosely: not before it, and well
    /// before twice it) — while others are served meanwhile.
    fn stalled_dump_is_dropped_at_the_configured_bound() {
        let v = nlkit_testns::veth_pair("sa", "sb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 20_000, 254);
        let timeout = Duration::from_secs(3);
        let m = start("stall", |c| {
            c.client_send_timeout = timeout;
            c.capacities.routes = 1 << 16;
        });
        let lazy = raw_connect(m.socket_path());
        let req = route_request(NLM_F_DUMP, 77);
        let t0 = Instant::now();
        rustix::net::send(&lazy, req.as_bytes(), rustix::net::SendFlags::empty()).unwrap();
        // Others are served while it stalls.
        let mut sock = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
        assert!(wait_hangup(&lazy, timeout * 4), "stalled client never dropped");
        let took = t0.elapsed();
        println!("stalled client dropped after {took:?} (send timeout {timeout:?})");
        assert!(took + Duration::from_millis(100) >= timeout, "dropped before the timeout");
        assert!(took < timeout * 2 - Duration::from_millis(500), "dropped only after {took:?}");
        assert!(m.metrics().clients_dropped.load(Ordering::Relaxed) >= 1);
        assert_eq!(get_lo(&mut sock).unwrap(), 1);
    }

    /// `RTM_GETROUTE` with only `NLM_F_ROOT` or only `NLM_F_MATCH` is a dump, as in the
    /// kernel: answered from the tables (multipart, `NLMSG_DONE`), with the kernel's routes.
    fn root_or_match_alone_is_a_dump() {
        let v = nlkit_testns::veth_pair("da", "db");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 500, 254);
        let m = start("rootmatch", |_| {});
        let mut kernel = Socket::open(Protocol::Route).unwrap();
        let mut mirror = Socket::connect_unix(m.socket_path(), Protocol::Route).unwrap();
        let full = raw_dump(&mut kernel, &route_request(NLM_F_DUMP, 1)).unwrap();
        assert!(full >= 500);
        let dumps_before = m.metrics().dumps.load(Ordering::Relaxed);
        for (i, flags) in [NLM_F_ROOT, NLM_F_MATCH].into_iter().enumerate() {
            let req = route_request(flags, 10 + i as u32);
            let k = raw_dump(&mut kernel, &req).unwrap();
            let n = raw_dump(&mut mirror, &req).unwrap();
            assert_eq!(k, full, "the kernel does not dump with flags {flags:#x}");
            assert_eq!(n, full, "mirror answered {n} routes for flags {flags:#x}, kernel {full}");
        }
        // Counted as served dumps (after NLMSG_DONE is sent: wait for the serving thread).
        let dumps = || m.metrics().dumps.load(Ordering::Relaxed);
        assert!(wait_until(Duration::from_secs(10), || dumps() >= dumps_before + 2));
        assert_eq!(dumps(), dumps_before + 2);
        // The same bits on a write mean NLM_F_REPLACE (0x100): a write, not a dump.
        let mut add = MessageBuilder::new();
        add.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, 0);
        add.header(&RtMsg {
            family: AF_INET,
            dst_len: 24,
            table: RT_TABLE_MAIN,
            protocol: RTPROT_STATIC,
            scope: RT_SCOPE_LINK,
            ty: RTN_UNICAST,
            ..Default::default()
        });
        add.attr_ip(RTA_DST, "10.99.0.0".parse().unwrap());
        add.attr_u32(RTA_OIF, v.a_index);
        add.finish().unwrap();
        mirror.transact(&mut add).expect("route replace through the mirror");
        let after = raw_dump(&mut kernel, &route_request(NLM_F_DUMP, 2)).unwrap();
        assert_eq!(after, full + 1);
    }
}
