//! Forged Netlink datagrams: what another process with `CAP_NET_ADMIN` in the namespace can
//! unicast to any Netlink socket's port id. Tests use them to check that a receiver drops
//! every datagram the kernel did not send (the sender's port id is not 0).

use std::os::fd::OwnedFd;

use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, MessageHeader, MessageHeaderMut};
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

/// An attacker's socket: a plain `NETLINK_ROUTE` socket bound to a port of its own, from which
/// [`send_forged`] unicasts to another socket's port id.
///
/// ```no_run
/// let evil = nlkit_testns::attacker();
/// nlkit_testns::send_forged(&evil, 4242, &nlkit_testns::forged_error(1, 4242, libc::EPERM, 0));
/// ```
pub fn attacker() -> OwnedFd {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("netlink socket");
    rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0)).expect("bind a netlink socket");
    fd
}

/// A forged `NLMSG_ERROR(-errno)` answering request `seq` of port `port`: capped, echoing a
/// 16-byte request header of type `echoed_ty` (`NLM_F_REQUEST | NLM_F_ACK`), the answer's own
/// header addressed to `port` as the kernel's would be.
///
/// ```
/// let b = nlkit_testns::forged_error(7, 42, libc::EPERM, nlkit_wire::consts::RTM_NEWROUTE);
/// let m = nlkit_wire::Messages::new(&b).next().unwrap().unwrap();
/// assert_eq!((m.seq(), m.pid()), (7, 42));
/// ```
pub fn forged_error(seq: u32, port: u32, errno: i32, echoed_ty: u16) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(NLMSG_ERROR, NLM_F_CAPPED, seq);
    b.raw(&(-errno).to_ne_bytes());
    let mut echoed = [0u8; 16];
    MessageHeader {
        len: 16,
        ty: echoed_ty,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq,
        pid: port,
    }
    .write(&mut echoed);
    b.raw(&echoed);
    b.finish().expect("a forged error fits");
    let mut bytes = b.as_bytes().to_vec();
    MessageHeaderMut::new(&mut bytes)
        .expect("a whole header")
        .set_pid(port);
    bytes
}

/// Sends `bytes` from `from` to the socket bound to port `to`; panics if the kernel refuses
/// (a unicast to a port id needs `CAP_NET_ADMIN` in the namespace, which tests have).
pub fn send_forged(from: &OwnedFd, to: u32, bytes: &[u8]) {
    let n = rustix::net::sendto(
        from,
        bytes,
        SendFlags::empty(),
        &SocketAddrNetlink::new(to, 0),
    )
    .expect("sendto a netlink port id (needs CAP_NET_ADMIN in the namespace)");
    assert_eq!(n, bytes.len(), "a forged datagram sent whole");
}
