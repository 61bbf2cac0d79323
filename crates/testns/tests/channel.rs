//! The fixtures' own channel drops datagrams not sent by the kernel.

use nlkit_testns::Channel;
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder};

nlkit_testns::netns_test! {
    /// Forged `NLMSG_ERROR(EPERM)`s queued for the channel's next sequence numbers are
    /// dropped and counted; the request gets the kernel's ack.
    fn forged_errors_are_dropped() {
        let mut ch = Channel::open(NETLINK_ROUTE).unwrap();
        let port = ch.port_id().unwrap();
        let evil = nlkit_testns::attacker();
        for seq in 0..4u32 {
            let bytes = nlkit_testns::forged_error(seq, port, libc::EPERM, RTM_NEWLINK);
            nlkit_testns::send_forged(&evil, port, &bytes);
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
