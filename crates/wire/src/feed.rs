//! The nlkit mirror's change feed on the wire: the subscribe request a client sends, and the
//! [`FeedMark`] trailer the mirror appends to every message of the feed.
//!
//! Both live in the mirror's private namespace, chosen far above every kernel value:
//!
//! * [`NLKIT_MSG_FEED_SUBSCRIBE`] (`0x7ff0`) is a request type the kernel never uses (rtnetlink
//!   types end below `0x100`; nfnetlink types are `subsys << 8 | msg` with subsystems below
//!   `0x20`). Its payload is a [`FeedRequest`].
//! * [`NLKIT_ATTR_FEED`] (`0x3ff0`, the top of the 14-bit attribute type space) is an attribute appended as the **last** attribute of each
//!   event (after the kernel's own attributes, `nlmsg_len` grown by [`FEED_ATTR_LEN`]), of the
//!   `NLMSG_DONE` that ends a snapshot, and of the `NLMSG_ERROR` answers of the feed (ack,
//!   overrun, resync required). Its payload is `position: u64, epoch: u64, flags: u32` in host
//!   byte order. A parser that does not know it skips it as any unknown attribute, so code
//!   that reads kernel events reads the mirror's feed unchanged.
//!
//! ```
//! use nlkit_wire::feed::{FeedMark, FEED_SYNTHESIZED};
//! use nlkit_wire::{consts::*, MessageBuilder, RtMsg};
//!
//! let mut b = MessageBuilder::new();
//! b.begin(RTM_DELROUTE, 0, 0);
//! b.header(&RtMsg { family: AF_INET, ..Default::default() });
//! b.finish().unwrap();
//! let mut msg = b.as_bytes().to_vec();
//! let mark = FeedMark { position: 42, epoch: 7, flags: FEED_SYNTHESIZED };
//! mark.append_to(&mut msg, 0);
//! assert_eq!(FeedMark::of(&msg), Some(mark));
//! assert!(mark.is_synthesized());
//! ```

use crate::{align, NLA_HDRLEN, NLMSG_HDRLEN};

/// The mirror's subscribe request type (see the [module docs](self)).
pub const NLKIT_MSG_FEED_SUBSCRIBE: u16 = 0x7ff0;
/// The feed trailer attribute's type (see the [module docs](self)).
pub const NLKIT_ATTR_FEED: u16 = 0x3ff0;
/// Bytes the trailer adds to a message (attribute header and 20 bytes of payload).
pub const FEED_ATTR_LEN: usize = NLA_HDRLEN + 20;

/// The mirror removed the object without a kernel notification for it (a route gone with
/// its link, a neighbour flushed, an entry a verification dump no longer lists) or changed it
/// from a resync dump: the event is the mirror's, the kernel sent none.
pub const FEED_SYNTHESIZED: u32 = 1;
/// On the `NLMSG_DONE` that ends a snapshot: the snapshot is the state at `position`, and
/// the events that follow are those after it.
pub const FEED_SNAPSHOT_DONE: u32 = 2;
/// On an `NLMSG_ERROR` of `-ENOBUFS`: the client fell behind; `position` is the last event
/// it was sent. Resume from it while the log holds it.
pub const FEED_OVERRUN: u32 = 4;
/// On an `NLMSG_ERROR` of `-ESTALE`: the resume position is no longer in the log (or the
/// epoch is another mirror's): take a new snapshot. `position` is the log's head.
pub const FEED_RESYNC_REQUIRED: u32 = 8;
/// On the acknowledgement of a subscription: events after `position` follow.
pub const FEED_SUBSCRIBED: u32 = 16;

/// The trailer of a feed message: where it is in the mirror's one sequence of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedMark {
    /// The change's position (from 1, never reused while the mirror runs).
    pub position: u64,
    /// The mirror's epoch (random per mirror start): a position of another epoch is stale.
    pub epoch: u64,
    /// `FEED_*` bits.
    pub flags: u32,
}

impl FeedMark {
    /// Whether the event was synthesized by the mirror ([`FEED_SYNTHESIZED`]).
    pub fn is_synthesized(&self) -> bool {
        self.flags & FEED_SYNTHESIZED != 0
    }

    /// The trailer of one message (`msg` starts with its `nlmsghdr`), if it ends with one.
    pub fn of(msg: &[u8]) -> Option<FeedMark> {
        let len = u32::from_ne_bytes(msg.get(..4)?.try_into().ok()?) as usize;
        let msg = msg.get(..len)?;
        if len < NLMSG_HDRLEN + FEED_ATTR_LEN {
            return None;
        }
        let a = &msg[len - FEED_ATTR_LEN..];
        let alen = u16::from_ne_bytes([a[0], a[1]]) as usize;
        let aty = u16::from_ne_bytes([a[2], a[3]]);
        if alen != FEED_ATTR_LEN || aty != NLKIT_ATTR_FEED {
            return None;
        }
        let u64_at = |o: usize| u64::from_ne_bytes(a[o..o + 8].try_into().unwrap_or([0; 8]));
        Some(FeedMark {
            position: u64_at(4),
            epoch: u64_at(12),
            flags: u32::from_ne_bytes(a[20..24].try_into().unwrap_or([0; 4])),
        })
    }

