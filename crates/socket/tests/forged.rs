//! Forged replies: a process with `CAP_NET_ADMIN` in the namespace can send datagrams to any
//! netlink socket's port id. Every receive path must drop them (the sender's port id is not 0)
//! and count them, and the transaction must still get the kernel's real reply.

use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{ErrorMsg, IfInfoMsg, MessageBuilder, Messages};

use nlkit_testns::{attacker, send_forged};

/// A forged `NLMSG_ERROR(EPERM)` for request `seq`, addressed to port `pid`.
fn forged_eperm(seq: u32, pid: u32) -> Vec<u8> {
    nlkit_testns::forged_error(seq, pid, libc::EPERM, RTM_GETLINK)
}

fn getlink_lo(seq: u32) -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETLINK, NLM_F_REQUEST, seq);
    req.header(&IfInfoMsg {
        index: 1,
        ..Default::default()
    });
    req.finish().unwrap();
    req
}

nlkit_testns::netns_test! {
    /// A forged error queued for the very sequence number the next transaction will use is
    /// dropped; the transaction gets the kernel's answer.
    fn forged_error_during_transact_is_dropped() {
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let evil = attacker();
        let next = sock.alloc_seq(0);
        send_forged(&evil, sock.port_id(), &forged_eperm(next, sock.port_id()));
        let reply = sock.transact(&mut getlink_lo(0)).expect("the kernel's real reply");
        assert_eq!(reply.len(), 1, "RTM_NEWLINK for lo");
        assert_eq!(sock.stats().foreign_dropped, 1);
        assert!(sock.is_clean());
    }

    /// The same for a relayed request (`transact_raw`): neither the caller's sequence number
    /// nor the socket's own lets a forged reply in, and the caller's number comes back.
    fn forged_error_during_transact_raw_is_dropped() {
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let evil = attacker();
        let next = sock.alloc_seq(0);
        for seq in [42, next] {
            send_forged(&evil, sock.port_id(), &forged_eperm(seq, sock.port_id()));
        }
        let reply = sock.transact_raw(getlink_lo(42).as_bytes()).unwrap();
        let msgs: Vec<_> = Messages::new(&reply).map(|m| m.unwrap()).collect();
        assert_eq!(msgs.len(), 2, "RTM_NEWLINK and the ack");
        assert_eq!(msgs[0].ty(), RTM_NEWLINK);
        let ack = ErrorMsg::parse(&msgs[1]).unwrap();
        assert!(ack.is_ack(), "the kernel's ack, not the forged EPERM");
        assert!(msgs.iter().all(|m| m.seq() == 42));
        assert_eq!(ack.request.seq, 42, "the echoed request header carries the caller's seq");
        assert_eq!(sock.stats().foreign_dropped, 2);
    }

    /// Event sockets drop forged notifications too.
    fn forged_event_is_dropped() {
        let mut ev = nlkit_socket::EventSocket::open(Protocol::Route, &[RTNLGRP_LINK]).unwrap();
        let evil = attacker();
        let port = ev.socket().port_id();
        send_forged(&evil, port, &forged_eperm(1, port));
        let mut buf = nlkit_socket::RecvBuffer::new();
        assert!(ev.try_recv_event(&mut buf).unwrap().is_none());
        assert_eq!(ev.socket().stats().foreign_dropped, 1);
    }
}
