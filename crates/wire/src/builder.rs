//! Writing messages into a reusable buffer.

use std::net::IpAddr;

use crate::consts::NLA_F_NESTED;
use crate::{
    align, FamilyHeader, MessageHeader, MessageHeaderMut, WireError, NLA_HDRLEN, NLMSG_HDRLEN,
};

/// An open nested attribute, returned by [`MessageBuilder::nest_begin`] and closed by
/// [`MessageBuilder::nest_end`], which patches its length.
#[derive(Debug)]
#[must_use = "a nest must be closed with nest_end"]
pub struct Nest(usize);

/// What [`MessageBuilder::finish`] (and every request builder of the typed crates) returns:
/// the finished message's byte range in the builder, or the first error met while building it.
pub type Built = Result<std::ops::Range<usize>, WireError>;

/// Builds one or more Netlink messages into a buffer that is reused across requests.
///
/// Methods never panic and never fail one by one: an attribute too large for its 16-bit
/// length, or a nest closed out of order, is remembered and reported by
/// [`finish`](MessageBuilder::finish). Several finished messages in one buffer form a batch
/// that a socket sends with a single `sendmsg`.
///
/// ```
/// use nlkit_wire::{consts::*, IfAddrMsg, MessageBuilder, Messages};
/// let mut b = MessageBuilder::new();
/// for i in 1..=2u8 {
///     b.begin(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, i as u32);
///     b.header(&IfAddrMsg { family: AF_INET, prefixlen: 24, index: 2, ..Default::default() });
///     b.attr_bytes(IFA_LOCAL, &[10, 0, i, 1]);
///     b.finish().unwrap();
/// }
/// assert_eq!(b.message_count(), 2);
/// assert_eq!(Messages::new(b.as_bytes()).count(), 2);
/// ```
#[derive(Debug, Default, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    /// Offset of the message being built, if one is open.
    open: Option<usize>,
    /// Number of finished messages in `buf`.
    count: usize,
    /// Open nests, innermost last.
    nests: Vec<usize>,
    /// The first error met since `begin`.
    error: Option<WireError>,
}

