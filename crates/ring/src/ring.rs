//! The two ends of a ring: [`RingSender`] (producer) and [`RingReceiver`] (consumer).
//!
//! Protocol, per frame (the memory-mapped-netlink rules):
//! - producer: sees UNUSED (Acquire), stores RESERVED, writes the body, then publishes VALID or
//!   COPY with a Release store and advances its head (wrapping after the last frame);
//! - consumer: loads the status (Acquire); VALID: copies the header once, exposes the message;
//!   COPY: one message waits on the socket; SKIP or VALID with length 0: passed over; UNUSED or
//!   RESERVED: nothing ready. Releasing stores UNUSED (Release) so the producer cannot overwrite
//!   bytes still being read.
//!
//! Each side keeps its own head index; nothing else is shared.

use std::fmt;

use crate::layout::{FrameMeta, FrameStatus, FRAME_HEADER_LEN};
use crate::sync::{AtomicU32, Ordering};
use crate::{FrameStore, HeapFrames, RingError};

/// Offset of the message inside a frame body (the body starts after the status word).
const BODY_PAYLOAD: usize = FRAME_HEADER_LEN - 4;

/// Builds a sender and a receiver over one in-process ring (threads, tests, models).
///
/// ```
/// use nlkit_ring::{ring_pair, FrameMeta, HeapFrames, RingRequest};
/// let (mut tx, mut rx) = ring_pair(HeapFrames::new(RingRequest::new(128, 2).unwrap()));
/// tx.try_send(b"one", FrameMeta::default()).unwrap();
/// let got = rx.try_recv().unwrap();
/// assert_eq!(got.payload(), b"one");
/// ```
pub fn ring_pair(
    frames: HeapFrames,
) -> (
    RingSender<std::sync::Arc<HeapFrames>>,
    RingReceiver<std::sync::Arc<HeapFrames>>,
) {
    let frames = std::sync::Arc::new(frames);
    // SAFETY: the store is fresh and private to this function: exactly one sender and one
    // receiver exist, and both follow the protocol.
    unsafe { (RingSender::new(frames.clone()), RingReceiver::new(frames)) }
}

fn read_header(body: *const u8) -> (u32, FrameMeta) {
    let mut raw = [0u8; BODY_PAYLOAD];
    // SAFETY: every body is at least `FRAME_HEADER_LEN` bytes (checked by `RingRequest`); the
    // header is copied exactly once, then only the copy is used.
    unsafe { std::ptr::copy_nonoverlapping(body, raw.as_mut_ptr(), BODY_PAYLOAD) };
    let word = |i: usize| u32::from_ne_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    (
        word(0),
        FrameMeta {
            group: word(4),
            pid: word(8),
            uid: word(12),
            gid: word(16),
        },
    )
}

fn write_header(body: *mut u8, len: u32, meta: FrameMeta) {
    let mut raw = [0u8; BODY_PAYLOAD];
    for (i, v) in [len, meta.group, meta.pid, meta.uid, meta.gid]
        .into_iter()
        .enumerate()
    {
        raw[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: as in `read_header`; the producer owns the frame while writing.
    unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), body, BODY_PAYLOAD) };
}

/// The consuming end of a ring.
///
/// Concurrency contract: `head` is private to this end; the frame at `head` belongs to this end
/// once its status reads VALID/COPY/SKIP (Acquire) until it stores UNUSED (Release).
pub struct RingReceiver<S: FrameStore> {
    store: S,
    head: u32,
    frame_nr: u32,
    capacity: usize,
}

impl<S: FrameStore> fmt::Debug for RingReceiver<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingReceiver")
            .field("head", &self.head)
            .field("frame_nr", &self.frame_nr)
            .finish()
    }
}

/// What a received frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// The message is in the frame ([`ReceivedFrame::payload`]).
    Valid,
    /// The message (of [`ReceivedFrame::len`] bytes) is waiting on the socket: read exactly one.
    Copy,
}

/// A received frame: a zero-copy view of the message, released (set UNUSED) when dropped.
///
/// The length and credentials were copied out once when the view was made. The payload bytes
/// stay in shared memory: a well-behaved peer never writes a frame it has published, but a
/// faulty one could, so parse the payload once (or copy it) and never re-read a length from it.
pub struct ReceivedFrame<'a, S: FrameStore> {
    rx: &'a mut RingReceiver<S>,
    kind: FrameKind,
    len: u32,
    meta: FrameMeta,
    data: *const u8,
}

impl<S: FrameStore> fmt::Debug for ReceivedFrame<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedFrame")
            .field("kind", &self.kind)
            .field("len", &self.len)
            .field("meta", &self.meta)
            .finish()
    }
}

