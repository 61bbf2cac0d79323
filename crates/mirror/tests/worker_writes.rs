//! Writes through the worker process ([`WriterMode::Worker`]): the kernel's ack and errors come
//! back through the worker's channel.
//!
//! `harness = false`: the worker re-executes this binary, so `main` must call
//! `maybe_run_worker` before anything else.

mod common;

use std::time::Duration;

use common::*;
use nlkit_mirror::{TableId, WriterMode};
use nlkit_socket::Error;
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, RtMsg};

fn route_req(dst: &str, oif: u32) -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, 0);
    req.header(&RtMsg {
        family: AF_INET,
        dst_len: 32,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_STATIC,
        scope: RT_SCOPE_LINK,
        ty: RTN_UNICAST,
        ..Default::default()
    });
    req.attr_ip(RTA_DST, dst.parse().unwrap());
    req.attr_u32(RTA_OIF, oif);
    req
}

fn body() {
    let v = nlkit_testns::veth_pair("wa", "wb");
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    let m = start("worker", |c| c.writer = WriterMode::Worker);
    let mut c = connect(&m);
    set_recv_timeout(&c, Duration::from_secs(10));
    ask(&mut c, &mut route_req("10.77.0.1", v.a_index)).unwrap();
    match ask(&mut c, &mut route_req("10.77.0.1", v.a_index)) {
        Err(Error::Kernel(e)) => assert_eq!(e.errno, libc::EEXIST),
        other => panic!("expected EEXIST, got {other:?}"),
    }
    assert_converges(&m, &[TableId::Routes4], Duration::from_secs(10));
    assert!(!m.tables().routes[0].is_empty());
    m.shutdown();
}

fn main() {
    nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry);
    nlkit_testns::run_in_netns(module_path!(), "worker_writes", || {
        body();
        println!("test result: ok. 1 passed");
    });
    println!("worker_writes ... ok");
}
