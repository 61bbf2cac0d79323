//! Where frames live: the [`FrameStore`] trait, a heap store for in-process rings and models,
//! and (outside `loom`) shared mappings.

use crate::layout::RingRequest;
use crate::sync::{AtomicU32, BodyCell};

/// Storage for the frames of one ring.
///
/// A frame is `frame_size` bytes: the status word (an atomic `u32`), then the *body*, which is
/// the rest of the header (`len`, `group`, `pid`, `uid`, `gid`) followed by the message.
///
/// Bodies are reached only through [`read_body`](Self::read_body) and
/// [`write_body`](Self::write_body) so that the `loom` model can check every access.
///
/// # Safety
///
/// Implementors guarantee that, for every `index < request().frame_nr`:
/// - `status(index)` is the same atomic for the life of the store;
/// - the pointer passed to the closures points at `request().frame_size - 4` bytes that stay
///   valid while `&self` lives and do not overlap another frame's body or any status word;
/// - `request()` never changes and is valid.
///
/// ```
/// use nlkit_ring::{FrameStore, HeapFrames, RingRequest};
/// let frames = HeapFrames::new(RingRequest::new(256, 4).unwrap());
/// assert_eq!(frames.request().frame_size, 256);
/// ```
pub unsafe trait FrameStore {
    /// The geometry of the ring.
    fn request(&self) -> RingRequest;
    /// The status word of frame `index`.
    fn status(&self, index: u32) -> &AtomicU32;
    /// Runs `f` with a read pointer to the body of frame `index`.
    fn read_body<R>(&self, index: u32, f: impl FnOnce(*const u8) -> R) -> R;
    /// Runs `f` with a write pointer to the body of frame `index`.
    fn write_body<R>(&self, index: u32, f: impl FnOnce(*mut u8) -> R) -> R;
}

// SAFETY: forwards to `T`, which upholds the contract; the `Arc` keeps it alive.
unsafe impl<T: FrameStore> FrameStore for std::sync::Arc<T> {
    fn request(&self) -> RingRequest {
        (**self).request()
    }
    fn status(&self, index: u32) -> &AtomicU32 {
        (**self).status(index)
    }
    fn read_body<R>(&self, index: u32, f: impl FnOnce(*const u8) -> R) -> R {
        (**self).read_body(index, f)
    }
    fn write_body<R>(&self, index: u32, f: impl FnOnce(*mut u8) -> R) -> R {
        (**self).write_body(index, f)
    }
}

/// Frames on the heap: an in-process ring (tests, simulated peers, the `loom` model).
///
/// Concurrency contract: `statuses[i]` is the only word both sides touch freely; `bodies[i]` is
/// written only by the side that owns frame `i` according to its status word (producer while
/// UNUSED/RESERVED, consumer while VALID/COPY/SKIP), and ownership moves with Release/Acquire.
///
/// ```
/// use nlkit_ring::{ring_pair, FrameMeta, HeapFrames, RingRequest};
/// let (mut tx, mut rx) = ring_pair(HeapFrames::new(RingRequest::new(128, 2).unwrap()));
/// tx.try_send(b"hi", FrameMeta::default()).unwrap();
/// assert_eq!(rx.try_recv().unwrap().payload(), b"hi");
/// ```
#[derive(Debug)]
pub struct HeapFrames {
    req: RingRequest,
    statuses: Box<[AtomicU32]>,
    bodies: Box<[BodyCell<Box<[u8]>>]>,
}

impl HeapFrames {
    /// Allocates `req.frame_nr` zeroed (UNUSED) frames. `req` must be valid.
    ///
    /// # Panics
    /// If `req` fails [`RingRequest::validate`] (a programming error, not peer input).
    pub fn new(req: RingRequest) -> Self {
        if let Err(e) = req.validate() {
            panic!("HeapFrames::new: invalid ring request: {e}");
        }
        let body_len = req.frame_size as usize - 4;
        Self {
            req,
            statuses: (0..req.frame_nr).map(|_| AtomicU32::new(0)).collect(),
            bodies: (0..req.frame_nr)
                .map(|_| BodyCell::new(vec![0u8; body_len].into_boxed_slice()))
                .collect(),
        }
    }
}

// SAFETY: `HeapFrames` only hands out raw pointers through the closures; the frame protocol
// (one owner per frame, transferred with Release/Acquire on the status word) orders all body
// accesses, which is exactly what the `loom` model checks.
unsafe impl Sync for HeapFrames {}
// SAFETY: all fields are owned heap data.
unsafe impl Send for HeapFrames {}

// SAFETY: statuses and bodies are allocated once with `frame_nr` entries of the right size.
unsafe impl FrameStore for HeapFrames {
    fn request(&self) -> RingRequest {
        self.req
    }
    fn status(&self, index: u32) -> &AtomicU32 {
        &self.statuses[index as usize]
    }
    fn read_body<R>(&self, index: u32, f: impl FnOnce(*const u8) -> R) -> R {
        // SAFETY: the pointer to the boxed slice is valid; we only read the slice's data pointer.
        self.bodies[index as usize].with(|b| f(unsafe { (*b).as_ptr() }))
    }
    fn write_body<R>(&self, index: u32, f: impl FnOnce(*mut u8) -> R) -> R {
        // SAFETY: as above; the data pointer is derived from a `*mut` to the box.
        self.bodies[index as usize].with_mut(|b| f(unsafe { (*b).as_mut_ptr() }))
    }
}
