//! The frame layout shared with the peer: the ring request, the status word and the frame header.
//!
//! The layout is the one memory-mapped netlink used (`struct nl_mmap_req`, `struct nl_mmap_hdr`,
//! `enum nl_mmap_status`), so the same code can drive a kernel ring where a kernel still offers
//! one and the worker's shared-memory channel everywhere else.

use crate::RingError;

/// Alignment of a frame and of a message inside it (`NL_MMAP_MSG_ALIGNMENT`, which is
/// `NLMSG_ALIGNTO`).
pub const FRAME_ALIGN: usize = 4;

/// Size of the frame header (`NL_MMAP_HDRLEN`): six `u32` fields, already aligned.
pub const FRAME_HEADER_LEN: usize = 24;

/// Largest frame size this crate accepts (1 MiB); the kernel's frames were at most a few pages.
pub const MAX_FRAME_SIZE: u32 = 1 << 20;

/// Largest number of frames per ring this crate accepts.
pub const MAX_FRAMES: u32 = 1 << 16;

/// The status word at the start of every frame (`enum nl_mmap_status`).
///
/// ```
/// use nlkit_ring::FrameStatus;
/// assert_eq!(FrameStatus::from_raw(2), Some(FrameStatus::Valid));
/// assert_eq!(FrameStatus::from_raw(9), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum FrameStatus {
    /// The frame belongs to the producer and holds nothing.
    Unused = 0,
    /// The producer has claimed the frame and is writing it.
    Reserved = 1,
    /// The frame holds a message of `len` bytes for the consumer.
    Valid = 2,
    /// The message did not fit (or carries descriptors): read exactly one message from the socket.
    Copy = 3,
    /// The consumer passes over this frame.
    Skip = 4,
}

impl FrameStatus {
    /// Decodes a raw status word; `None` for values no protocol version defines.
    ///
    /// ```
    /// use nlkit_ring::FrameStatus;
    /// assert_eq!(FrameStatus::from_raw(FrameStatus::Copy as u32), Some(FrameStatus::Copy));
    /// ```
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Unused,
            1 => Self::Reserved,
            2 => Self::Valid,
            3 => Self::Copy,
            4 => Self::Skip,
            _ => return None,
        })
    }
}

/// The fields of a frame header after the status word, as copied out of shared memory.
///
/// `len` is the message length; `group`, `pid`, `uid` and `gid` are the multicast group and the
/// sender's credentials the kernel filled in. The worker channel keeps them zero.
///
/// ```
/// use nlkit_ring::FrameMeta;
/// let meta = FrameMeta { group: 1, ..FrameMeta::default() };
/// assert_eq!(meta.pid, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FrameMeta {
    /// Multicast group the message was sent to (`nm_group`).
    pub group: u32,
    /// Sender port id (`nm_pid`).
    pub pid: u32,
    /// Sender user id (`nm_uid`).
    pub uid: u32,
    /// Sender group id (`nm_gid`).
    pub gid: u32,
}

/// A ring request (`struct nl_mmap_req`): how a ring is cut into blocks and frames.
///
/// ```
/// use nlkit_ring::RingRequest;
/// let req = RingRequest::new(4096, 16).unwrap();
/// assert_eq!(req.frame_nr, 16);
/// assert_eq!(req.ring_bytes(), 16 * 4096);
/// assert!(RingRequest { frame_nr: 3, ..req }.validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct RingRequest {
    /// Bytes per block (`nm_block_size`); a multiple of the page size.
    pub block_size: u32,
    /// Number of blocks (`nm_block_nr`).
    pub block_nr: u32,
    /// Bytes per frame, header included (`nm_frame_size`).
    pub frame_size: u32,
    /// Number of frames (`nm_frame_nr`); must equal `block_nr * (block_size / frame_size)`.
    pub frame_nr: u32,
}

