//! [`Out`]: one client's output — replies packed into datagrams of at most [`CHUNK`] bytes,
//! with headers patched for the client and `NLM_F_DUMP_INTR` set once a watched table changed.
//!
//! Sends never block the thread indefinitely: the connection is non-blocking, and a send that
//! finds the client's socket full waits in `poll(2)` for room or for the shutdown, up to the
//! [`Link`]'s send timeout counted from when that stall began. A stall that reaches the
//! timeout kills the link: every later send on it fails at once (no second wait for the
//! error message), so a client that stops reading is dropped after the configured time.

use std::cell::Cell;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nlkit_wire::consts::*;
use nlkit_wire::{align, MessageBuilder, MessageHeader, MessageHeaderMut, NLMSG_HDRLEN};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{send, sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

/// One client connection as the senders see it.
///
/// Concurrency contract: used by the one serving thread that holds the connection (`dead`
/// is a `Cell`: the type is not `Sync`).
pub(crate) struct Link<'a> {
    fd: BorrowedFd<'a>,
    /// The mirror's shutdown descriptor: a waiting send gives up when it becomes readable.
    stop: BorrowedFd<'a>,
    send_timeout: Duration,
    /// A stall timed out, the shutdown came, or a send failed: nothing more is sent.
    dead: Cell<bool>,
}

impl<'a> Link<'a> {
    pub(crate) fn new(fd: BorrowedFd<'a>, stop: BorrowedFd<'a>, send_timeout: Duration) -> Self {
        Link {
            fd,
            stop,
            send_timeout,
            dead: Cell::new(false),
        }
    }

    /// Whether the link failed (the connection must be closed).
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.get()
    }

    /// The client's connection.
    pub(crate) fn fd(&self) -> BorrowedFd<'a> {
        self.fd
    }

    /// Sends one datagram, waiting for room at most `send_timeout` from the start of the
    /// stall.
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.send_passing(bytes, None)
    }

    /// [`send`](Self::send), passing `pass` along with the datagram (`SCM_RIGHTS`).
    pub(crate) fn send_passing(
        &self,
        bytes: &[u8],
        pass: Option<BorrowedFd<'_>>,
    ) -> io::Result<()> {
        if self.dead.get() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let r = self.send_inner(bytes, pass);
        if r.is_err() {
            self.dead.set(true);
        }
        r
    }

    fn send_once(&self, bytes: &[u8], pass: Option<BorrowedFd<'_>>) -> rustix::io::Result<usize> {
        let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        let Some(fd) = pass else {
            return send(self.fd, bytes, flags);
        };
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(Errno::NOBUFS);
        }
        sendmsg(self.fd, &[io::IoSlice::new(bytes)], &mut control, flags)
    }

    fn send_inner(&self, bytes: &[u8], pass: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let mut stalled_since = None;
        loop {
            match self.send_once(bytes, pass) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
            let since = *stalled_since.get_or_insert_with(Instant::now);
            let left = self.send_timeout.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read within the send timeout",
                ));
            }
            let mut fds = [
                PollFd::new(&self.fd, PollFlags::OUT),
                PollFd::new(&self.stop, PollFlags::IN),
            ];
            match poll(&mut fds, Some(&crate::stop::timespec(left))) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            if !fds[1].revents().is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "the mirror is shutting down",
                ));
            }
        }
    }
}

use nlkit_table::{ChangeSeq, SeqSnapshot};

/// Largest datagram the server sends, like the kernel's dump skbs (~32 KiB).
pub(crate) const CHUNK: usize = 32 * 1024;

/// The output of one request: at most one datagram is buffered (the output queue is bounded
/// by one chunk plus the socket's send buffer); a send waits for room up to the link's send
/// timeout (see the module docs).
pub(crate) struct Out<'a> {
    link: &'a Link<'a>,
    buf: Vec<u8>,
    /// Where the messages of the current datagram start (all of `buf`).
    pub seq: u32,
    pub pid: u32,
    watch: Vec<(&'a ChangeSeq, SeqSnapshot)>,
    /// A watched table changed: every message from now on carries `NLM_F_DUMP_INTR`.
    pub intr: bool,
    pub bytes_sent: usize,
}

impl<'a> Out<'a> {
    pub(crate) fn new(link: &'a Link<'a>, seq: u32, pid: u32) -> Self {
        Out {
            link,
            buf: Vec::with_capacity(CHUNK + 4096),
            seq,
            pid,
            watch: Vec::new(),
            intr: false,
            bytes_sent: 0,
        }
    }

