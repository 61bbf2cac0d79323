//! End to end: the mirror syncs every table, follows events, answers gets and dumps, and
//! passes writes to the kernel with the kernel's ack or error.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use nlkit_mirror::TableId;
use nlkit_socket::{Error, Protocol};
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder, NfGenMsg, RtMsg};

nlkit_testns::netns_test! {
    /// Initial sync of every table, then events (adds, deletes, conntrack) converge.
    fn initial_sync_and_events_converge() {
        let v = nlkit_testns::veth_pair("ma", "mb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        nlkit_testns::load_ipv4_routes(v.a_index, 2000, 254);
        nlkit_testns::load_ipv4_routes(v.a_index, 500, 1000);
        nlkit_testns::load_ipv6_routes(v.a_index, 500, 254);
        nlkit_testns::load_conntrack(300, 1);
        let m = start("sync", |_| {});
        assert!(m.mirrors_conntrack(), "ctnetlink works in test namespaces");
        let mut all = RTNL.to_vec();
        if m.mirrors_conntrack() {
            all.push(TableId::Conntrack);
        }
        assert_converges(&m, &all, Duration::from_secs(20));
        assert!(m.tables().len(TableId::Routes4) >= 2500);

        let mut k = kernel(Protocol::Route);
        let adds: Vec<IpAddr> = (0..1000).map(|i| IpAddr::V4(v4(i))).collect();
        assert_eq!(routes(&mut k, true, &adds, v.a_index, 254), 0);
        let adds6: Vec<IpAddr> = (0..300).map(|i| IpAddr::V6(v6(i))).collect();
        assert_eq!(routes(&mut k, true, &adds6, v.a_index, 254), 0);
        assert_eq!(routes(&mut k, false, &adds[..400], v.a_index, 254), 0);
        if m.mirrors_conntrack() {
            let mut ct = kernel(Protocol::Netfilter);
            assert_eq!(conntrack(&mut ct, true, 0..500, 3), 0);
            assert_eq!(conntrack(&mut ct, false, 0..200, 3), 0);
        }
        assert_converges(&m, &all, Duration::from_secs(20));
        assert!(m.metrics().events.load(std::sync::atomic::Ordering::Relaxed) > 1000);
    }

    /// Gets by key, an unknown type, and writes relayed to the kernel.
    fn gets_and_writes() {
        let v = nlkit_testns::veth_pair("ga", "gb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 10, 254);
        let m = start("gets", |_| {});
        let mut c = connect(&m);
        set_recv_timeout(&c, Duration::from_secs(10));

        // Link by index.
        let mut req = MessageBuilder::new();
        req.begin(RTM_GETLINK, NLM_F_REQUEST, 0);
        req.header(&IfInfoMsg { index: v.a_index as i32, ..Default::default() });
        let r = ask(&mut c, &mut req).unwrap();
        assert_eq!(r.len(), 1);
        let msg = r.messages().next().unwrap().unwrap();
        assert_eq!(msg.ty(), RTM_NEWLINK);

        // Missing link.
        let mut req = MessageBuilder::new();
        req.begin(RTM_GETLINK, NLM_F_REQUEST, 0);
        req.header(&IfInfoMsg { index: 9999, ..Default::default() });
        match ask(&mut c, &mut req) {
            Err(Error::Kernel(e)) => assert_eq!(e.errno, libc::ENODEV),
            other => panic!("expected ENODEV, got {other:?}"),
        }

        // Route by exact prefix.
        let mut req = MessageBuilder::new();
        req.begin(RTM_GETROUTE, NLM_F_REQUEST, 0);
        req.header(&RtMsg { family: AF_INET, dst_len: 32, ..Default::default() });
        req.attr_ip(RTA_DST, "10.128.0.1".parse().unwrap());
        let r = ask(&mut c, &mut req).unwrap();
        assert_eq!(r.len(), 1);

        // A write through the mirror: the kernel's ack comes back, the route arrives by event.
        let mut req = MessageBuilder::new();
        req.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 0);
        req.header(&RtMsg {
            family: AF_INET, dst_len: 32, table: RT_TABLE_MAIN, protocol: RTPROT_STATIC,
            scope: RT_SCOPE_LINK, ty: RTN_UNICAST, ..Default::default()
        });
        req.attr_ip(RTA_DST, "10.99.0.1".parse().unwrap());
        req.attr_u32(RTA_OIF, v.a_index);
        ask(&mut c, &mut req).unwrap();
        // The same again: the kernel's EEXIST is relayed.
        let mut again = MessageBuilder::new();
        again.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 0);
        again.header(&RtMsg {
            family: AF_INET, dst_len: 32, table: RT_TABLE_MAIN, protocol: RTPROT_STATIC,
            scope: RT_SCOPE_LINK, ty: RTN_UNICAST, ..Default::default()
        });
        again.attr_ip(RTA_DST, "10.99.0.1".parse().unwrap());
        again.attr_u32(RTA_OIF, v.a_index);
        match ask(&mut c, &mut again) {
            Err(Error::Kernel(e)) => assert_eq!(e.errno, libc::EEXIST),
            other => panic!("expected EEXIST, got {other:?}"),
        }
        // An invalid write: the kernel's extended-ack text comes back.
        let mut bad = MessageBuilder::new();
        bad.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE, 0);
        bad.header(&RtMsg { family: AF_INET, dst_len: 32, table: RT_TABLE_MAIN, ty: RTN_UNICAST, ..Default::default() });
        bad.attr_ip(RTA_DST, "10.99.0.2".parse().unwrap());
        bad.attr_ip(RTA_GATEWAY, "192.0.2.1".parse().unwrap());
        match ask(&mut c, &mut bad) {
            Err(Error::Kernel(e)) => {
                assert_eq!(e.errno, libc::ENETUNREACH, "{e:?}");
                assert!(e.msg.is_some(), "ext-ack text expected: {e:?}");
            }
            other => panic!("expected ENODEV, got {other:?}"),
        }
        assert_converges(&m, &[TableId::Routes4], Duration::from_secs(10));

        // Unknown message type.
        let mut req = MessageBuilder::new();
        req.begin(0x7f0, NLM_F_REQUEST, 0);
        req.header(&NfGenMsg::default());
        match ask(&mut c, &mut req) {
            Err(Error::Kernel(e)) => assert_eq!(e.errno, libc::EOPNOTSUPP),
            other => panic!("expected EOPNOTSUPP, got {other:?}"),
        }

        // Conntrack get by the reply tuple.
        if m.mirrors_conntrack() {
            let mut ct = kernel(Protocol::Netfilter);
            assert_eq!(conntrack(&mut ct, true, 0..10, 9), 0);
            assert_converges(&m, &[TableId::Conntrack], Duration::from_secs(10));
            let mut req = MessageBuilder::new();
            req.begin(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET), NLM_F_REQUEST, 0);
            req.header(&NfGenMsg { family: AF_INET, version: NFNETLINK_V0, res_id: 0 });
            let t = req.nest_begin(CTA_TUPLE_REPLY);
            let ip = req.nest_begin(CTA_TUPLE_IP);
            req.attr_bytes(CTA_IP_V4_SRC, &[10, 211, 0, 1]);
            req.attr_bytes(CTA_IP_V4_DST, &[10, 210, 0, 0]);
            req.nest_end(ip);
            let p = req.nest_begin(CTA_TUPLE_PROTO);
            req.attr_u8(CTA_PROTO_NUM, IPPROTO_UDP);
            req.attr_be16(CTA_PROTO_SRC_PORT, 53);
            req.attr_be16(CTA_PROTO_DST_PORT, 1027);
            req.nest_end(p);
            req.nest_end(t);
            let r = ask(&mut c, &mut req).unwrap();
            assert_eq!(r.len(), 1);
        }
        m.shutdown();
    }
}