impl<S: FrameStore> ReceivedFrame<'_, S> {
    /// Whether the message is in the frame or on the socket.
    pub fn kind(&self) -> FrameKind {
        self.kind
    }
    /// The message length (for COPY: the length of the message waiting on the socket).
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Whether the message is empty (never for VALID frames, which skip length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Group and credentials from the frame header.
    pub fn meta(&self) -> FrameMeta {
        self.meta
    }
    /// The message bytes in the frame; empty for a COPY frame.
    pub fn payload(&self) -> &[u8] {
        match self.kind {
            // SAFETY: `len <= capacity` was checked when the view was made; the frame is ours
            // until this view drops (we hold `&mut` of the receiver).
            FrameKind::Valid => unsafe { std::slice::from_raw_parts(self.data, self.len as usize) },
            FrameKind::Copy => &[],
        }
    }
}

impl<S: FrameStore> Drop for ReceivedFrame<'_, S> {
    fn drop(&mut self) {
        self.rx.release_head();
    }
}

impl<S: FrameStore> RingReceiver<S> {
    /// The consuming end of the ring in `store`.
    ///
    /// # Safety
    /// Across every thread and process using this ring there is at most one receiver and one
    /// sender, and the sender follows the frame protocol (it touches a frame only while the
    /// status word gives it to the sender).
    pub unsafe fn new(store: S) -> Self {
        let req = store.request();
        Self {
            store,
            head: 0,
            frame_nr: req.frame_nr,
            capacity: req.frame_capacity(),
        }
    }

    /// Index of the next frame to read.
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Largest message a frame holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the frame at the head holds something (VALID, COPY or SKIP): a cheap check for
    /// wake-up protocols.
    pub fn is_ready(&self) -> bool {
        self.head_status().load(Ordering::Acquire) >= FrameStatus::Valid as u32
    }

    fn head_status(&self) -> &AtomicU32 {
        self.store.status(self.head)
    }

    fn release_head(&mut self) {
        self.head_status()
            .store(FrameStatus::Unused as u32, Ordering::Release);
        self.head = if self.head + 1 == self.frame_nr {
            0
        } else {
            self.head + 1
        };
    }

    /// Takes the next message: `Err(WouldBlock)` when nothing is ready.
    ///
    /// SKIP frames and VALID frames of length 0 are released and passed over. An unknown status
    /// or a VALID length larger than a frame is an error, and the ring stays stopped at that
    /// frame (the peer is broken).
    pub fn try_recv(&mut self) -> Result<ReceivedFrame<'_, S>, RingError> {
        for _ in 0..=self.frame_nr {
            let raw = self.head_status().load(Ordering::Acquire);
            let kind = match FrameStatus::from_raw(raw) {
                Some(FrameStatus::Unused | FrameStatus::Reserved) => {
                    return Err(RingError::WouldBlock)
                }
                Some(FrameStatus::Skip) => {
                    self.release_head();
                    continue;
                }
                Some(FrameStatus::Valid) => FrameKind::Valid,
                Some(FrameStatus::Copy) => FrameKind::Copy,
                None => {
                    return Err(RingError::BadStatus {
                        frame: self.head,
                        status: raw,
                    })
                }
            };
            let (len, meta, data) = self.store.read_body(self.head, |body| {
                let (len, meta) = read_header(body);
                // SAFETY: the payload starts inside the body (bodies exceed the header).
                (len, meta, unsafe { body.add(BODY_PAYLOAD) })
            });
            if kind == FrameKind::Valid {
                if len == 0 {
                    self.release_head();
                    continue;
                }
                if len as usize > self.capacity {
                    return Err(RingError::BadLength {
                        frame: self.head,
                        len,
                        capacity: self.capacity,
                    });
                }
            }
            return Ok(ReceivedFrame {
                rx: self,
                kind,
                len,
                meta,
                data,
            });
        }
        Err(RingError::WouldBlock)
    }

    /// Copies the next VALID message into `buf` (cleared first) and releases the frame; for a
    /// COPY frame releases it and returns its length so the caller reads the socket.
    pub fn try_recv_into(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> Result<(FrameKind, usize, FrameMeta), RingError> {
        let got = self.try_recv()?;
        let (kind, len, meta) = (got.kind, got.len as usize, got.meta);
        buf.clear();
        if kind == FrameKind::Valid {
            let head = got.rx.head;
            buf.reserve(len);
            got.rx.store.read_body(head, |body| {
                // SAFETY: `len <= capacity` (checked in `try_recv`); `buf` has room for `len`.
                unsafe {
                    std::ptr::copy_nonoverlapping(body.add(BODY_PAYLOAD), buf.as_mut_ptr(), len);
                    buf.set_len(len);
                }
            });
        }
        drop(got);
        Ok((kind, len, meta))
    }
}

/// The producing end of a ring.
///
/// Concurrency contract: `head` is private to this end; the frame at `head` belongs to this end
/// while its status reads UNUSED (Acquire) or RESERVED (set by this end), until it publishes
/// VALID/COPY with a Release store.
pub struct RingSender<S: FrameStore> {
    store: S,
    head: u32,
    frame_nr: u32,
    capacity: usize,
}

