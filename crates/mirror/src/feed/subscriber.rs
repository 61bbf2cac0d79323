//! One client's subscription: which groups it follows and its cursor (its position in the
//! shared log: no per-client copy of events), and sending it what follows, never blocking.
//!
//! A subscriber's buffer is its socket's buffer plus `max_lag` events: when its socket is
//! full and the log's head runs more than `max_lag` events past where it was when the socket
//! filled up, or its cursor leaves the log, it is sent an overrun notice — `NLMSG_ERROR` with `-ENOBUFS` and the feed trailer
//! (`FEED_OVERRUN`, position = the last event it was sent) — as soon as its socket has room,
//! and its subscription ends. It can resume from that position while the log holds it.

use std::os::fd::BorrowedFd;

use nlkit_wire::consts::*;
use nlkit_wire::feed::{FeedMark, FEED_OVERRUN};
use nlkit_wire::{MessageBuilder, Messages, NLMSG_HDRLEN};
use rustix::io::Errno;
use rustix::net::{send, SendFlags};

use super::{Feed, FeedEntry};
use crate::tables::{TableId, TableSet};

/// Largest datagram of events sent at once (as the server's replies).
const DATAGRAM: usize = 32 * 1024;

/// Which feed entries a subscriber receives (what its groups would deliver from the kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub tables: TableSet,
    ct_new: bool,
    ct_update: bool,
    ct_destroy: bool,
}

impl Filter {
    /// The filter of `groups` of `protocol` (`NETLINK_ROUTE` or `NETLINK_NETFILTER`); `Err`
    /// names the first group the mirror does not mirror.
    pub(crate) fn from_groups(protocol: u32, groups: &[u32]) -> Result<Filter, u32> {
        let mut f = Filter::default();
        for &g in groups {
            match (protocol as i32, g) {
                (NETLINK_ROUTE, RTNLGRP_LINK) => f.tables.add(TableId::Links),
                (NETLINK_ROUTE, RTNLGRP_IPV4_IFADDR) => f.tables.add(TableId::Addrs4),
                (NETLINK_ROUTE, RTNLGRP_IPV6_IFADDR) => f.tables.add(TableId::Addrs6),
                (NETLINK_ROUTE, RTNLGRP_IPV4_ROUTE) => f.tables.add(TableId::Routes4),
                (NETLINK_ROUTE, RTNLGRP_IPV6_ROUTE) => f.tables.add(TableId::Routes6),
                (NETLINK_ROUTE, RTNLGRP_NEXTHOP) => f.tables.add(TableId::Nexthops),
                (NETLINK_ROUTE, RTNLGRP_NEIGH) => {
                    f.tables.add(TableId::Neigh4);
                    f.tables.add(TableId::Neigh6);
                }
                (NETLINK_NETFILTER, NFNLGRP_CONNTRACK_NEW) => f.ct_new = true,
                (NETLINK_NETFILTER, NFNLGRP_CONNTRACK_UPDATE) => f.ct_update = true,
                (NETLINK_NETFILTER, NFNLGRP_CONNTRACK_DESTROY) => f.ct_destroy = true,
                _ => return Err(g),
            }
        }
        if f.ct_new || f.ct_update || f.ct_destroy {
            f.tables.add(TableId::Conntrack);
        }
        Ok(f)
    }

    /// Adds another filter's groups.
    pub(crate) fn add(&mut self, o: Filter) {
        self.tables.0 |= o.tables.0;
        self.ct_new |= o.ct_new;
        self.ct_update |= o.ct_update;
        self.ct_destroy |= o.ct_destroy;
    }

    /// Whether the subscriber receives `e`.
    pub(crate) fn wants(&self, e: &FeedEntry) -> bool {
        if !self.tables.contains(e.table) {
            return false;
        }
        if e.table != TableId::Conntrack {
            return true;
        }
        let Some((ty, flags)) = e.msgs.get(4..8).map(|h| {
            (
                u16::from_ne_bytes([h[0], h[1]]),
                u16::from_ne_bytes([h[2], h[3]]),
            )
        }) else {
            return false;
        };
        if ty == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE) {
            self.ct_destroy
        } else if flags & NLM_F_CREATE != 0 {
            self.ct_new
        } else {
            self.ct_update
        }
    }
}

