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
