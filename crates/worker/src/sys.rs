//! `sendmsg`/`recvmsg` with descriptors, and eventfd helpers.
//!
//! Every send uses `MSG_NOSIGNAL` (a dead peer is `EPIPE`, never SIGPIPE, whoever hosts us);
//! every receive uses `MSG_CMSG_CLOEXEC` (no received descriptor leaks into a later exec) and
//! checks `MSG_TRUNC`/`MSG_CTRUNC`. Received descriptors become `OwnedFd` inside rustix's
//! `recvmsg`, before any validation that could fail, so error paths cannot leak them.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::header::MAX_FDS;

/// Sends `parts` as one message with `fds` attached. `Err(Errno::AGAIN)` when `nonblocking` and
/// the socket is full.
pub(crate) fn send_msg(
    sock: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> Result<(), Errno> {
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::TOOMANYREFS);
    }
    let mut flags = SendFlags::NOSIGNAL;
    if nonblocking {
        flags |= SendFlags::DONTWAIT;
    }
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, flags) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receives one message into `buf`, appending its descriptors to `fds`. `Ok(0)` is EOF.
/// `EINTR` is returned to the caller (the worker checks its stop flag).
pub(crate) fn recv_msg(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> Result<usize, RecvError> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if nonblocking {
        flags |= RecvFlags::DONTWAIT;
    }
    let mut iov = [IoSliceMut::new(buf)];
    let msg = rustix::net::recvmsg(sock, &mut iov, &mut control, flags).map_err(RecvError::Sys)?;
    for cmsg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = cmsg {
            fds.extend(rights);
        }
    }
    if msg
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
    {
        return Err(RecvError::Truncated);
    }
    Ok(msg.bytes)
}

/// Why a receive failed.
#[derive(Debug)]
pub(crate) enum RecvError {
    Sys(Errno),
    Truncated,
}

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )?)
}

/// Adds one to an eventfd (wakes its poller).
pub(crate) fn eventfd_signal(fd: impl AsFd) {
    // EAGAIN (counter saturated) still leaves the fd readable: nothing to do.
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets an eventfd; returns whether it had been signalled.
pub(crate) fn eventfd_drain(fd: impl AsFd) -> bool {
    let mut b = [0u8; 8];
    matches!(rustix::io::read(fd, &mut b), Ok(8))
}