impl MessageBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder whose buffer has room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        MessageBuilder {
            buf: Vec::with_capacity(cap),
            ..Self::default()
        }
    }

    /// Empties the buffer (keeping its allocation) for the next request or batch.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.open = None;
        self.count = 0;
        self.nests.clear();
        self.error = None;
    }

    /// The finished messages (and any open one) as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Mutable access to the bytes, e.g. to stamp sequence numbers before sending.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// How many messages [`finish`](MessageBuilder::finish) has completed.
    pub fn message_count(&self) -> usize {
        self.count
    }

    /// Starts a message of type `ty` with `flags` and sequence number `seq` (port id 0: the
    /// kernel fills in the sender). A message still open is finished first.
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32) -> &mut Self {
        if self.open.is_some() {
            // An error here is kept and reported by the next `finish`.
            let _ = self.finish();
        }
        self.pad();
        let start = self.buf.len();
        self.buf.resize(start + NLMSG_HDRLEN, 0);
        MessageHeader {
            len: NLMSG_HDRLEN as u32,
            ty,
            flags,
            seq,
            pid: 0,
        }
        .write(&mut self.buf[start..]);
        self.open = Some(start);
        self
    }

    /// Appends a family header (padded to 4 bytes).
    pub fn header<H: FamilyHeader>(&mut self, h: &H) -> &mut Self {
        let start = self.buf.len();
        self.buf.resize(start + align(H::LEN), 0);
        h.write(&mut self.buf[start..start + H::LEN]);
        self
    }

    /// Appends raw payload bytes (padded to 4 bytes).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let n = align(self.buf.len());
        self.buf.resize(n, 0);
    }

    fn fail(&mut self, e: WireError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Appends an attribute of type `ty` (flags allowed) with `payload`.
    pub fn attr_bytes(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = NLA_HDRLEN + payload.len();
        if len > u16::MAX as usize {
            self.fail(WireError::Build("attribute longer than 65535 bytes"));
            return self;
        }
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// Appends a `u8` attribute.
    pub fn attr_u8(&mut self, ty: u16, v: u8) -> &mut Self {
        self.attr_bytes(ty, &[v])
    }
    /// Appends a native-endian `u16` attribute.
    pub fn attr_u16(&mut self, ty: u16, v: u16) -> &mut Self {
        self.attr_bytes(ty, &v.to_ne_bytes())
    }
    /// Appends a native-endian `u32` attribute.
    pub fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr_bytes(ty, &v.to_ne_bytes())
    }
    /// Appends a native-endian `u64` attribute.
    pub fn attr_u64(&mut self, ty: u16, v: u64) -> &mut Self {
        self.attr_bytes(ty, &v.to_ne_bytes())
    }
    /// Appends a big-endian `u16` attribute.
    pub fn attr_be16(&mut self, ty: u16, v: u16) -> &mut Self {
        self.attr_bytes(ty, &v.to_be_bytes())
    }
    /// Appends a big-endian `u32` attribute.
    pub fn attr_be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr_bytes(ty, &v.to_be_bytes())
    }
    /// Appends a big-endian `u64` attribute.
    pub fn attr_be64(&mut self, ty: u16, v: u64) -> &mut Self {
        self.attr_bytes(ty, &v.to_be_bytes())
    }
    /// Appends a NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let len = NLA_HDRLEN + s.len() + 1;
        if len > u16::MAX as usize {
            self.fail(WireError::Build("attribute longer than 65535 bytes"));
            return self;
        }
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
        self
    }
    /// Appends an IP address attribute (4 or 16 bytes, network order).
    pub fn attr_ip(&mut self, ty: u16, ip: IpAddr) -> &mut Self {
        match ip {
            IpAddr::V4(a) => self.attr_bytes(ty, &a.octets()),
            IpAddr::V6(a) => self.attr_bytes(ty, &a.octets()),
        }
    }

    /// Opens a nested attribute of type `ty`; `NLA_F_NESTED` is set, as current kernels expect
    /// with strict validation.
    pub fn nest_begin(&mut self, ty: u16) -> Nest {
        self.nest_begin_flags(ty | NLA_F_NESTED)
    }

    /// Opens a nested attribute with exactly the type field `raw_ty` (for the few legacy
    /// families that reject `NLA_F_NESTED`).
    pub fn nest_begin_flags(&mut self, raw_ty: u16) -> Nest {
        self.pad();
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&(NLA_HDRLEN as u16).to_ne_bytes());
        self.buf.extend_from_slice(&raw_ty.to_ne_bytes());
        self.nests.push(start);
        Nest(start)
    }

    /// Closes a nest, patching its length.
    pub fn nest_end(&mut self, nest: Nest) -> &mut Self {
        if self.nests.pop() != Some(nest.0) {
            self.fail(WireError::Build("nest closed out of order"));
            return self;
        }
        let len = self.buf.len() - nest.0;
        if len > u16::MAX as usize {
            self.fail(WireError::Build("nested attribute longer than 65535 bytes"));
            return self;
        }
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        self
    }

    /// Finishes the open message, patching `nlmsg_len`. Returns the message's byte range in
    /// the buffer, or the first error met while building it (the message is then dropped).
    pub fn finish(&mut self) -> Built {
        let start = self
            .open
            .take()
            .ok_or(WireError::Build("finish without begin"))?;
        if !self.nests.is_empty() {
            self.fail(WireError::Build("nest left open"));
            self.nests.clear();
        }
        let len = self.buf.len() - start;
        if len > u32::MAX as usize {
            self.fail(WireError::Build("message longer than 4 GiB"));
        }
        if let Some(e) = self.error.take() {
            self.buf.truncate(start);
            return Err(e);
        }
        if let Ok(mut h) = MessageHeaderMut::new(&mut self.buf[start..]) {
            h.set_len(len as u32);
        }
        self.count += 1;
        Ok(start..start + len)
    }

    /// Sets consecutive sequence numbers on every message in the buffer, starting at `first`;
    /// returns the number after the last one used. Malformed content stops the walk.
    ///
    /// ```
    /// use nlkit_wire::{MessageBuilder, Messages};
    /// let mut b = MessageBuilder::new();
    /// for _ in 0..3 { b.begin(1, 0, 0); b.finish().unwrap(); }
    /// assert_eq!(b.stamp_seq(100), 103);
    /// let seqs: Vec<u32> = Messages::new(b.as_bytes()).map(|m| m.unwrap().seq()).collect();
    /// assert_eq!(seqs, [100, 101, 102]);
    /// ```
    pub fn stamp_seq(&mut self, first: u32) -> u32 {
        let mut seq = first;
        // A malformed tail only ends the walk: the messages before it are stamped.
        let _ = MessageHeaderMut::for_each(&mut self.buf, |_, mut h| {
            h.set_seq(seq);
            seq = seq.wrapping_add(1);
        });
        seq
    }
}
