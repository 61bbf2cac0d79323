//! The handover: asking the mirror for its region's memfd over its socket (`MSG_MAP`).

use std::os::fd::OwnedFd;
use std::path::Path;

use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::{NLMSG_ERROR, NLM_F_REQUEST};
use nlkit_wire::{ErrorMsg, Message, MessageBuilder, NLMSG_HDRLEN};

use crate::error::{Result, ViewError};
use crate::schema::{MAP_VERSION, MSG_MAP};

/// The sequence number of the map request (one request per connection).
const SEQ: u32 = 1;

/// Connects to the mirror at `path`, asks for its region and returns the region's memfd.
///
/// `Socket::connect_unix` refuses a server that runs as neither our effective uid nor root
/// (`SO_PEERCRED`), so the fd comes from the mirror we trust; the mirror checks us the same
/// way and answers `EPERM` ([`ViewError::Refused`]) to a client of another uid.
pub(crate) fn request_region(path: &Path) -> Result<OwnedFd> {
    let mut sock = Socket::connect_unix(path, Protocol::Route)?;
    let mut req = MessageBuilder::with_capacity(NLMSG_HDRLEN);
    req.begin(MSG_MAP, NLM_F_REQUEST, SEQ);
    req.finish()
        .map_err(|_| ViewError::Handover("cannot build the request"))?;
    sock.send(req.as_bytes())?;
    let mut buf = [0u8; 4096];
    let mut fds = Vec::new();
    let n = sock.recv_with_fds(&mut buf, &mut fds)?;
    parse_answer(&buf[..n], fds)
}

/// Reads the answer: one `MSG_MAP` message with the layout version and at least one fd (the
/// first is the region; any extra one is closed), or the mirror's `NLMSG_ERROR`.
pub(crate) fn parse_answer(bytes: &[u8], mut fds: Vec<OwnedFd>) -> Result<OwnedFd> {
    let (m, _) = Message::parse(bytes).map_err(|_| ViewError::Handover("not a Netlink message"))?;
    if m.seq() != SEQ {
        return Err(ViewError::Handover("answer to another request"));
    }
    match m.ty() {
        NLMSG_ERROR => {
            let e = ErrorMsg::parse(&m).map_err(|_| ViewError::Handover("bad NLMSG_ERROR"))?;
            Err(if e.errno == 0 {
                ViewError::Handover("an acknowledgement instead of the region")
            } else {
                ViewError::Refused { errno: e.errno }
            })
        }
        MSG_MAP => {
            let p = m.payload();
            let v = p
                .get(..4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(ViewError::Handover("no layout version"))?;
            if v != MAP_VERSION {
                return Err(ViewError::Version {
                    found: v,
                    expected: MAP_VERSION,
                });
            }
            if fds.is_empty() {
                return Err(ViewError::Handover("no file descriptor"));
            }
            // Extra descriptors (none expected) are closed when `fds` drops.
            Ok(fds.swap_remove(0))
        }
        _ => Err(ViewError::Handover("unexpected message type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn fd() -> OwnedFd {
        rustix::fs::memfd_create("nlkit-view-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap()
    }

    /// A message of type `ty` with `payload`.
    fn msg(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN];
        nlkit_wire::MessageHeader {
            len: (NLMSG_HDRLEN + payload.len()) as u32,
            ty,
            flags: 0,
            seq: SEQ,
            pid: 0,
        }
        .write(&mut m);
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn answers_are_checked() {
        let ok = msg(MSG_MAP, &MAP_VERSION.to_ne_bytes());
        assert!(parse_answer(&ok, vec![fd(), fd()]).is_ok());
        assert!(matches!(
            parse_answer(&ok, vec![]),
            Err(ViewError::Handover(_))
        ));
        let other = MAP_VERSION + 1;
        let v2 = msg(MSG_MAP, &other.to_ne_bytes());
        assert!(matches!(
            parse_answer(&v2, vec![fd()]),
            Err(ViewError::Version { found, .. }) if found == other
        ));
        // An error answer: EPERM, then the echoed request header.
        let mut p = (-libc::EPERM).to_ne_bytes().to_vec();
        p.extend_from_slice(&msg(MSG_MAP, &[]));
        let err = parse_answer(&msg(NLMSG_ERROR, &p), vec![]).unwrap_err();
        assert!(err.is_permission_denied(), "{err:?}");
        // Garbage.
        for junk in [&[][..], &[1, 2, 3], &ok[..10], &msg(0x55, &[1; 8])] {
            assert!(parse_answer(junk, vec![fd()]).is_err());
        }
    }
}
