//! `nlmsghdr` views and the receive-buffer iterator.

use crate::{align, Attrs, FamilyHeader, WireError, NLMSG_HDRLEN};

/// The fixed fields of a `struct nlmsghdr`, copied out of a message.
///
/// ```
/// let bytes = [20, 0, 0, 0, 3, 0, 2, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// let h = nlkit_wire::MessageHeader::parse(&bytes).unwrap();
/// assert_eq!((h.len, h.ty, h.flags, h.seq, h.pid), (20, 3, 2, 9, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageHeader {
    /// `nlmsg_len`: header plus payload.
    pub len: u32,
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`: the sender's port id (0 for the kernel).
    pub pid: u32,
}

impl MessageHeader {
    /// Reads the 16 header bytes at the start of `bytes` (native byte order, any alignment).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let h: &[u8; NLMSG_HDRLEN] = bytes
            .get(..NLMSG_HDRLEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::Truncated {
                what: "nlmsghdr",
                needed: NLMSG_HDRLEN,
                available: bytes.len(),
            })?;
        Ok(MessageHeader {
            len: u32::from_ne_bytes([h[0], h[1], h[2], h[3]]),
            ty: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            pid: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        })
    }

    /// Writes the header into the first 16 bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than 16 bytes (a caller bug, never driven by input).
    pub fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.ty.to_ne_bytes());
        out[6..8].copy_from_slice(&self.flags.to_ne_bytes());
        out[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        out[12..16].copy_from_slice(&self.pid.to_ne_bytes());
    }
}

/// A mutable view of the 16 `nlmsghdr` bytes at the start of a buffer: the one way to patch a
/// header field (length, type, flags, sequence number, port id) of a message already written,
/// e.g. to stamp a fresh sequence number on a request or the client's port id on a reply.
///
/// ```
/// use nlkit_wire::{consts::*, MessageBuilder, MessageHeaderMut, Messages};
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_GETLINK, 0, 0);
/// b.finish().unwrap();
/// let mut h = MessageHeaderMut::new(b.as_bytes_mut()).unwrap();
/// h.insert_flags(NLM_F_REQUEST | NLM_F_DUMP);
/// h.set_seq(7);
/// h.set_pid(42);
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// assert_eq!((m.flags(), m.seq(), m.pid()), (NLM_F_REQUEST | NLM_F_DUMP, 7, 42));
/// ```
#[derive(Debug)]
pub struct MessageHeaderMut<'a> {
    bytes: &'a mut [u8; NLMSG_HDRLEN],
}

impl<'a> MessageHeaderMut<'a> {
    /// The header at the start of `buf`; [`WireError::Truncated`] if `buf` is shorter than
    /// 16 bytes. The length field is not checked against `buf` (see
    /// [`for_each`](Self::for_each) for a validating walk).
    pub fn new(buf: &'a mut [u8]) -> Result<Self, WireError> {
        let available = buf.len();
        buf.get_mut(..NLMSG_HDRLEN)
            .and_then(|s| s.try_into().ok())
            .map(|bytes| MessageHeaderMut { bytes })
            .ok_or(WireError::Truncated {
                what: "nlmsghdr",
                needed: NLMSG_HDRLEN,
                available,
            })
    }

