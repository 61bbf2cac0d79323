//! The feed's subscribe request (`NLKIT_MSG_FEED_SUBSCRIBE`), answered on a serving thread:
//! a follow from now, a resume, or a snapshot then follow. The connection then goes back to
//! the poll thread, which sends it the events after its cursor (`feed::subscriber`).

use std::io;

use nlkit_wire::consts::*;
use nlkit_wire::feed::{
    FeedMark, FeedRequest, FeedStart, FEED_RESYNC_REQUIRED, FEED_SNAPSHOT_DONE, FEED_SUBSCRIBED,
};
use nlkit_wire::{Message, MessageBuilder, NLMSG_HDRLEN};

use super::out::Out;
use super::registry::Ctx;
use crate::feed::snapshot::{snapshot, SnapshotError};
use crate::feed::subscriber::{feed_error, Filter, Subscription};

fn request_header(m: &Message<'_>) -> [u8; NLMSG_HDRLEN] {
    let mut h = [0u8; NLMSG_HDRLEN];
    h.copy_from_slice(&m.bytes()[..NLMSG_HDRLEN]);
    h
}

/// Answers one subscribe request; updates the connection's subscription.
pub(crate) fn subscribe(
    ctx: &Ctx,
    m: &Message<'_>,
    out: &mut Out<'_>,
    sub: &mut Option<Subscription>,
) -> io::Result<()> {
    let feed = &ctx.feed;
    let hdr = m.header();
    let reqhdr = request_header(m);
    let mark = |position, flags| FeedMark {
        position,
        epoch: feed.epoch(),
        flags,
    };
    let Some(req) = FeedRequest::parse(m.payload()) else {
        return out.error(&hdr, libc::EINVAL, "malformed feed subscription");
    };
    let filter = match Filter::from_groups(req.protocol, &req.groups) {
        Ok(f) => f,
        Err(g) => {
            return out.error(
                &hdr,
                libc::EOPNOTSUPP,
                &format!(
                    "group {g} of protocol {} is not mirrored by the feed",
                    req.protocol
                ),
            )
        }
    };
    if filter.tables.contains(crate::TableId::Conntrack) && !ctx.conntrack {
        return out.error(
            &hdr,
            libc::EOPNOTSUPP,
            "this mirror does not mirror conntrack",
        );
    }
    let ack = |position| feed_error(hdr.seq, &reqhdr, 0, mark(position, FEED_SUBSCRIBED));
    match req.start {
        FeedStart::Now => {
            let at = match sub {
                Some(s) => {
                    s.filter.add(filter);
                    s.cursor
                }
                None => {
                    let head = feed.head();
                    *sub = Some(Subscription::new(head, filter));
                    head
                }
            };
            if hdr.flags & NLM_F_ACK != 0 {
                out.push_raw_reply(&ack(at))?;
            }
        }
        FeedStart::Resume { epoch, position } => {
            let (first, head) = {
                let log = feed.read();
                (log.first(), log.head())
            };
            if epoch != feed.epoch() || position > head || position.saturating_add(1) < first {
                *sub = None;
                let e = feed_error(
                    hdr.seq,
                    &reqhdr,
                    libc::ESTALE,
                    mark(head, FEED_RESYNC_REQUIRED),
                );
                out.push_raw_reply(&e)?;
            } else {
                *sub = Some(Subscription::new(position, filter));
                out.push_raw_reply(&ack(position))?;
            }
        }
        FeedStart::Snapshot => {
            *sub = None;
            let r = snapshot(&ctx.tables, feed, filter.tables, &mut |msgs| {
                out.push(msgs, NLM_F_MULTI)
            });
            match r {
                Ok(p1) => {
                    let mut b = MessageBuilder::with_capacity(48);
                    b.begin(NLMSG_DONE, NLM_F_MULTI, hdr.seq);
                    b.raw(&0i32.to_ne_bytes());
                    let _ = b.finish();
                    let mut done = b.as_bytes().to_vec();
                    mark(p1, FEED_SNAPSHOT_DONE).append_to(&mut done, 0);
                    out.push_raw_reply(&done)?;
                    *sub = Some(Subscription::new(p1, filter));
                }
                Err(SnapshotError::Io(e)) => return Err(e),
                Err(SnapshotError::LogTooSmall) => {
                    out.error(
                        &hdr,
                        libc::EAGAIN,
                        "the feed's log is too small for a snapshot at this change rate",
                    )?;
                }
                Err(SnapshotError::Incomplete) => {
                    out.error(
                        &hdr,
                        libc::EAGAIN,
                        "a table entry stayed mid-change during the snapshot; try again",
                    )?;
                }
            }
        }
    }
    Ok(())
}
