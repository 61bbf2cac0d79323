//! Sockets, transactions, the pool, events, namespaces and generic netlink, against the kernel.

use std::net::Ipv4Addr;

use nlkit_socket::genl::{query_family, GenlResolver};
use nlkit_socket::{
    netns, Error, Event, EventSocket, Pool, Protocol, RecvBuffer, Socket, SocketOptions,
};
use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, IfInfoMsg, MessageBuilder, RtMsg};

fn add_addr_req(b: &mut MessageBuilder, index: u32, addr: [u8; 4], excl: bool) {
    let flags = NLM_F_CREATE | if excl { NLM_F_EXCL } else { 0 };
    b.begin(RTM_NEWADDR, flags, 0);
    b.header(&IfAddrMsg {
        family: AF_INET,
        prefixlen: 24,
        index,
        ..Default::default()
    });
    b.attr_bytes(IFA_LOCAL, &addr);
    b.attr_bytes(IFA_ADDRESS, &addr);
    b.finish().unwrap();
}

/// A route via a gateway that is not reachable: the kernel refuses it with an ext-ack text.
fn bad_gateway_route_req(b: &mut MessageBuilder) {
    b.begin(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, 0);
    b.header(&RtMsg {
        family: AF_INET,
        dst_len: 32,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_STATIC,
        scope: RT_SCOPE_UNIVERSE,
        ty: RTN_UNICAST,
        ..Default::default()
    });
    b.attr_bytes(RTA_DST, &[10, 9, 9, 9]);
    b.attr_bytes(RTA_GATEWAY, &[192, 0, 2, 1]);
    b.finish().unwrap();
}

fn link_count(sock: &mut Socket) -> usize {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETLINK, NLM_F_DUMP, 0);
    req.header(&IfInfoMsg::default());
    req.finish().unwrap();
    sock.transact(&mut req).unwrap().len()
}

