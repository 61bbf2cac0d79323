//! The tokio wrappers against the kernel (`--features tokio`).
#![cfg(feature = "tokio")]

use nlkit_socket::tokio::{AsyncEventSocket, AsyncSocket};
use nlkit_socket::{Event, EventSocket, Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, IfInfoMsg, MessageBuilder, RtMsg};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

nlkit_testns::netns_test! {
    /// An async dump delivers what the blocking one does.
    fn async_dump_equals_blocking_dump() {
        let v = nlkit_testns::veth_pair("ta", "tb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 3_000, 254);
        let request = || {
            let mut req = MessageBuilder::new();
            req.begin(RTM_GETROUTE, 0, 0);
            req.header(&RtMsg { family: AF_INET, ..Default::default() });
            req.finish().unwrap();
            req
        };
        let mut blocking = Vec::new();
        Socket::open(Protocol::Route).unwrap().dump(&mut request(), |m| {
            blocking.push(m.payload().to_vec());
            Ok::<(), nlkit_socket::Error>(())
        }).unwrap();
        let asynchronous = runtime().block_on(async {
            let mut sock = AsyncSocket::new(Socket::open(Protocol::Route).unwrap()).unwrap();
            let mut got = Vec::new();
            let end = sock.dump(&mut request(), |m| {
                got.push(m.payload().to_vec());
                Ok::<(), nlkit_socket::Error>(())
            }).await.unwrap();
            assert_eq!(end.received as usize, got.len());
            got
        });
        assert!(blocking.len() > 3_000);
        assert_eq!(blocking, asynchronous);
    }

    fn async_transact_reply_and_error() {
        runtime().block_on(async {
            let mut sock = AsyncSocket::new(Socket::open(Protocol::Route).unwrap()).unwrap();
            let mut req = MessageBuilder::new();
            req.begin(RTM_GETLINK, 0, 0);
            req.header(&IfInfoMsg { index: 1, ..Default::default() });
            req.finish().unwrap();
            let reply = sock.transact(&mut req).await.unwrap();
            assert_eq!(reply.len(), 1);

            let mut bad = MessageBuilder::new();
            bad.begin(RTM_NEWROUTE, NLM_F_CREATE, 0);
            bad.header(&RtMsg { family: AF_INET, dst_len: 32, table: RT_TABLE_MAIN,
                protocol: RTPROT_STATIC, ty: RTN_UNICAST, ..Default::default() });
            bad.attr_bytes(RTA_DST, &[10, 9, 9, 9]);
            bad.attr_bytes(RTA_GATEWAY, &[192, 0, 2, 1]);
            bad.finish().unwrap();
            let err = sock.transact(&mut bad).await.unwrap_err();
            assert_eq!(err.to_string(), "Error: Nexthop has invalid gateway.");

            let mut dump = MessageBuilder::new();
            dump.begin(RTM_GETLINK, NLM_F_DUMP, 0);
            dump.header(&IfInfoMsg::default());
            dump.finish().unwrap();
            assert_eq!(sock.transact(&mut dump).await.unwrap().len(), 1);
            assert!(sock.get_mut().is_clean());
        });
    }

    fn async_events_arrive() {
        let v = nlkit_testns::veth_pair("va", "vb");
        runtime().block_on(async {
            let ev = EventSocket::open(Protocol::Route, &[RTNLGRP_IPV4_IFADDR]).unwrap();
            let mut ev = AsyncEventSocket::new(ev).unwrap();
            let waiter = async {
                let mut buf = RecvBuffer::new();
                match ev.recv_event(&mut buf).await.unwrap() {
                    Event::Messages { mut messages, .. } => {
                        messages.next().unwrap().unwrap().ty()
                    }
                    Event::Overrun => panic!("overrun"),
                }
            };
            let adder = async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let mut sock = AsyncSocket::new(Socket::open(Protocol::Route).unwrap()).unwrap();
                let mut req = MessageBuilder::new();
                req.begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, 0);
                req.header(&IfAddrMsg { family: AF_INET, prefixlen: 24, index: v.a_index,
                    ..Default::default() });
                req.attr_bytes(IFA_LOCAL, &[10, 0, 0, 1]);
                req.finish().unwrap();
                sock.transact(&mut req).await.unwrap();
            };
            let (ty, ()) = tokio::time::timeout(std::time::Duration::from_secs(5),
                async { tokio::join!(waiter, adder) }).await.unwrap();
            assert_eq!(ty, RTM_NEWADDR);
        });
    }
}