impl RingRequest {
    /// A request of `frame_nr` frames of `frame_size` bytes, one page-aligned block per
    /// `page / frame_size` frames (or one block per frame for frames larger than a page).
    pub fn new(frame_size: u32, frame_nr: u32) -> Result<Self, RingError> {
        let page = page_size();
        if frame_size == 0 || frame_nr == 0 {
            return Err(RingError::BadRequest(
                "frame size and count must be non-zero",
            ));
        }
        let block_size = if frame_size as usize >= page {
            round_up(frame_size as usize, page)
        } else {
            page
        };
        let block_size = u32::try_from(block_size)
            .map_err(|_| RingError::BadRequest("block size overflows u32"))?;
        let per_block = (block_size / frame_size).max(1);
        let block_nr = frame_nr.div_ceil(per_block);
        let req = Self {
            block_size,
            block_nr,
            frame_size,
            frame_nr: block_nr * per_block,
        };
        req.validate()?;
        Ok(req)
    }

    /// Checks the request the way the kernel's `netlink_set_ring` did, plus this crate's caps.
    pub fn validate(&self) -> Result<(), RingError> {
        let page = page_size();
        if self.block_nr == 0 || self.block_size == 0 {
            return Err(RingError::BadRequest("no blocks"));
        }
        if self.block_size as usize % page != 0 {
            return Err(RingError::BadRequest("block size is not page aligned"));
        }
        if (self.frame_size as usize) < FRAME_HEADER_LEN + FRAME_ALIGN
            || self.frame_size as usize % FRAME_ALIGN != 0
            || self.frame_size > MAX_FRAME_SIZE
        {
            return Err(RingError::BadRequest("bad frame size"));
        }
        let per_block = self.block_size / self.frame_size;
        if per_block == 0 {
            return Err(RingError::BadRequest("frame larger than block"));
        }
        if u64::from(per_block) * u64::from(self.block_nr) != u64::from(self.frame_nr)
            || self.frame_nr > MAX_FRAMES
        {
            return Err(RingError::BadRequest(
                "frame count does not match the blocks",
            ));
        }
        Ok(())
    }

    /// Bytes of the whole ring (`block_size * block_nr`).
    pub fn ring_bytes(&self) -> usize {
        self.block_size as usize * self.block_nr as usize
    }

    /// Largest message a frame can hold.
    pub fn frame_capacity(&self) -> usize {
        self.frame_size as usize - FRAME_HEADER_LEN
    }

    /// Byte offset of frame `index` from the start of the ring (frames never straddle blocks).
    pub fn frame_offset(&self, index: u32) -> usize {
        let per_block = self.block_size / self.frame_size;
        let block = index / per_block;
        let within = index % per_block;
        block as usize * self.block_size as usize + within as usize * self.frame_size as usize
    }
}

/// The system page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

fn round_up(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_geometry() {
        let req = RingRequest::new(16384, 8).unwrap();
        assert_eq!(req.block_size, 16384);
        assert_eq!(req.frame_offset(3), 3 * 16384);
        let small = RingRequest::new(2048, 5).unwrap();
        assert_eq!(small.frame_nr, 6);
        assert_eq!(small.frame_offset(2), 4096);
        assert_eq!(small.frame_capacity(), 2048 - 24);
    }

    #[test]
    fn request_rejects_garbage() {
        for req in [
            RingRequest {
                block_size: 4096,
                block_nr: 0,
                frame_size: 4096,
                frame_nr: 0,
            },
            RingRequest {
                block_size: 4095,
                block_nr: 1,
                frame_size: 4095,
                frame_nr: 1,
            },
            RingRequest {
                block_size: 4096,
                block_nr: 1,
                frame_size: 8192,
                frame_nr: 1,
            },
            RingRequest {
                block_size: 4096,
                block_nr: 1,
                frame_size: 16,
                frame_nr: 256,
            },
            RingRequest {
                block_size: 4096,
                block_nr: 2,
                frame_size: 4096,
                frame_nr: 3,
            },
        ] {
            assert!(req.validate().is_err(), "{req:?}");
        }
    }
}