nlkit_testns::netns_test! {
    fn open_binds_kernel_assigned_port() {
        let a = Socket::open(Protocol::Route).unwrap();
        let b = Socket::open(Protocol::Netfilter).unwrap();
        let c = Socket::open(Protocol::Generic).unwrap();
        assert_ne!(a.port_id(), 0);
        let a2 = Socket::open(Protocol::Route).unwrap();
        assert_ne!(a.port_id(), a2.port_id(), "port ids are unique per protocol");
        assert_ne!(b.port_id(), 0);
        assert_ne!(c.port_id(), 0);
        assert!(a.applied().rcvbuf >= 64 * 1024, "{:?}", a.applied());
        let strict = SocketOptions { strict: true, rcvbuf: 256 * 1024, ..Default::default() };
        let s = Socket::with_options(Protocol::Route, &strict).unwrap();
        assert!(s.applied().refused.is_empty());
        assert!(s.applied().rcvbuf >= 256 * 1024);
    }

    fn transact_ack_and_get_reply() {
        let v = nlkit_testns::veth_pair("va", "vb");
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let mut req = MessageBuilder::new();
        add_addr_req(&mut req, v.a_index, [10, 0, 0, 1], true);
        let reply = sock.transact(&mut req).unwrap();
        assert!(reply.is_empty());
        assert!(nlkit_testns::ip(&["-4", "addr", "show", "dev", "va"]).contains("10.0.0.1/24"));

        let mut get = MessageBuilder::new();
        get.begin(RTM_GETLINK, 0, 0);
        get.header(&IfInfoMsg { index: v.a_index as i32, ..Default::default() });
        get.finish().unwrap();
        let reply = sock.transact(&mut get).unwrap();
        assert_eq!(reply.len(), 1);
        let m = reply.messages().next().unwrap().unwrap();
        assert_eq!(m.ty(), RTM_NEWLINK);
        let (_, attrs) = m.family_header::<IfInfoMsg>().unwrap();
        assert_eq!(attrs.find(IFLA_IFNAME).unwrap().unwrap().str().unwrap(), "va");
        // A dump through a transaction collects every message up to NLMSG_DONE.
        assert_eq!(link_count(&mut sock), 3);
        assert!(sock.is_clean());
    }

    fn transact_error_carries_ext_ack_text() {
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let mut req = MessageBuilder::new();
        bad_gateway_route_req(&mut req);
        let err = sock.transact(&mut req).unwrap_err();
        let k = err.kernel().expect("a kernel error");
        assert_eq!(k.errno, libc::ENETUNREACH, "{k:?}");
        assert_eq!(err.to_string(), "Error: Nexthop has invalid gateway.");
        // The socket stays usable and clean after an error.
        assert!(sock.is_clean());
        assert_eq!(link_count(&mut sock), 1);
    }

    fn batch_gives_each_request_its_result() {
        let v = nlkit_testns::veth_pair("va", "vb");
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let mut batch = MessageBuilder::new();
        add_addr_req(&mut batch, v.a_index, [10, 0, 0, 1], true);
        add_addr_req(&mut batch, v.a_index, [10, 0, 0, 1], true); // EEXIST
        bad_gateway_route_req(&mut batch);
        add_addr_req(&mut batch, v.a_index, [10, 0, 1, 1], true);
        let res = sock.transact_batch(&mut batch).unwrap();
        assert_eq!(res.len(), 4);
        assert!(res[0].is_ok());
        assert_eq!(res[1].as_ref().unwrap_err().errno(), Some(libc::EEXIST));
        assert!(res[2].as_ref().unwrap_err().to_string().contains("invalid gateway"));
        assert!(res[3].is_ok());
        assert!(sock.is_clean());

        // A large batch: more requests than one window, every one acknowledged.
        let mut big = MessageBuilder::new();
        for i in 0..3000u32 {
            let b = i.to_be_bytes();
            add_addr_req(&mut big, v.b_index, [10, 50 + b[2], b[3], 1], true);
        }
        let res = sock.transact_batch(&mut big).unwrap();
        assert_eq!(res.len(), 3000);
        let ok = res.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 3000, "{:?}", res.iter().find(|r| r.is_err()));
        assert_eq!(sock.stats().seq_skipped, 0);
    }

    fn pool_returns_only_clean_sockets() {
        let pool = Pool::new(Protocol::Route, SocketOptions::default());
        {
            let mut s = pool.get().unwrap();
            assert_eq!(link_count(&mut s), 1);
        }
        assert_eq!(pool.idle(), 1, "a clean socket goes back");
        {
            let mut s = pool.get().unwrap();
            assert_eq!(pool.idle(), 0);
            // Unread data: send a request and never read its reply.
            let mut req = MessageBuilder::new();
            req.begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1);
            req.header(&IfInfoMsg::default());
            req.finish().unwrap();
            s.send(req.as_bytes()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(10));
            assert!(!s.is_clean());
        }
        assert_eq!(pool.idle(), 0, "a socket with unread data is closed");
        let mut s = pool.get().unwrap();
        assert_eq!(link_count(&mut s), 1);
        drop(s);
        // Never more than POOL_IDLE_MAX idle.
        let many: Vec<_> = (0..20).map(|_| pool.get().unwrap()).collect();
        drop(many);
        assert_eq!(pool.idle(), nlkit_socket::POOL_IDLE_MAX);
    }

    fn multicast_join_events_and_leave() {
        let v = nlkit_testns::veth_pair("va", "vb");
        let mut ev = EventSocket::open(Protocol::Route, &[RTNLGRP_IPV4_IFADDR]).unwrap();
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let mut req = MessageBuilder::new();
        add_addr_req(&mut req, v.a_index, [10, 0, 0, 1], true);
        sock.transact(&mut req).unwrap();
        let mut buf = RecvBuffer::new();
        match ev.recv_event(&mut buf).unwrap() {
            Event::Messages { nsid, mut messages } => {
                assert_eq!(nsid, None);
                let m = messages.next().unwrap().unwrap();
                assert_eq!(m.ty(), RTM_NEWADDR);
                let (h, _) = m.family_header::<IfAddrMsg>().unwrap();
                assert_eq!(h.index, v.a_index);
            }
            Event::Overrun => panic!("unexpected overrun"),
        }
        ev.leave(RTNLGRP_IPV4_IFADDR).unwrap();
        let mut req = MessageBuilder::new();
        add_addr_req(&mut req, v.a_index, [10, 0, 1, 1], true);
        sock.transact(&mut req).unwrap();
        assert!(ev.try_recv_event(&mut buf).unwrap().is_none());
    }

    fn event_overflow_is_reported_as_overrun() {
        let v = nlkit_testns::veth_pair("va", "vb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        let opts = SocketOptions { rcvbuf: 8192, ..EventSocket::default_options() };
        let mut ev = EventSocket::with_options(Protocol::Route, &opts, &[RTNLGRP_IPV4_ROUTE]).unwrap();
        nlkit_testns::load_ipv4_routes(v.a_index, 2000, RT_TABLE_MAIN as u32);
        let mut buf = RecvBuffer::new();
        let mut overrun = false;
        while let Some(e) = ev.try_recv_event(&mut buf).unwrap() {
            overrun |= matches!(e, Event::Overrun);
        }
        assert!(overrun);
        assert!(ev.overruns() >= 1);
    }

    fn socket_opened_in_another_namespace() {
        nlkit_testns::veth_pair("va", "vb");
        // A second, empty namespace held by an fd.
        let other = std::thread::spawn(|| {
            // SAFETY: unsharing only the network namespace moves only this helper thread, which
            // holds nothing that depends on its namespace.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .unwrap();
            netns::open_path("/proc/thread-self/ns/net").unwrap()
        });
        let other = other.join().unwrap();
        let mut here = Socket::open(Protocol::Route).unwrap();
        let mut there = netns::open_socket(&other, Protocol::Route, &SocketOptions::default()).unwrap();
        assert_eq!(link_count(&mut here), 3);
        assert_eq!(link_count(&mut there), 1);
        let pool = Pool::in_netns(Protocol::Route, SocketOptions::default(), other);
        assert_eq!(link_count(&mut pool.get().unwrap()), 1);
        assert!(matches!(netns::open_named("no-such-ns"), Err(Error::Netns { .. })));
        assert!(netns::open_named("../etc").is_err());
    }

    fn genl_family_and_group_resolution() {
        let mut sock = Socket::open(Protocol::Generic).unwrap();
        let ctrl = query_family(&mut sock, "nlctrl").unwrap();
        assert_eq!(ctrl.id, GENL_ID_CTRL);
        assert!(ctrl.group("notify").is_some());
        let r = GenlResolver::new(Pool::new(Protocol::Generic, SocketOptions::default()));
        assert_eq!(r.group("nlctrl", "notify").unwrap(), ctrl.group("notify").unwrap());
        assert_eq!(r.cached(), 1);
        r.family("nlctrl").unwrap();
        assert_eq!(r.cached(), 1);
        let err = r.family("no-such-family").unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT));
        assert!(matches!(r.group("nlctrl", "nope"), Err(Error::Genl(_))));
        // The group can be joined.
        let g = r.group("nlctrl", "notify").unwrap();
        EventSocket::open(Protocol::Generic, &[g]).unwrap();
    }
}

#[test]
fn addresses_are_plain_values() {
    // Not a kernel test: keeps the helper honest.
    let mut b = MessageBuilder::new();
    add_addr_req(&mut b, 1, Ipv4Addr::new(10, 0, 0, 1).octets(), true);
    assert_eq!(b.message_count(), 1);
}
