//! The fixtures' own channel drops datagrams not sent by the kernel.

use nlkit_testns::Channel;
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder};
use rustix::net::netlink::SocketAddrNetlink;

nlkit_testns::netns_test! {
    /// Forged `NLMSG_ERROR(EPERM)`s queued for the channel's next sequence numbers are
    /// dropped and counted; the request gets the kernel's ack.
    fn forged_errors_are_dropped() {
        let mut ch = Channel::open(NETLINK_ROUTE).unwrap();
        let port = ch.port_id().unwrap();
        let evil = rustix::net::socket_with(
            rustix::net::AddressFamily::NETLINK,
            rustix::net::SocketType::RAW,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::bind(&evil, &SocketAddrNetlink::new(0, 0)).unwrap();
        for seq in 0..4u32 {
            let mut b = MessageBuilder::new();
            b.begin(NLMSG_ERROR, NLM_F_CAPPED, seq);
            b.raw(&(-libc::EPERM).to_ne_bytes());
            b.raw(&[16, 0, 0, 0, 16, 0, 5, 0]);
            b.raw(&seq.to_ne_bytes());
            b.raw(&port.to_ne_bytes());
            b.finish().unwrap();
            rustix::net::sendto(
                &evil,
                b.as_bytes(),
                rustix::net::SendFlags::empty(),
                &SocketAddrNetlink::new(port, 0),
            )
            .unwrap();
        }
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWLINK, NLM_F_REQUEST, 0);
        b.header(&IfInfoMsg {
            index: 1,
            flags: IFF_UP,
            change: IFF_UP,
            ..Default::default()
        });
        b.finish().unwrap();
        ch.request(&mut b).expect("the kernel's ack, not a forged EPERM");
        assert_eq!(ch.foreign_dropped(), 4);
    }
}
