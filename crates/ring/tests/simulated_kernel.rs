//! The ring path, against a simulated kernel writer thread over a real shared mapping: VALID
//! frames, length-0 frames skipped, SKIP frames, COPY frames whose message travels through a
//! socket, wrap-around, would-block, and a corrupted frame reported as an error.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;

use nlkit_ring::{
    FrameKind, FrameMeta, FrameStatus, FrameStore, MappedFrames, MappedRegion, RingError,
    RingReceiver, RingRequest, RingSender,
};
use rustix::net::{socketpair, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

fn rings(
    req: RingRequest,
) -> (
    RingSender<MappedFrames>,
    RingReceiver<MappedFrames>,
    MappedFrames,
) {
    let region = Arc::new(MappedRegion::anonymous_shared(req.ring_bytes()).unwrap());
    let frames = MappedFrames::new(region, 0, req).unwrap();
    // SAFETY: one sender (the simulated kernel) and one receiver, both following the protocol;
    // the third handle is only used to corrupt frames on purpose, while no one else touches them.
    unsafe {
        (
            RingSender::new(frames.clone()),
            RingReceiver::new(frames.clone()),
            frames,
        )
    }
}

fn seqpacket() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

/// Message `i`: 1..=3000 bytes, so some exceed the 2 KiB frame and go as COPY.
fn message(i: u32) -> Vec<u8> {
    let len = 1 + (i as usize * 37) % 3000;
    (0..len).map(|k| (i as usize + k) as u8).collect()
}

#[test]
fn simulated_kernel_writer_valid_copy_skip_and_wrap() {
    const N: u32 = 5000;
    let req = RingRequest::new(2048, 8).unwrap();
    let (mut tx, mut rx, _) = rings(req);
    let (kernel_sock, user_sock) = seqpacket();
    let kernel = thread::spawn(move || {
        let mut i = 0;
        let mut empty_sent = false;
        while i < N {
            let msg = message(i);
            let meta = FrameMeta {
                group: i,
                pid: 0,
                uid: 1000,
                gid: 1000,
            };
            let r = if msg.len() > tx.capacity() {
                if !tx.has_free_frame() {
                    Err(RingError::WouldBlock)
                } else {
                    // The kernel's order: queue on the socket first, then mark COPY.
                    rustix::net::send(&kernel_sock, &msg, SendFlags::empty()).unwrap();
                    tx.try_send_copy(msg.len() as u32, meta)
                }
            } else if i % 97 == 0 && !empty_sent {
                // An empty VALID frame (the kernel's "error while building"): skipped by readers.
                if tx.try_send(&[], meta).is_ok() {
                    empty_sent = true;
                }
                continue;
            } else {
                tx.try_send(&msg, meta)
            };
            match r {
                Ok(()) => {
                    i += 1;
                    empty_sent = false;
                }
                Err(RingError::WouldBlock) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut sockbuf = vec![0u8; 4096];
    let mut got = 0u32;
    let mut empty_seen = 0;
    while got < N {
        match rx.try_recv() {
            Ok(frame) => {
                let want = message(got);
                assert_eq!(frame.meta().group, got);
                assert_eq!(frame.meta().uid, 1000);
                match frame.kind() {
                    FrameKind::Valid => assert_eq!(frame.payload(), &want[..]),
                    FrameKind::Copy => {
                        assert_eq!(frame.len(), want.len());
                        let n = rustix::net::recv(&user_sock, &mut sockbuf[..], RecvFlags::empty())
                            .unwrap()
                            .0;
                        assert_eq!(&sockbuf[..n], &want[..]);
                    }
                }
                got += 1;
            }
            Err(RingError::WouldBlock) => {
                empty_seen += 1;
                thread::yield_now()
            }
            Err(e) => panic!("{e}"),
        }
    }
    kernel.join().unwrap();
    assert!(matches!(rx.try_recv(), Err(RingError::WouldBlock)));
    assert!(rx.head() < req.frame_nr);
    let _ = empty_seen;
}

#[test]
fn full_ring_would_block_and_skip_frames_are_passed_over() {
    let req = RingRequest::new(2048, 2).unwrap();
    let (mut tx, mut rx, frames) = rings(req);
    assert!(tx.try_send(b"a", FrameMeta::default()).is_ok());
    assert!(tx.try_send(b"b", FrameMeta::default()).is_ok());
    assert_eq!(
        tx.try_send(b"c", FrameMeta::default()),
        Err(RingError::WouldBlock)
    );
    assert!(matches!(
        tx.try_send(&[0; 3000], FrameMeta::default()),
        Err(RingError::TooLarge { .. })
    ));
    // The consumer marks frame 0 SKIP-able from the producer's side: simulate a SKIP frame.
    frames
        .status(0)
        .store(FrameStatus::Skip as u32, Ordering::Release);
    assert_eq!(rx.try_recv().unwrap().payload(), b"b");
    assert!(matches!(rx.try_recv(), Err(RingError::WouldBlock)));
    // Zero-copy in-place send.
    let mut w = tx.try_reserve().unwrap();
    w.buf()[..3].copy_from_slice(b"xyz");
    w.commit(3, FrameMeta::default()).unwrap();
    let mut buf = Vec::new();
    assert_eq!(rx.try_recv_into(&mut buf).unwrap().0, FrameKind::Valid);
    assert_eq!(buf, b"xyz");
    // An abandoned reservation returns the frame.
    drop(tx.try_reserve().unwrap());
    assert!(tx.has_free_frame());
}

#[test]
fn corrupted_frames_are_errors_not_crashes() {
    let req = RingRequest::new(2048, 4).unwrap();
    let (mut tx, mut rx, frames) = rings(req);
    tx.try_send(b"ok", FrameMeta::default()).unwrap();
    // Corrupt the length of frame 0 to exceed the frame.
    frames.write_body(0, |body| {
        // SAFETY: test-only: frame 0 is VALID and nobody reads it concurrently.
        unsafe { body.cast::<u32>().write_unaligned(1_000_000) }
    });
    let err = rx.try_recv().unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    // An unknown status word.
    frames.status(0).store(77, Ordering::Release);
    assert!(matches!(
        rx.try_recv(),
        Err(RingError::BadStatus { status: 77, .. })
    ));
}
