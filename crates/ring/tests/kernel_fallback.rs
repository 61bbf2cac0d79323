//! The kernel path: this kernel (6.x) refuses `NETLINK_RX_RING`, so the fallback is taken.
//! Opening a NETLINK_ROUTE socket and setting a socket option changes no network state, so no
//! namespace is needed.

use std::os::fd::AsFd;

use nlkit_ring::{request_kernel_rings, KernelRings, RingRequest};
use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};

#[test]
fn kernel_refuses_rings_and_we_fall_back() {
    let sock = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("netlink socket");
    let req = RingRequest::new(16384, 64).unwrap();
    let rings = request_kernel_rings(sock.as_fd(), req).expect("fallback is not an error");
    assert!(matches!(rings, KernelRings::Fallback));
    // Asking again is still a fallback (and logs nothing more).
    assert!(request_kernel_rings(sock.as_fd(), req)
        .unwrap()
        .is_fallback());
    // The ordinary path still works on the same socket: send a route dump request.
    let mut msg = [0u8; 20];
    msg[0..4].copy_from_slice(&20u32.to_ne_bytes()); // nlmsg_len
    msg[4..6].copy_from_slice(&18u16.to_ne_bytes()); // RTM_GETLINK
    msg[6..8].copy_from_slice(&0x301u16.to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
    msg[16] = 0; // rtgen_family AF_UNSPEC
    let sent = rustix::net::send(&sock, &msg, rustix::net::SendFlags::empty()).unwrap();
    assert_eq!(sent, 20);
    let mut buf = vec![0u8; 65536];
    let n = rustix::net::recv(&sock, &mut buf[..], rustix::net::RecvFlags::empty())
        .unwrap()
        .0;
    assert!(n >= 16, "got a reply from the kernel over plain recv");
}

#[test]
fn invalid_request_is_an_error_not_a_fallback() {
    let sock = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let bad = RingRequest {
        block_size: 100,
        block_nr: 1,
        frame_size: 100,
        frame_nr: 1,
    };
    assert!(request_kernel_rings(sock.as_fd(), bad).is_err());
}
