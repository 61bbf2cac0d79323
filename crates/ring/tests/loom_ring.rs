//! `loom` model of the frame ring: one producer and one consumer on a two-frame ring.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p nlkit-ring --release --test loom_ring`.
//! loom explores the interleavings (and the weak-memory reorderings it models) of the status-word
//! protocol and reports any body access that the Release/Acquire hand-offs fail to order, a
//! frame read twice, or a message lost or reordered across wrap-around.
#![cfg(loom)]

use nlkit_ring::{ring_pair, FrameKind, FrameMeta, HeapFrames, RingError, RingRequest};

fn small_ring() -> HeapFrames {
    // Two frames of the smallest allowed size: wrap-around happens within three messages.
    HeapFrames::new(RingRequest {
        block_size: 4096,
        block_nr: 1,
        frame_size: 2048,
        frame_nr: 2,
    })
}

#[test]
fn one_producer_one_consumer_in_order() {
    loom::model(|| {
        let (mut tx, mut rx) = ring_pair(small_ring());
        let producer = loom::thread::spawn(move || {
            let mut sent = 0u8;
            while sent < 3 {
                let msg = [sent; 3];
                match tx.try_send(
                    &msg,
                    FrameMeta {
                        group: u32::from(sent),
                        ..FrameMeta::default()
                    },
                ) {
                    Ok(()) => sent += 1,
                    Err(RingError::WouldBlock) => loom::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut got = 0u8;
        let mut buf = Vec::new();
        while got < 3 {
            match rx.try_recv_into(&mut buf) {
                Ok((kind, len, meta)) => {
                    assert_eq!(kind, FrameKind::Valid);
                    assert_eq!(len, 3);
                    assert_eq!(buf, [got; 3]);
                    assert_eq!(meta.group, u32::from(got));
                    got += 1;
                }
                Err(RingError::WouldBlock) => loom::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        producer.join().unwrap();
    });
}

#[test]
fn zero_copy_view_and_copy_frames() {
    loom::model(|| {
        let (mut tx, mut rx) = ring_pair(small_ring());
        let producer = loom::thread::spawn(move || {
            let mut step = 0;
            while step < 3 {
                let r = match step {
                    0 => tx.try_send(b"ab", FrameMeta::default()),
                    1 => tx.try_send_copy(5000, FrameMeta::default()),
                    _ => tx.try_send(&[], FrameMeta::default()),
                };
                match r {
                    Ok(()) => step += 1,
                    Err(RingError::WouldBlock) => loom::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut seen = 0;
        while seen < 2 {
            match rx.try_recv() {
                Ok(frame) => {
                    if seen == 0 {
                        assert_eq!(frame.kind(), FrameKind::Valid);
                        assert_eq!(frame.payload(), b"ab");
                    } else {
                        assert_eq!(frame.kind(), FrameKind::Copy);
                        assert_eq!(frame.len(), 5000);
                    }
                    seen += 1;
                }
                Err(RingError::WouldBlock) => loom::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        producer.join().unwrap();
        // The empty VALID frame is skipped: nothing more to read.
        assert!(matches!(rx.try_recv(), Err(RingError::WouldBlock)));
    });
}