    /// Starts watching a table for the rest of this dump.
    pub(crate) fn watch(&mut self, seq: &'a ChangeSeq) {
        self.watch.push((seq, seq.snapshot()));
    }

    /// Flags the rest of this dump `NLM_F_DUMP_INTR` whatever the watched tables did: the
    /// dump may be incomplete (a table walk skipped a slot the writer kept mid-change).
    pub(crate) fn interrupt(&mut self) {
        self.intr = true;
    }

    fn check(&mut self) {
        if !self.intr && self.watch.iter().any(|(s, snap)| s.changed_since(*snap)) {
            self.intr = true;
        }
    }

    /// Appends already-complete messages (one stored entry), patching each header with the
    /// client's sequence number and port id and `flags`.
    pub(crate) fn push(&mut self, msgs: &[u8], flags: u16) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.extend_from_slice(msgs);
        self.patch_from(start, flags);
        self.maybe_flush()
    }

    /// Appends with a closure that writes raw messages to the buffer.
    pub(crate) fn push_with(&mut self, flags: u16, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let start = self.buf.len();
        f(&mut self.buf);
        self.patch_from(start, flags);
        self.maybe_flush()
    }

    fn patch_from(&mut self, start: usize, flags: u16) {
        let (seq, pid) = (self.seq, self.pid);
        // The messages are our own; a malformed one (a bug) only ends the walk.
        let _ = MessageHeaderMut::for_each(&mut self.buf[start..], |_, mut h| {
            h.set_flags(flags);
            h.set_seq(seq);
            h.set_pid(pid);
        });
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the buffered datagram. If a watched table changed, its multipart messages are
    /// flagged `NLM_F_DUMP_INTR` first.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.check();
        if self.intr {
            let _ = MessageHeaderMut::for_each(&mut self.buf, |_, mut h| {
                if h.get().flags & NLM_F_MULTI != 0 {
                    h.insert_flags(NLM_F_DUMP_INTR);
                }
            });
        }
        self.link.send(&self.buf)?;
        self.bytes_sent += self.buf.len();
        self.buf.clear();
        Ok(())
    }

    /// Ends a dump with `NLMSG_DONE` (flagged if any watched table changed) and sends it.
    pub(crate) fn done(&mut self) -> io::Result<()> {
        self.check();
        let mut b = MessageBuilder::with_capacity(32);
        let mut flags = NLM_F_MULTI;
        if self.intr {
            flags |= NLM_F_DUMP_INTR;
        }
        b.begin(NLMSG_DONE, flags, self.seq);
        b.raw(&0i32.to_ne_bytes());
        let _ = b.finish();
        self.append_with_pid(b.as_bytes());
        self.flush()
    }

    /// Appends an `NLMSG_ERROR` for `request` (header echoed, payload capped) with an
    /// extended-ack message; `errno == 0` is an acknowledgement.
    pub(crate) fn error(
        &mut self,
        request: &MessageHeader,
        errno: i32,
        text: &str,
    ) -> io::Result<()> {
        let mut b = MessageBuilder::with_capacity(64 + text.len());
        let mut flags = NLM_F_CAPPED;
        if !text.is_empty() {
            flags |= NLM_F_ACK_TLVS;
        }
        b.begin(NLMSG_ERROR, flags, request.seq);
        b.raw(&(-errno).to_ne_bytes());
        let mut hdr = [0u8; NLMSG_HDRLEN];
        request.write(&mut hdr);
        b.raw(&hdr);
        if !text.is_empty() {
            b.attr_str(NLMSGERR_ATTR_MSG, text);
        }
        let _ = b.finish();
        self.append_with_pid(b.as_bytes());
        self.maybe_flush()
    }

    /// Appends raw reply messages (from the kernel) with only the port id patched.
    pub(crate) fn push_raw_reply(&mut self, msg: &[u8]) -> io::Result<()> {
        self.append_with_pid(msg);
        self.maybe_flush()
    }

    /// Appends one message (padded to 4 bytes) addressed to the client's port id.
    fn append_with_pid(&mut self, msg: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(msg);
        self.buf.resize(start + align(msg.len()), 0);
        if let Ok(mut h) = MessageHeaderMut::new(&mut self.buf[start..]) {
            h.set_pid(self.pid);
        }
    }
}