    /// Calls `f(offset, header)` for the header of each message in `buf`, in order, where
    /// `offset` is where the message starts. The walk checks each length: a message shorter
    /// than a header or longer than the rest of `buf`, or trailing bytes too short for a
    /// header, stop it with an error (the messages before it have been visited).
    ///
    /// ```
    /// use nlkit_wire::{MessageBuilder, MessageHeaderMut, Messages};
    /// let mut b = MessageBuilder::new();
    /// for _ in 0..3 { b.begin(1, 0, 0); b.finish().unwrap(); }
    /// MessageHeaderMut::for_each(b.as_bytes_mut(), |_, mut h| h.set_pid(9)).unwrap();
    /// assert!(Messages::new(b.as_bytes()).all(|m| m.unwrap().pid() == 9));
    /// ```
    pub fn for_each(
        buf: &mut [u8],
        mut f: impl FnMut(usize, MessageHeaderMut<'_>),
    ) -> Result<(), WireError> {
        let mut off = 0;
        while off < buf.len() {
            let rest = &mut buf[off..];
            let available = rest.len();
            let h = MessageHeaderMut::new(rest)?;
            let len = h.get().len;
            if (len as usize) < NLMSG_HDRLEN || len as usize > available {
                return Err(WireError::MessageLength { len, available });
            }
            f(off, h);
            off += align(len as usize).min(available);
        }
        Ok(())
    }

    /// The header's current fields.
    pub fn get(&self) -> MessageHeader {
        let h = &*self.bytes;
        MessageHeader {
            len: u32::from_ne_bytes([h[0], h[1], h[2], h[3]]),
            ty: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            pid: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        }
    }
    /// Overwrites every field.
    pub fn set(&mut self, h: &MessageHeader) {
        h.write(self.bytes);
    }
    /// Sets `nlmsg_len`.
    pub fn set_len(&mut self, len: u32) {
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
    }
    /// Sets `nlmsg_type`.
    pub fn set_ty(&mut self, ty: u16) {
        self.bytes[4..6].copy_from_slice(&ty.to_ne_bytes());
    }
    /// Sets `nlmsg_flags` to exactly `flags`.
    pub fn set_flags(&mut self, flags: u16) {
        self.bytes[6..8].copy_from_slice(&flags.to_ne_bytes());
    }
    /// Adds `flags` to `nlmsg_flags`, keeping the bits already set.
    pub fn insert_flags(&mut self, flags: u16) {
        let now = self.get().flags;
        self.set_flags(now | flags);
    }
    /// Sets `nlmsg_seq`.
    pub fn set_seq(&mut self, seq: u32) {
        self.bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
    }
    /// Sets `nlmsg_pid`.
    pub fn set_pid(&mut self, pid: u32) {
        self.bytes[12..16].copy_from_slice(&pid.to_ne_bytes());
    }
}

/// A borrowed view of one Netlink message: its validated header and payload.
///
/// The view never copies: [`payload`](Message::payload) borrows the receive buffer.
///
/// ```
/// use nlkit_wire::{consts::*, MessageBuilder, Message};
/// let mut b = MessageBuilder::new();
/// b.begin(NLMSG_NOOP, 0, 1);
/// b.attr_u32(1, 42);
/// b.finish().unwrap();
/// let (m, used) = Message::parse(b.as_bytes()).unwrap();
/// assert_eq!(used, b.as_bytes().len());
/// assert_eq!(m.attrs(0).next().unwrap().unwrap().u32().unwrap(), 42);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    header: MessageHeader,
    bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses the message at the start of `buf`; returns it and the number of bytes to advance
    /// to the next message (its aligned length, clamped to the buffer).
    pub fn parse(buf: &'a [u8]) -> Result<(Self, usize), WireError> {
        let header = MessageHeader::parse(buf)?;
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(WireError::MessageLength {
                len: header.len,
                available: buf.len(),
            });
        }
        let advance = align(len).min(buf.len());
        Ok((
            Message {
                header,
                bytes: &buf[..len],
            },
            advance,
        ))
    }

    /// The header fields.
    pub fn header(&self) -> MessageHeader {
        self.header
    }
    /// `nlmsg_len`.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// True for a message with no payload.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == NLMSG_HDRLEN
    }
    /// `nlmsg_type`.
    pub fn ty(&self) -> u16 {
        self.header.ty
    }
    /// `nlmsg_flags`.
    pub fn flags(&self) -> u16 {
        self.header.flags
    }
    /// `nlmsg_seq`.
    pub fn seq(&self) -> u32 {
        self.header.seq
    }
    /// `nlmsg_pid`: the sender's port id (0 when the kernel sent it).
    pub fn pid(&self) -> u32 {
        self.header.pid
    }
    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[NLMSG_HDRLEN..]
    }
    /// The whole message, header included, exactly as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Reads the family header `H` from the payload and returns it with an iterator over the
    /// attributes that follow it.
    pub fn family_header<H: FamilyHeader>(&self) -> Result<(H, Attrs<'a>), WireError> {
        let p = self.payload();
        let h = H::parse(p)?;
        let start = align(H::LEN).min(p.len());
        Ok((h, Attrs::new(&p[start..])))
    }

    /// The attributes that start `offset` bytes into the payload (after a family header of
    /// that size, rounded up to 4). An offset past the payload yields no attributes.
    pub fn attrs(&self, offset: usize) -> Attrs<'a> {
        let p = self.payload();
        Attrs::new(&p[align(offset).min(p.len())..])
    }
}