impl<S: FrameStore> fmt::Debug for RingSender<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingSender")
            .field("head", &self.head)
            .field("frame_nr", &self.frame_nr)
            .finish()
    }
}

/// A claimed (RESERVED) frame being written in place; [`commit`](Self::commit) publishes it,
/// dropping it un-committed returns the frame to UNUSED.
pub struct FrameWriter<'a, S: FrameStore> {
    tx: &'a mut RingSender<S>,
    data: *mut u8,
    committed: bool,
}

impl<S: FrameStore> fmt::Debug for FrameWriter<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameWriter")
            .field("frame", &self.tx.head)
            .finish()
    }
}

impl<S: FrameStore> FrameWriter<'_, S> {
    /// The frame's message area ([`RingSender::capacity`] bytes).
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: the frame is RESERVED by us; the consumer does not touch it until we publish.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.tx.capacity) }
    }

    /// Publishes the first `len` bytes as a VALID message (Release) and advances.
    pub fn commit(mut self, len: usize, meta: FrameMeta) -> Result<(), RingError> {
        if len > self.tx.capacity {
            return Err(RingError::TooLarge {
                len,
                capacity: self.tx.capacity,
            });
        }
        self.committed = true;
        self.tx.publish(FrameStatus::Valid, len as u32, meta, None);
        Ok(())
    }
}

impl<S: FrameStore> Drop for FrameWriter<'_, S> {
    fn drop(&mut self) {
        if !self.committed {
            self.tx
                .store
                .status(self.tx.head)
                .store(FrameStatus::Unused as u32, Ordering::Relaxed);
        }
    }
}

impl<S: FrameStore> RingSender<S> {
    /// The producing end of the ring in `store`.
    ///
    /// # Safety
    /// Same contract as [`RingReceiver::new`]: one sender, one receiver, protocol followed.
    pub unsafe fn new(store: S) -> Self {
        let req = store.request();
        Self {
            store,
            head: 0,
            frame_nr: req.frame_nr,
            capacity: req.frame_capacity(),
        }
    }

    /// Index of the next frame to fill.
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Largest message a frame holds; anything longer goes through the socket (COPY).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the frame at the head is free.
    pub fn has_free_frame(&self) -> bool {
        self.store.status(self.head).load(Ordering::Acquire) == FrameStatus::Unused as u32
    }

    fn claim(&mut self) -> Result<(), RingError> {
        let status = self.store.status(self.head);
        if status.load(Ordering::Acquire) != FrameStatus::Unused as u32 {
            return Err(RingError::WouldBlock);
        }
        status.store(FrameStatus::Reserved as u32, Ordering::Relaxed);
        Ok(())
    }

    fn publish(&mut self, status: FrameStatus, len: u32, meta: FrameMeta, payload: Option<&[u8]>) {
        self.store.write_body(self.head, |body| {
            write_header(body, len, meta);
            if let Some(p) = payload {
                // SAFETY: `p.len() <= capacity` was checked; the frame is RESERVED by us.
                unsafe {
                    std::ptr::copy_nonoverlapping(p.as_ptr(), body.add(BODY_PAYLOAD), p.len())
                };
            }
        });
        self.store
            .status(self.head)
            .store(status as u32, Ordering::Release);
        self.head = if self.head + 1 == self.frame_nr {
            0
        } else {
            self.head + 1
        };
    }

    /// Copies `payload` into the next frame and publishes it VALID.
    ///
    /// `Err(TooLarge)`: send it through the socket and call [`try_send_copy`](Self::try_send_copy).
    /// `Err(WouldBlock)`: no free frame; wait for the consumer (or queue).
    pub fn try_send(&mut self, payload: &[u8], meta: FrameMeta) -> Result<(), RingError> {
        if payload.len() > self.capacity {
            return Err(RingError::TooLarge {
                len: payload.len(),
                capacity: self.capacity,
            });
        }
        self.claim()?;
        self.publish(
            FrameStatus::Valid,
            payload.len() as u32,
            meta,
            Some(payload),
        );
        Ok(())
    }

    /// Claims the next frame for writing in place (zero-copy send).
    pub fn try_reserve(&mut self) -> Result<FrameWriter<'_, S>, RingError> {
        self.claim()?;
        let data = self.store.write_body(self.head, |body| {
            // SAFETY: the payload area lies inside the body.
            unsafe { body.add(BODY_PAYLOAD) }
        });
        Ok(FrameWriter {
            tx: self,
            data,
            committed: false,
        })
    }

    /// Publishes a COPY frame for a `len`-byte message the caller has *already* queued on the
    /// socket (socket first, then COPY: ring order stays the one ordering authority).
    pub fn try_send_copy(&mut self, len: u32, meta: FrameMeta) -> Result<(), RingError> {
        self.claim()?;
        self.publish(FrameStatus::Copy, len, meta, None);
        Ok(())
    }
}
