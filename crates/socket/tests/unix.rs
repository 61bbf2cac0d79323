//! The Unix `SOCK_SEQPACKET` transport against a tiny scripted Netlink peer in this process
//! (no kernel and no mirror involved): transactions, batches, dumps, shared dumps over a pool,
//! errors with extended-ack text, large datagrams, hang-ups.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nlkit_socket::{
    DumpBuffer, Error, Pool, Protocol, RecvBuffer, SharedDump, Socket, SocketTransport,
    UNIX_MAX_REQUEST,
};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, MessageHeader, Messages, NLMSG_HDRLEN};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// Answered with one object and, if asked, an ack.
const T_GET: u16 = 0x40;
/// Answered with `ENOENT` and an extended-ack text.
const T_FAIL: u16 = 0x41;
/// A dump: [`DUMP_DATAGRAMS`] datagrams of [`DUMP_PER_DATAGRAM`] objects, then `NLMSG_DONE`.
const T_DUMP: u16 = 0x42;
/// One object of [`BIG`] bytes (more than a receive buffer's primary region), then an ack.
const T_BIG: u16 = 0x43;
/// The peer hangs up without answering.
const T_HANGUP: u16 = 0x44;
/// A reply object.
const T_OBJ: u16 = 0x50;

const FAIL_TEXT: &str = "no such object in the test peer";
const DUMP_DATAGRAMS: u32 = 3;
const DUMP_PER_DATAGRAM: u32 = 9;
/// About 36 KiB per dump datagram, like the mirror's.
const DUMP_OBJ_PAYLOAD: usize = 4000;
const BIG: usize = 60 * 1024;

/// A peer listening in a fresh temporary directory; counts the largest request datagram.
struct Peer {
    path: PathBuf,
    largest_request: Arc<AtomicUsize>,
}

