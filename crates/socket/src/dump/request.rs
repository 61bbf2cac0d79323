//! Dump setup: the one place a dump request is checked, flagged and numbered.
//!
//! Every dump path of this crate — [`Socket::dump`], [`Socket::dump_pipelined`],
//! [`SharedDump`](super::SharedDump) (and so [`consistent_dump`](crate::consistent_dump)),
//! the async wrapper's `dump`, and callers that read the replies themselves — sends its
//! request through [`Socket::send_dump`], which calls [`prepare_dump_request`].

use nlkit_wire::consts::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use nlkit_wire::{align, MessageBuilder, MessageHeaderMut, NLMSG_HDRLEN};

use crate::{Error, Result, Socket};

/// Makes `req` a dump request numbered `seq`: checks that it holds exactly one finished
/// message (no second message, no trailing bytes), then sets `NLM_F_REQUEST | NLM_F_DUMP |
/// NLM_F_ACK` (keeping the caller's other flags, e.g. `NLM_F_ROOT`-only filters stay within
/// `NLM_F_DUMP`) and the sequence number.
///
/// `NLM_F_ACK` changes nothing on success — the kernel (and the mirror) end a dump with
/// `NLMSG_DONE` and send no acknowledgement — but a peer that refuses the dump answers with
/// an `NLMSG_ERROR` either way; the flag is set so that every dump is sent the same bytes.
pub(crate) fn prepare_dump_request(req: &mut MessageBuilder, seq: u32) -> Result<()> {
    const NOT_ONE: &str = "a dump request must be exactly one finished message";
    let total = req.as_bytes().len();
    if req.message_count() != 1 {
        return Err(Error::InvalidRequest(NOT_ONE));
    }
    let mut h =
        MessageHeaderMut::new(req.as_bytes_mut()).map_err(|_| Error::InvalidRequest(NOT_ONE))?;
    let len = h.get().len as usize;
    // `len` may be unaligned: the builder pads only before the next message.
    if len < NLMSG_HDRLEN || (total != len && total != align(len)) {
        return Err(Error::InvalidRequest(NOT_ONE));
    }
    h.insert_flags(NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK);
    h.set_seq(seq);
    Ok(())
}

impl Socket {
    /// Sends the dump request in `req` (one finished message) with `NLM_F_REQUEST |
    /// NLM_F_DUMP | NLM_F_ACK` and a fresh sequence number, which it returns; the caller
    /// then reads the replies with [`recv`](Socket::recv) until the `NLMSG_DONE` (or
    /// `NLMSG_ERROR`) with that number. [`dump`](Socket::dump) does all of this for you.
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, RecvBuffer, Socket};
    /// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
    /// let mut sock = Socket::open(Protocol::Route)?;
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETLINK, 0, 0);
    /// req.header(&IfInfoMsg::default());
    /// req.finish().unwrap();
    /// let seq = sock.send_dump(&mut req)?;
    /// let mut buf = RecvBuffer::new();
    /// 'dump: loop {
    ///     sock.recv(&mut buf)?;
    ///     while let Some(m) = buf.next_message() {
    ///         let m = m?;
    ///         if m.seq() == seq && matches!(m.ty(), NLMSG_DONE | NLMSG_ERROR) {
    ///             break 'dump;
    ///         }
    ///     }
    /// }
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn send_dump(&mut self, req: &mut MessageBuilder) -> Result<u32> {
        let seq = self.alloc_seq(1);
        prepare_dump_request(req, seq)?;
        self.send(req.as_bytes())?;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use nlkit_wire::consts::{NLM_F_ROOT, RTM_GETLINK};
    use nlkit_wire::{MessageHeader, Messages};

    use super::*;

    fn one(flags: u16, payload: &[u8]) -> MessageBuilder {
        let mut b = MessageBuilder::new();
        b.begin(RTM_GETLINK, flags, 0);
        b.raw(payload);
        b.finish().unwrap();
        b
    }

    fn header(b: &MessageBuilder) -> MessageHeader {
        MessageHeader::parse(b.as_bytes()).unwrap()
    }

    #[test]
    fn a_request_without_dump_flags_gets_them_and_the_seq() {
        let mut b = one(0, &[0; 16]);
        prepare_dump_request(&mut b, 77).unwrap();
        let h = header(&b);
        assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK);
        assert_eq!((h.seq, h.len, h.ty), (77, 32, RTM_GETLINK));
    }

    #[test]
    fn the_callers_flags_and_an_ack_flag_are_kept() {
        let mut b = one(NLM_F_ROOT | NLM_F_ACK, &[]);
        prepare_dump_request(&mut b, 1).unwrap();
        assert_eq!(header(&b).flags, NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK);
        // Preparing twice (a restarted dump) only renumbers it.
        prepare_dump_request(&mut b, 2).unwrap();
        assert_eq!(header(&b).flags, NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK);
        assert_eq!(header(&b).seq, 2);
    }

    #[test]
    fn an_unaligned_length_is_one_message() {
        // A message of 19 bytes padded to 20 (as a peer may have built it).
        let mut b = one(0, &[1, 2, 3]);
        MessageHeaderMut::new(b.as_bytes_mut()).unwrap().set_len(19);
        prepare_dump_request(&mut b, 5).unwrap();
        assert_eq!((header(&b).len, header(&b).seq), (19, 5));
        assert_eq!(Messages::new(b.as_bytes()).count(), 1);
    }

    #[test]
    fn two_messages_are_refused() {
        let mut b = one(0, &[]);
        b.begin(RTM_GETLINK, 0, 0);
        b.finish().unwrap();
        assert!(matches!(
            prepare_dump_request(&mut b, 1),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn an_over_long_request_is_refused() {
        // Bytes after the message (an open second message) are refused.
        let mut b = one(0, &[0; 4]);
        b.begin(RTM_GETLINK, 0, 0);
        assert_eq!(b.message_count(), 1);
        assert!(matches!(
            prepare_dump_request(&mut b, 1),
            Err(Error::InvalidRequest(_))
        ));
        // A length field longer than the buffer is refused.
        let mut b = one(0, &[0; 4]);
        MessageHeaderMut::new(b.as_bytes_mut()).unwrap().set_len(64);
        assert!(prepare_dump_request(&mut b, 1).is_err());
        // So is one shorter than a header.
        MessageHeaderMut::new(b.as_bytes_mut()).unwrap().set_len(8);
        assert!(prepare_dump_request(&mut b, 1).is_err());
    }

    #[test]
    fn an_unfinished_or_empty_request_is_refused() {
        let mut b = MessageBuilder::new();
        assert!(prepare_dump_request(&mut b, 1).is_err());
        b.begin(RTM_GETLINK, 0, 0);
        assert!(prepare_dump_request(&mut b, 1).is_err());
    }

    #[test]
    fn a_refused_request_is_left_unchanged() {
        let mut b = one(0, &[]);
        b.begin(RTM_GETLINK, 0, 9);
        b.finish().unwrap();
        let before = b.as_bytes().to_vec();
        assert!(prepare_dump_request(&mut b, 1).is_err());
        assert_eq!(b.as_bytes(), &before[..]);
    }
}