/// A connection's subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// The last position sent (or skipped by the filter).
    pub cursor: u64,
    pub filter: Filter,
    /// The subscriber fell behind: the overrun notice is still to be sent.
    pub overrun: bool,
    /// Its socket was full at the last send.
    pub blocked: bool,
    /// The feed's head when its socket filled up.
    blocked_head: u64,
    /// Its connection's send buffer has been set (by the poll thread).
    pub sized: bool,
}

impl Subscription {
    pub(crate) fn new(cursor: u64, filter: Filter) -> Self {
        Subscription {
            cursor,
            filter,
            overrun: false,
            blocked: false,
            blocked_head: 0,
            sized: false,
        }
    }
}

/// What a pump did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// Everything up to the head is sent.
    CaughtUp,
    /// The socket is full: wait for room (`EPOLLOUT`).
    Blocked,
    /// The datagram budget is used up: more is pending.
    More,
    /// The overrun notice was sent: the subscription is over.
    Ended,
    /// The connection failed: close it.
    Failed,
}

fn send_now(fd: BorrowedFd<'_>, b: &[u8]) -> Result<bool, ()> {
    loop {
        match send(fd, b, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(false),
            Err(_) => return Err(()),
        }
    }
}

/// An `NLMSG_ERROR` of `-errno` (sequence number `seq`, a request header `req` echoed) with
/// the feed trailer `mark`.
pub(crate) fn feed_error(
    seq: u32,
    req: &[u8; NLMSG_HDRLEN],
    errno: i32,
    mark: FeedMark,
) -> Vec<u8> {
    let mut b = MessageBuilder::with_capacity(64);
    b.begin(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, seq);
    b.raw(&(-errno).to_ne_bytes());
    b.raw(req);
    let _ = b.finish();
    let mut v = b.as_bytes().to_vec();
    mark.append_to(&mut v, 0);
    v
}

/// Sends `sub` what follows its cursor, at most `budget` datagrams, never waiting.
pub(crate) fn pump(
    fd: BorrowedFd<'_>,
    sub: &mut Subscription,
    feed: &Feed,
    max_lag: u64,
    budget: usize,
    buf: &mut Vec<u8>,
) -> Pumped {
    // Room again (or another wake-up): did it miss more than it may while full? (`blocked`
    // stays set until a send succeeds, so the count runs from when the socket filled up.)
    if sub.blocked && feed.head().saturating_sub(sub.blocked_head) > max_lag {
        sub.overrun = true;
    }
    let block = |sub: &mut Subscription| {
        if !sub.blocked {
            sub.blocked = true;
            sub.blocked_head = feed.head();
        }
        Pumped::Blocked
    };
    for _ in 0..budget {
        if sub.overrun {
            let mark = FeedMark {
                position: sub.cursor,
                epoch: feed.epoch(),
                flags: FEED_OVERRUN,
            };
            let notice = feed_error(0, &[0; NLMSG_HDRLEN], libc::ENOBUFS, mark);
            return match send_now(fd, &notice) {
                Ok(true) => Pumped::Ended,
                Ok(false) => {
                    sub.blocked = true;
                    Pumped::Blocked
                }
                Err(()) => Pumped::Failed,
            };
        }
        buf.clear();
        let last = {
            let log = feed.read();
            if sub.cursor + 1 < log.first() {
                sub.overrun = true;
                continue;
            }
            let mut last = sub.cursor;
            for e in log.after(sub.cursor) {
                if buf.len() >= DATAGRAM {
                    break;
                }
                last = e.pos;
                if !sub.filter.wants(e) {
                    continue;
                }
                let mark = FeedMark {
                    position: e.pos,
                    epoch: feed.epoch(),
                    flags: e.flags,
                };
                for m in Messages::new(&e.msgs).flatten() {
                    let start = buf.len();
                    buf.extend_from_slice(m.bytes());
                    mark.append_to(buf, start);
                }
            }
            last
        };
        if last == sub.cursor {
            return Pumped::CaughtUp;
        }
        if buf.is_empty() {
            sub.cursor = last;
            continue;
        }
        match send_now(fd, buf) {
            Ok(true) => {
                sub.cursor = last;
                sub.blocked = false;
            }
            Ok(false) => return block(sub),
            Err(()) => return Pumped::Failed,
        }
    }
    Pumped::More
}
