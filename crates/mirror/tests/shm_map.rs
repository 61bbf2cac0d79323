//! `MSG_MAP`: a client of the mirror's uid gets the region's memfd, maps it read-only and
//! reads the tables straight from it; a client of another uid gets `EPERM` and no descriptor.

mod common;

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use common::*;
use nlkit_mirror::{LinkKey, TableId};
use nlkit_shm::{MapReader, RegionView};
use nlkit_table::{ConnKey, TableKey};
use nlkit_view::schema::{ct_addr_key, table_object, CtAux, MAP_VERSION, MSG_MAP};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder, MessageHeader, NLMSG_HDRLEN};
use rustix::net::{
    recvmsg, send, socket_with, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Asks the mirror at `path` for its region: the answer's message and the descriptors that
/// came with any message answering `seq`.
fn ask_map(path: &Path, seq: u32) -> (Vec<u8>, Vec<OwnedFd>) {
    let s = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::connect(&s, &SocketAddrUnix::new(path).unwrap()).unwrap();
    rustix::net::sockopt::set_socket_timeout(
        &s,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    let mut req = MessageBuilder::new();
    req.begin(MSG_MAP, NLM_F_REQUEST, seq);
    req.finish().unwrap();
    send(&s, req.as_bytes(), SendFlags::empty()).unwrap();
    let mut fds = Vec::new();
    for _ in 0..4 {
        let mut buf = vec![0u8; 4096];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let r = recvmsg(
            &s,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .expect("an answer");
        for c in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = c {
                fds.extend(rights);
            }
        }
        buf.truncate(r.bytes);
        let hdr = MessageHeader::parse(&buf).expect("a netlink message");
        if hdr.seq == seq {
            return (buf, fds);
        }
    }
    panic!("no answer with sequence number {seq}");
}

nlkit_testns::netns_test! {
    /// A client maps the region and reads a link and a conntrack entry (by its reply tuple
    /// and through the address index) with no request to the mirror.
    fn a_client_maps_the_tables() {
        let v = nlkit_testns::veth_pair("sa", "sb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 100, 254);
        nlkit_testns::load_conntrack(20, 1);
        let m = start("shm", |_| {});
        assert!(m.mirrors_conntrack(), "ctnetlink works in test namespaces");
        let (answer, fds) = ask_map(m.socket_path(), 7);
        let (msg, _) = Message::parse(&answer).unwrap();
        assert_eq!(msg.ty(), MSG_MAP);
        assert_eq!(msg.payload(), MAP_VERSION.to_ne_bytes());
        assert_eq!(fds.len(), 1, "one descriptor");
        let view = RegionView::map(fds.into_iter().next().unwrap()).expect("maps read-only");

        // A link, as the mirror serves it.
        let links = MapReader::open(&view, view.find(table_object(TableId::Links)).unwrap()).unwrap();
        let key = LinkKey { ifindex: v.a_index };
        let mut got = Vec::new();
        let e = links.get(0, &key.to_words(), &mut got).unwrap().expect("the veth is mapped");
        assert_eq!(Some(got.clone()), m.tables().links.get_bytes(&key));
        assert!(e.aux >= 1, "the generation that confirmed it");
        let (lm, _) = Message::parse(&got).unwrap();
        assert_eq!(lm.ty(), RTM_NEWLINK);

        // Every IPv4 route is there.
        let routes = MapReader::open(&view, view.find(table_object(TableId::Routes4)).unwrap()).unwrap();
        let walk = routes.walk(|_, rec| Message::parse(rec).is_ok()).unwrap();
        assert_eq!(walk.visited as usize, m.tables().len(TableId::Routes4));
        assert!(walk.visited >= 100);

        // The rules, sorted by rank, are the kernel's order as the mirror serves it.
        let rules = MapReader::open(&view, view.find(table_object(TableId::Rules4)).unwrap()).unwrap();
        let mut ranked = Vec::new();
        rules
            .walk(|e, rec| {
                ranked.push((e.keys[0][0], rec.to_vec()));
                true
            })
            .unwrap();
        ranked.sort();
        let ranked: Vec<Vec<u8>> = ranked.into_iter().map(|(_, r)| r).collect();
        assert!(ranked.len() >= 3, "the default rules");
        assert_eq!(ranked, *m.tables().rules[0].snapshot());

        if m.mirrors_conntrack() {
            let ct = MapReader::open(&view, view.find(table_object(TableId::Conntrack)).unwrap()).unwrap();
            assert_eq!(ct.count().unwrap() as usize, m.tables().len(TableId::Conntrack));
            let mut first = None;
            ct.walk(|e, _| {
                first = Some(*e);
                false
            })
            .unwrap();
            let e = first.expect("a connection");
            let w = |d: usize| -> [u64; 5] { std::array::from_fn(|i| e.keys[d][i]) };
            let (orig, reply) = (ConnKey::from_words(&w(0)), ConnKey::from_words(&w(1)));
            let mut rec = Vec::new();
            let by_reply = ct.get(1, &reply.to_words(), &mut rec).unwrap().expect("by reply");
            assert_eq!(by_reply.slot, e.slot);
            let mut full = Vec::new();
            let aux = CtAux::from_word(by_reply.aux);
            nlkit_view::ct_pack::unpack_into(&rec, aux.dropped, &orig, &reply, &mut full);
            let mut served = Vec::new();
            assert!(m.tables().ct.get_into(&reply, &mut served));
            assert_eq!(full, served, "the kernel's message, as the mirror serves it");
            let mut same_src = 0;
            ct.get_all(2, &ct_addr_key(&orig), |_, _| {
                same_src += 1;
                true
            })
            .unwrap();
            assert!(same_src >= 1);
        }
    }

    /// A client of another uid gets `EPERM` and no descriptor (needs real root to switch
    /// uid: skipped otherwise).
    fn another_uid_gets_no_descriptor() {
        if !nlkit_testns::is_root() {
            println!("skipped: needs real root to connect as another uid");
            return;
        }
        let m = start("shm-uid", |_| {});
        use std::os::unix::fs::PermissionsExt;
        let dir = m.socket_path().parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(m.socket_path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let status = map_as_nobody(m.socket_path());
        assert_eq!(status, 0, "child saw no EPERM without a descriptor (status {status})");
        // Root is handed the region.
        let (_, fds) = ask_map(m.socket_path(), 9);
        assert_eq!(fds.len(), 1);
    }
}

/// Forks a child that becomes uid 65534, connects, asks for the region and expects an
/// `EPERM` `NLMSG_ERROR` answering its request and no descriptor on any message; returns the
/// child's exit status (0: as expected).
fn map_as_nobody(path: &Path) -> i32 {
    // Everything the child needs is prepared before the fork.
    let mut req = MessageBuilder::new();
    req.begin(MSG_MAP, NLM_F_REQUEST, 5);
    req.finish().unwrap();
    let req = req.as_bytes().to_vec();
    let mut buf = [0u8; 256];
    let mut cbuf = [0u64; 16];
    // SAFETY: an all-zero msghdr/iovec are valid values of these plain C structs; the
    // pointers stored in them point into `buf` and `cbuf`, which outlive their use.
    let mut iov: libc::iovec = unsafe { std::mem::zeroed() };
    iov.iov_base = buf.as_mut_ptr().cast();
    iov.iov_len = buf.len();
    // SAFETY: as above.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    // SAFETY: the child makes only async-signal-safe system calls (send, recvmsg) on memory
    // prepared before the fork.
    unsafe {
        connect_as_nobody(path, |fd| {
            if libc::send(fd, req.as_ptr().cast(), req.len(), 0) != req.len() as isize {
                return 13;
            }
            // The refusal sent on connecting (sequence 0), then the answer to the request.
            for _ in 0..4 {
                mh.msg_control = cbuf.as_mut_ptr().cast();
                mh.msg_controllen = std::mem::size_of_val(&cbuf) as _;
                let n = libc::recvmsg(fd, &mut mh, 0);
                if n < (NLMSG_HDRLEN + 4) as isize {
                    return 14;
                }
                if mh.msg_controllen != 0 {
                    return 15; // something came with it: a descriptor
                }
                let ty = u16::from_ne_bytes([buf[4], buf[5]]);
                let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
                let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
                if seq == 5 {
                    return if ty == NLMSG_ERROR && err == -libc::EPERM {
                        0
                    } else {
                        16
                    };
                }
            }
            17
        })
    }
}
