//! Single-socket dumps: `Socket::dump` and `Socket::dump_pipelined` against the kernel.

use nlkit_socket::{Error, Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, RtMsg};

fn route_dump(tos: u8) -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETROUTE, 0, 0);
    req.header(&RtMsg {
        family: AF_INET,
        tos,
        ..Default::default()
    });
    req.finish().unwrap();
    req
}

nlkit_testns::netns_test! {
    /// The pipelined dump delivers the same messages, in the same order, as the plain one.
    fn pipelined_dump_equals_plain_dump() {
        let v = nlkit_testns::veth_pair("sa", "sb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 20_000, 254);
        let mut sock = Socket::open(Protocol::Route).unwrap();
        let mut plain = Vec::new();
        let end = sock.dump(&mut route_dump(0), |m| {
            plain.push(m.payload().to_vec());
            Ok::<(), Error>(())
        }).unwrap();
        let mut piped = Vec::new();
        let end2 = sock.dump_pipelined(&mut route_dump(0), |m| {
            piped.push(m.payload().to_vec());
            Ok::<(), Error>(())
        }).unwrap();
        assert!(plain.len() > 20_000);
        assert_eq!(end.received as usize, plain.len());
        assert_eq!(end2.received as usize, piped.len());
        assert_eq!(plain, piped);
        assert!(sock.is_clean());
    }

    /// A kernel error ends a pipelined dump with that error; a callback error drains the rest
    /// and leaves the socket usable.
    fn pipelined_dump_errors() {
        let v = nlkit_testns::veth_pair("sa", "sb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 5_000, 254);
        let mut sock = Socket::open(Protocol::Route).unwrap();
        // Strict checking rejects a route dump with a TOS.
        let e = sock
            .dump_pipelined(&mut route_dump(1), |_| Ok::<(), Error>(()))
            .unwrap_err();
        assert!(e.kernel().is_some(), "{e:?}");
        let mut seen = 0;
        let e = sock
            .dump_pipelined(&mut route_dump(0), |_| {
                seen += 1;
                if seen == 10 { Err(Error::callback(std::io::Error::other("stop"))) } else { Ok(()) }
            })
            .unwrap_err();
        let Error::Callback(c) = &e else { panic!("{e:?}") };
        assert_eq!(c.downcast_ref::<std::io::Error>().map(|e| e.to_string()).as_deref(), Some("stop"));
        assert_eq!(seen, 10);
        let mut n = 0;
        sock.dump_pipelined(&mut route_dump(0), |_| {
            n += 1;
            Ok::<(), Error>(())
        }).unwrap();
        assert!(n > 5_000);
        assert!(sock.is_clean());
    }
}