    /// Appends the trailer to the message starting at `start` in `buf` (which must end with
    /// that message, padded or not) and grows its `nlmsg_len`.
    pub fn append_to(&self, buf: &mut Vec<u8>, start: usize) {
        let end = start + align(buf.len() - start);
        buf.resize(end, 0);
        buf.extend_from_slice(&(FEED_ATTR_LEN as u16).to_ne_bytes());
        buf.extend_from_slice(&NLKIT_ATTR_FEED.to_ne_bytes());
        buf.extend_from_slice(&self.position.to_ne_bytes());
        buf.extend_from_slice(&self.epoch.to_ne_bytes());
        buf.extend_from_slice(&self.flags.to_ne_bytes());
        let len = (buf.len() - start) as u32;
        if buf.len() >= start + 4 {
            buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// With the changes applied after the request (like joining a kernel group).
    Now,
    /// With a snapshot of the groups' tables consistent at a position P (records with the
    /// request's sequence number and `NLM_F_MULTI`, ended by an `NLMSG_DONE` carrying
    /// [`FEED_SNAPSHOT_DONE`] and P), then every change after P.
    Snapshot,
    /// With the changes after `position` of `epoch`, or an `-ESTALE` answer
    /// ([`FEED_RESYNC_REQUIRED`]) when the log no longer holds them.
    Resume {
        /// The epoch the position belongs to.
        epoch: u64,
        /// The last position the client applied.
        position: u64,
    },
}

/// The payload of a [`NLKIT_MSG_FEED_SUBSCRIBE`] request: `protocol: u32, start: u32,
/// epoch: u64, position: u64, groups: u32 * n` (host byte order). Groups are group numbers
/// of `protocol` (`RTNLGRP_*` for `NETLINK_ROUTE`, `NFNLGRP_CONNTRACK_*` for
/// `NETLINK_NETFILTER`). A subscription on a connection that already has one adds the
/// groups (with [`FeedStart::Now`]) or replaces it (otherwise).
///
/// ```
/// use nlkit_wire::feed::{FeedRequest, FeedStart};
/// let r = FeedRequest { protocol: 0, start: FeedStart::Resume { epoch: 1, position: 9 }, groups: vec![3, 7] };
/// let bytes = r.encode();
/// assert_eq!(FeedRequest::parse(&bytes), Some(r));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRequest {
    /// The Netlink protocol the groups belong to.
    pub protocol: u32,
    /// Where to start.
    pub start: FeedStart,
    /// The groups.
    pub groups: Vec<u32>,
}

impl FeedRequest {
    /// The payload bytes (after the `nlmsghdr`).
    pub fn encode(&self) -> Vec<u8> {
        let (mode, epoch, pos) = match self.start {
            FeedStart::Now => (0u32, 0, 0),
            FeedStart::Snapshot => (1, 0, 0),
            FeedStart::Resume { epoch, position } => (2, epoch, position),
        };
        let mut v = Vec::with_capacity(24 + 4 * self.groups.len());
        v.extend_from_slice(&self.protocol.to_ne_bytes());
        v.extend_from_slice(&mode.to_ne_bytes());
        v.extend_from_slice(&epoch.to_ne_bytes());
        v.extend_from_slice(&pos.to_ne_bytes());
        for g in &self.groups {
            v.extend_from_slice(&g.to_ne_bytes());
        }
        v
    }

    /// Parses a payload (`None` when malformed). At most 64 groups are taken.
    pub fn parse(p: &[u8]) -> Option<FeedRequest> {
        if p.len() < 24 || (p.len() - 24) % 4 != 0 {
            return None;
        }
        let u32_at = |o: usize| u32::from_ne_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | u64::from(u32_at(o + 4)) << 32;
        let start = match u32_at(4) {
            0 => FeedStart::Now,
            1 => FeedStart::Snapshot,
            2 => FeedStart::Resume {
                epoch: u64_at(8),
                position: u64_at(16),
            },
            _ => return None,
        };
        let groups: Vec<u32> = (24..p.len()).step_by(4).map(u32_at).take(64).collect();
        Some(FeedRequest {
            protocol: u32_at(0),
            start,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_round_trip_matches_ne_layout() {
        let r = FeedRequest {
            protocol: 12,
            start: FeedStart::Resume {
                epoch: 0x0102_0304_0506_0708,
                position: u64::MAX - 3,
            },
            groups: vec![1],
        };
        assert_eq!(FeedRequest::parse(&r.encode()), Some(r));
        assert_eq!(FeedRequest::parse(&[0; 23]), None);
        assert_eq!(FeedRequest::parse(&[9; 24]), None);
    }

    #[test]
    fn no_mark_on_short_or_plain_messages() {
        assert_eq!(FeedMark::of(&[]), None);
        assert_eq!(FeedMark::of(&[40, 0, 0, 0]), None);
        let mut m = vec![0u8; 16];
        m[0] = 16;
        assert_eq!(FeedMark::of(&m), None);
        FeedMark::default().append_to(&mut m, 0);
        assert_eq!(m.len(), 40);
        assert_eq!(FeedMark::of(&m), Some(FeedMark::default()));
    }
}
