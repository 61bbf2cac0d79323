//! [`FeedFollower`]: following the mirror's change feed in the mapping.
//!
//! The feed is a ring of numbered entries (positions 1, 2, 3, …) that the mirror appends one
//! per change and publishes with one store; each entry carries the mirror's tag (which table,
//! which kind of change: see the schema) and the change's bytes. Following is reading
//! position after position: [`next`](FeedFollower::next) never blocks and makes no system
//! call; [`wait`](FeedFollower::wait) sleeps on a futex word in the mapping (`FUTEX_WAIT`,
//! no spinning) until the mirror publishes, which wakes every waiting reader with one
//! `FUTEX_WAKE` however many there are. A follower that falls behind by more than the ring
//! holds gets [`ViewError::ResyncRequired`]: read the tables again, then follow from now.

use std::time::Duration;

use nlkit_shm::{FeedReader, RegionView, ShmError};

use crate::error::{Result, ViewError};
use crate::schema::{FeedTag, FEED_OBJECT};
use crate::MirrorView;

/// One change read from the feed (its bytes went to the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedChange {
    /// Its position (1, 2, 3, …: the order the mirror applied the changes in).
    pub pos: u64,
    /// The tag decoded: table, kind of change, epoch (`None`: a tag this client does not
    /// know, from a newer mirror).
    pub tag: Option<FeedTag>,
    /// The tag word as the mirror wrote it.
    pub raw_tag: u64,
    /// Bytes appended to the caller's buffer: the change's normalised messages (none when
    /// [`FeedTag::truncated`]: too large for the ring; read it over the socket).
    pub len: usize,
}

/// A reader of the change feed at a position.
///
/// The feed is a ring of numbered entries (positions 1, 2, 3, …) that the mirror appends, one
/// per change, and publishes with one store; each entry carries the mirror's tag (which
/// table, which kind of change) and the change's bytes. [`next`](Self::next) never blocks and
/// makes no system call; [`wait`](Self::wait) sleeps on a futex word in the mapping
/// (`FUTEX_WAIT`, no spinning) until the mirror publishes, which wakes every waiting reader
/// with one `FUTEX_WAKE` however many there are. A follower that falls more than the ring
/// holds behind gets [`ViewError::ResyncRequired`]: read the tables again (a walk), then
/// follow from now ([`MirrorView::follow_now`]).
///
/// ```no_run
/// let view = nlkit_view::MirrorView::open("/run/nlkit/mirror.sock")?;
/// let mut feed = view.follow_now()?;
/// let mut buf = Vec::new();
/// loop {
///     buf.clear();
///     match feed.next(&mut buf)? {
///         Some(c) => println!("change {} ({:?}): {} bytes", c.pos, c.tag, c.len),
///         None => { feed.wait(Some(std::time::Duration::from_secs(1)))?; }
///     }
/// }
/// # Ok::<(), nlkit_view::ViewError>(())
/// ```
#[derive(Debug)]
pub struct FeedFollower<'v> {
    reader: FeedReader<'v, RegionView>,
    pos: u64,
}

impl MirrorView {
    fn feed_reader(&self) -> Result<FeedReader<'_, RegionView>> {
        let off = match self.region.find(FEED_OBJECT) {
            Ok(off) => off,
            Err(ShmError::NotFound(_)) => return Err(ViewError::NoFeed),
            Err(e) => return Err(ViewError::shm(e)),
        };
        FeedReader::open(&self.region, off).map_err(ViewError::shm)
    }

    /// A follower whose first entry is the next change the mirror publishes.
    pub fn follow_now(&self) -> Result<FeedFollower<'_>> {
        let reader = self.feed_reader()?;
        let pos = reader.next_pos().map_err(ViewError::shm)?;
        Ok(FeedFollower { reader, pos })
    }

    /// A follower whose first entry is the one at `pos` (positions start at 1). A position
    /// the ring no longer holds gives [`ViewError::ResyncRequired`] on the first read.
    pub fn follow_from(&self, pos: u64) -> Result<FeedFollower<'_>> {
        Ok(FeedFollower {
            reader: self.feed_reader()?,
            pos: pos.max(1),
        })
    }
}

impl FeedFollower<'_> {
    /// The position of the next entry this follower reads.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The entry at the follower's position, if published: appends its bytes to `out` and
    /// moves on. `Ok(None)`: nothing new (no system call either way).
    pub fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<FeedChange>> {
        let mark = out.len();
        match self.reader.read(self.pos, out) {
            Ok(Some(e)) => {
                self.pos = e.pos.saturating_add(1);
                Ok(Some(FeedChange {
                    pos: e.pos,
                    tag: FeedTag::from_word(e.tag),
                    raw_tag: e.tag,
                    len: e.len,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                out.truncate(mark);
                Err(ViewError::shm(e))
            }
        }
    }

    /// Waits until the entry at the follower's position is published, or `timeout` passes
    /// (`None`: forever); returns whether it is. A futex wait on the mapping: no spinning.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        self.reader.wait(self.pos, timeout).map_err(ViewError::shm)
    }

    /// The next entry, waiting up to `timeout` for one.
    pub fn next_wait(
        &mut self,
        out: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Option<FeedChange>> {
        if let Some(e) = self.next(out)? {
            return Ok(Some(e));
        }
        if self.wait(timeout)? {
            return self.next(out);
        }
        Ok(None)
    }
}