/// Iterator over the messages of a receive buffer, yielding one [`Message`] view per message.
///
/// After the first malformed message it yields that error once and then stops, since the
/// boundary of anything that follows is unknown.
///
/// ```
/// use nlkit_wire::{consts::*, MessageBuilder, Messages};
/// let mut b = MessageBuilder::new();
/// for seq in 1..=3 {
///     b.begin(NLMSG_NOOP, 0, seq);
///     b.finish().unwrap();
/// }
/// let seqs: Vec<u32> = Messages::new(b.as_bytes()).map(|m| m.unwrap().seq()).collect();
/// assert_eq!(seqs, [1, 2, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    /// Walks `buf`, which holds zero or more whole messages.
    pub fn new(buf: &'a [u8]) -> Self {
        Messages { rest: buf }
    }
    /// The bytes not yet yielded.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Message::parse(self.rest) {
            Ok((m, adv)) => {
                self.rest = &self.rest[adv..];
                Some(Ok(m))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod header_mut_tests {
    use super::*;
    use crate::MessageBuilder;

    #[test]
    fn setters_patch_only_their_field() {
        let mut b = MessageBuilder::new();
        b.begin(20, 1, 2);
        b.raw(&[7; 4]);
        b.finish().unwrap();
        let mut h = MessageHeaderMut::new(b.as_bytes_mut()).unwrap();
        h.set_ty(30);
        h.insert_flags(0x100);
        h.set_seq(5);
        h.set_pid(6);
        assert_eq!(
            h.get(),
            MessageHeader {
                len: 20,
                ty: 30,
                flags: 0x101,
                seq: 5,
                pid: 6
            }
        );
        h.set_flags(4);
        h.set_len(16);
        assert_eq!(MessageHeader::parse(b.as_bytes()).unwrap().flags, 4);
        assert_eq!(&b.as_bytes()[16..], &[7; 4]);
    }

    #[test]
    fn short_buffer_is_truncated() {
        assert!(matches!(
            MessageHeaderMut::new(&mut [0u8; 15]),
            Err(WireError::Truncated {
                needed: 16,
                available: 15,
                ..
            })
        ));
    }

    #[test]
    fn walk_visits_offsets_and_stops_at_bad_length() {
        let mut b = MessageBuilder::new();
        for _ in 0..2 {
            b.begin(1, 0, 0);
            b.raw(&[1]);
            b.finish().unwrap();
        }
        let mut seen = Vec::new();
        MessageHeaderMut::for_each(b.as_bytes_mut(), |off, _| seen.push(off)).unwrap();
        assert_eq!(seen, [0, 20]);
        // A length past the end: the first message is visited, then the error.
        let mut bytes = b.as_bytes().to_vec();
        bytes[20..24].copy_from_slice(&100u32.to_ne_bytes());
        let mut n = 0;
        let r = MessageHeaderMut::for_each(&mut bytes, |_, _| n += 1);
        assert!(matches!(r, Err(WireError::MessageLength { len: 100, .. })));
        assert_eq!(n, 1);
        // A length shorter than a header.
        bytes[20..24].copy_from_slice(&3u32.to_ne_bytes());
        assert!(MessageHeaderMut::for_each(&mut bytes, |_, _| {}).is_err());
        // Trailing bytes too short for a header.
        let mut tail = b.as_bytes()[..17].to_vec();
        tail[0..4].copy_from_slice(&16u32.to_ne_bytes());
        assert!(matches!(
            MessageHeaderMut::for_each(&mut tail, |_, _| {}),
            Err(WireError::Truncated { .. })
        ));
    }
}