impl Peer {
    fn start(tag: &str) -> Peer {
        let dir =
            std::env::temp_dir().join(format!("nlkit-socket-unix-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peer.sock");
        let listener = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
        rustix::net::listen(&listener, 16).unwrap();
        let largest_request = Arc::new(AtomicUsize::new(0));
        let largest = largest_request.clone();
        // Serves until the test process exits.
        std::thread::spawn(move || loop {
            let Ok(conn) = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) else {
                return;
            };
            let largest = largest.clone();
            std::thread::spawn(move || serve(conn, &largest));
        });
        Peer {
            path,
            largest_request,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Builds reply messages; every reply carries a port id that is not 0, which a kernel
/// socket would treat as the requester's and which must not matter here.
fn reply(b: &mut MessageBuilder, ty: u16, flags: u16, seq: u32, payload: &[u8]) {
    b.begin(ty, flags, seq);
    b.raw(payload);
    b.finish().unwrap();
}

fn error(b: &mut MessageBuilder, req: &MessageHeader, errno: i32, text: &str) {
    let flags = NLM_F_CAPPED | if text.is_empty() { 0 } else { NLM_F_ACK_TLVS };
    b.begin(NLMSG_ERROR, flags, req.seq);
    b.raw(&(-errno).to_ne_bytes());
    let mut hdr = [0u8; NLMSG_HDRLEN];
    req.write(&mut hdr);
    b.raw(&hdr);
    if !text.is_empty() {
        b.attr_str(NLMSGERR_ATTR_MSG, text);
    }
    b.finish().unwrap();
}

fn send(conn: &OwnedFd, b: &mut MessageBuilder) -> bool {
    let mut bytes = b.as_bytes().to_vec();
    // A port id the kernel would never put in a reply to port 0.
    nlkit_wire::MessageHeaderMut::for_each(&mut bytes, |_, mut h| h.set_pid(4242)).unwrap();
    b.clear();
    rustix::net::send(conn, &bytes, SendFlags::NOSIGNAL).is_ok()
}

fn serve(conn: OwnedFd, largest: &AtomicUsize) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match rustix::net::recv(&conn, &mut buf[..], RecvFlags::empty()) {
            Ok((0, _)) | Err(_) => return,
            Ok((n, _)) => n,
        };
        largest.fetch_max(n, Ordering::Relaxed);
        let mut out = MessageBuilder::new();
        for m in Messages::new(&buf[..n]) {
            let m = m.unwrap();
            let h = m.header();
            let ack = h.flags & NLM_F_ACK != 0;
            match h.ty {
                T_GET => {
                    reply(&mut out, T_OBJ, 0, h.seq, m.payload());
                    if ack {
                        error(&mut out, &h, 0, "");
                    }
                }
                T_FAIL => error(&mut out, &h, libc::ENOENT, FAIL_TEXT),
                T_DUMP => {
                    assert_eq!(h.flags & NLM_F_DUMP, NLM_F_DUMP);
                    for d in 0..DUMP_DATAGRAMS {
                        for i in 0..DUMP_PER_DATAGRAM {
                            let mut p = vec![0u8; DUMP_OBJ_PAYLOAD];
                            p[..4].copy_from_slice(&(d * DUMP_PER_DATAGRAM + i).to_ne_bytes());
                            reply(&mut out, T_OBJ, NLM_F_MULTI, h.seq, &p);
                        }
                        if !send(&conn, &mut out) {
                            return;
                        }
                    }
                    reply(
                        &mut out,
                        NLMSG_DONE,
                        NLM_F_MULTI,
                        h.seq,
                        &0i32.to_ne_bytes(),
                    );
                }
                T_BIG => {
                    reply(&mut out, T_OBJ, 0, h.seq, &vec![7u8; BIG]);
                    if ack {
                        error(&mut out, &h, 0, "");
                    }
                }
                T_HANGUP => return,
                _ => error(&mut out, &h, libc::EOPNOTSUPP, "unknown type"),
            }
            // One request's answer per datagram, as the mirror does.
            if !out.is_empty() && !send(&conn, &mut out) {
                return;
            }
        }
    }
}

fn request(ty: u16, flags: u16, payload: &[u8]) -> MessageBuilder {
    let mut b = MessageBuilder::new();
    b.begin(ty, flags, 0);
    b.raw(payload);
    b.finish().unwrap();
    b
}

fn dump_index(m: &nlkit_wire::Message<'_>) -> u32 {
    u32::from_ne_bytes(m.payload()[..4].try_into().unwrap())
}

#[test]
fn transact_gets_replies_and_typed_errors() {
    let peer = Peer::start("transact");
    let mut sock = Socket::connect_unix(peer.path(), Protocol::Route).unwrap();
    assert_eq!(sock.transport(), SocketTransport::Unix);
    assert_eq!(sock.port_id(), 0);
    assert!(sock.applied().refused.is_empty());

    let r = sock.transact(&mut request(T_GET, 0, b"abcd")).unwrap();
    assert_eq!(r.len(), 1);
    let m = r.messages().next().unwrap().unwrap();
    assert_eq!((m.ty(), m.payload()), (T_OBJ, &b"abcd"[..]));

    match sock.transact(&mut request(T_FAIL, 0, &[])) {
        Err(Error::Kernel(k)) => {
            assert_eq!(k.errno, libc::ENOENT);
            assert_eq!(k.to_string(), format!("Error: {FAIL_TEXT}."));
        }
        other => panic!("expected a typed ENOENT, got {other:?}"),
    }
    // Replies come from a path, never a port id: nothing was dropped as foreign.
    assert_eq!(sock.stats().foreign_dropped, 0);
    assert!(sock.is_clean());

    // A datagram larger than the buffer's primary region still arrives whole.
    let r = sock.transact(&mut request(T_BIG, 0, &[])).unwrap();
    let m = r.messages().next().unwrap().unwrap();
    assert_eq!(m.payload().len(), BIG);
    assert!(sock.is_clean());
}

#[test]
fn batches_are_split_into_datagrams_the_peer_takes() {
    let peer = Peer::start("batch");
    let mut sock = Socket::connect_unix(peer.path(), Protocol::Netfilter).unwrap();
    let mut batch = MessageBuilder::new();
    let n = 2000u32;
    for i in 0..n {
        batch.begin(if i % 100 == 99 { T_FAIL } else { T_GET }, 0, 0);
        batch.raw(&[i as u8; 100]);
        batch.finish().unwrap();
    }
    assert!(batch.len() > 3 * UNIX_MAX_REQUEST);
    let results = sock.transact_batch(&mut batch).unwrap();
    assert_eq!(results.len(), n as usize);
    for (i, r) in results.iter().enumerate() {
        if i % 100 == 99 {
            assert_eq!(r.as_ref().unwrap_err().errno(), Some(libc::ENOENT));
        } else {
            assert_eq!(r.as_ref().unwrap().len(), 1, "request {i}");
        }
    }
    let largest = peer.largest_request.load(Ordering::Relaxed);
    assert!(
        largest <= UNIX_MAX_REQUEST,
        "sent a {largest}-byte datagram"
    );
    assert!(sock.is_clean());
}

#[test]
fn dumps_stream_and_share_over_a_pool() {
    let peer = Peer::start("dump");
    let total = DUMP_DATAGRAMS * DUMP_PER_DATAGRAM;

    // Socket::dump, streaming.
    let mut sock = Socket::connect_unix(peer.path(), Protocol::Route).unwrap();
    let mut seen = Vec::new();
    let end = sock
        .dump(&mut request(T_DUMP, 0, &[]), |m| {
            seen.push(dump_index(m));
            Ok::<(), Error>(())
        })
        .unwrap();
    assert_eq!(end.received, u64::from(total));
    assert!(!end.interrupted);
    assert_eq!(seen, (0..total).collect::<Vec<_>>());
    assert!(sock.is_clean());

    // A shared dump over a pool of connections, two threads: every object exactly once.
    let pool = Pool::connect_unix(peer.path(), Protocol::Route);
    assert_eq!(pool.transport(), SocketTransport::Unix);
    for _ in 0..2 {
        let dump = SharedDump::start(&pool, &mut request(T_DUMP, 0, &[])).unwrap();
        let mut all: Vec<u32> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut buf = DumpBuffer::new();
                        let mut mine = Vec::new();
                        while let Some(m) = dump.next(&mut buf).unwrap() {
                            mine.push(dump_index(&m));
                        }
                        mine
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        dump.finish().unwrap();
        all.sort_unstable();
        assert_eq!(all, (0..total).collect::<Vec<_>>());
        // The connection went back to the pool and is reused by the next round.
        assert_eq!(pool.idle(), 1);
    }
    // A connection of another protocol is not taken.
    assert!(!pool.put(Socket::connect_unix(peer.path(), Protocol::Generic).unwrap()));
}

#[test]
fn no_groups_and_hang_ups_are_typed_errors() {
    let peer = Peer::start("hangup");
    let mut sock = Socket::connect_unix(peer.path(), Protocol::Route).unwrap();
    // A peer that is not the nlkit mirror refuses the feed's subscribe request.
    match sock.join_group(RTNLGRP_LINK) {
        Err(Error::Kernel(k)) => assert_eq!(k.errno, libc::EOPNOTSUPP, "{k:?}"),
        other => panic!("expected the peer's refusal, got {other:?}"),
    }
    assert!(sock.is_clean(), "a refused join leaves the socket poolable");
    let mut buf = RecvBuffer::new();
    assert!(!sock.try_recv(&mut buf).unwrap(), "nothing queued");

    assert_eq!(
        sock.transact(&mut request(T_HANGUP, 0, &[])),
        Err(Error::PeerClosed)
    );
    assert!(!sock.is_clean());
    let pool = Pool::connect_unix(peer.path(), Protocol::Route);
    assert!(!pool.put(sock), "a closed connection is not pooled");

    let missing = peer.path().with_file_name("nobody-listens.sock");
    match Socket::connect_unix(&missing, Protocol::Route) {
        Err(e @ Error::Connect { .. }) => {
            assert_eq!(e.errno(), Some(libc::ENOENT));
            assert!(e.to_string().contains("nobody-listens.sock"), "{e}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}
