//! `NLMSG_ERROR` and `NLMSG_DONE` decoding, with extended-ack TLVs.

use std::fmt;

use crate::consts::*;
use crate::{align, Attrs, Message, MessageHeader, WireError, NLMSG_HDRLEN};

/// The extended-ack TLVs the kernel appends to an error, an ack or a `NLMSG_DONE` when
/// `NETLINK_EXT_ACK` is enabled (the message carries `NLM_F_ACK_TLVS`).
///
/// Unknown TLVs are ignored, so a newer kernel adds fields without breaking this parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtAck<'a> {
    /// `NLMSGERR_ATTR_MSG`: a human-readable reason.
    pub msg: Option<&'a str>,
    /// `NLMSGERR_ATTR_OFFS`: offset of the offending attribute in the request.
    pub offset: Option<u32>,
    /// `NLMSGERR_ATTR_COOKIE`: an opaque cookie.
    pub cookie: Option<&'a [u8]>,
    /// `NLMSGERR_ATTR_POLICY`: the nested policy of the offending attribute.
    pub policy: Option<&'a [u8]>,
    /// `NLMSGERR_ATTR_MISS_TYPE`: the type of a missing attribute.
    pub miss_type: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_NEST`: offset of the nest that lacks `miss_type`.
    pub miss_nest: Option<u32>,
}

impl<'a> ExtAck<'a> {
    /// Parses extended-ack TLVs.
    ///
    /// ```
    /// use nlkit_wire::{consts::*, ExtAck, MessageBuilder};
    /// let mut b = MessageBuilder::new();
    /// b.begin(NLMSG_NOOP, 0, 0);
    /// b.attr_str(NLMSGERR_ATTR_MSG, "bad thing");
    /// b.attr_u32(NLMSGERR_ATTR_OFFS, 20);
    /// b.finish().unwrap();
    /// let ack = ExtAck::parse(&b.as_bytes()[16..]).unwrap();
    /// assert_eq!((ack.msg, ack.offset), (Some("bad thing"), Some(20)));
    /// ```
    pub fn parse(tlvs: &'a [u8]) -> Result<Self, WireError> {
        let mut ack = ExtAck::default();
        for a in Attrs::new(tlvs) {
            let a = a?;
            match a.ty() {
                NLMSGERR_ATTR_MSG => ack.msg = Some(a.str()?),
                NLMSGERR_ATTR_OFFS => ack.offset = Some(a.u32()?),
                NLMSGERR_ATTR_COOKIE => ack.cookie = Some(a.payload()),
                NLMSGERR_ATTR_POLICY => ack.policy = Some(a.payload()),
                NLMSGERR_ATTR_MISS_TYPE => ack.miss_type = Some(a.u32()?),
                NLMSGERR_ATTR_MISS_NEST => ack.miss_nest = Some(a.u32()?),
                _ => {}
            }
        }
        Ok(ack)
    }

    /// True when no TLV was present.
    pub fn is_empty(&self) -> bool {
        *self == ExtAck::default()
    }
}

/// A decoded `NLMSG_ERROR`: an acknowledgement (`errno == 0`) or an error.
///
/// ```
/// use nlkit_wire::{consts::*, ErrorMsg, MessageBuilder, Messages};
/// let mut b = MessageBuilder::new();
/// b.begin(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 5);
/// b.raw(&(-22i32).to_ne_bytes());
/// b.raw(&[36, 0, 0, 0, 24, 0, 5, 0, 5, 0, 0, 0, 0, 0, 0, 0]); // the request's header
/// b.attr_str(NLMSGERR_ATTR_MSG, "Nexthop has invalid gateway");
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let e = ErrorMsg::parse(&m).unwrap();
/// assert_eq!(e.errno, 22);
/// assert_eq!(e.to_error().unwrap().to_string(), "Error: Nexthop has invalid gateway.");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorMsg<'a> {
    /// The positive errno, or 0 for an acknowledgement.
    pub errno: i32,
    /// The header of the request this answers.
    pub request: MessageHeader,
    /// `NLM_F_CAPPED`: the request's payload was not echoed.
    pub capped: bool,
    /// The echoed request payload (empty when capped).
    pub request_payload: &'a [u8],
    /// Extended-ack TLVs (empty without `NLM_F_ACK_TLVS`).
    pub ext: ExtAck<'a>,
}

impl<'a> ErrorMsg<'a> {
    /// Decodes an `NLMSG_ERROR` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        if msg.ty() != NLMSG_ERROR {
            return Err(WireError::UnexpectedType {
                expected: NLMSG_ERROR,
                found: msg.ty(),
            });
        }
        let p = msg.payload();
        let code: [u8; 4] =
            p.get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(WireError::Truncated {
                    what: "nlmsgerr",
                    needed: 4,
                    available: p.len(),
                })?;
        let error = i32::from_ne_bytes(code);
        let request = MessageHeader::parse(&p[4..])?;
        let capped = msg.flags() & NLM_F_CAPPED != 0;
        let echoed = if capped {
            0
        } else {
            (request.len as usize).saturating_sub(NLMSG_HDRLEN)
        };
        // Saturating: `echoed` comes from the input and may be near 4 GiB.
        let body_end = (4 + NLMSG_HDRLEN).saturating_add(echoed);
        if body_end > p.len() {
            return Err(WireError::Truncated {
                what: "nlmsgerr echoed request",
                needed: body_end,
                available: p.len(),
            });
        }
        let request_payload = &p[4 + NLMSG_HDRLEN..body_end];
        let ext = if msg.flags() & NLM_F_ACK_TLVS != 0 {
            ExtAck::parse(&p[align(body_end).min(p.len())..])?
        } else {
            ExtAck::default()
        };
        Ok(ErrorMsg {
            errno: error.checked_neg().unwrap_or(i32::MAX),
            request,
            capped,
            request_payload,
            ext,
        })
    }

    /// True for an acknowledgement (error code 0).
    pub fn is_ack(&self) -> bool {
        self.errno == 0
    }

    /// The owned error, or `None` for an acknowledgement.
    pub fn to_error(&self) -> Option<KernelError> {
        (self.errno != 0).then(|| KernelError::new(self.errno, &self.ext))
    }

    /// An extended-ack message on a successful acknowledgement: a kernel warning.
    pub fn warning(&self) -> Option<&'a str> {
        if self.errno == 0 {
            self.ext.msg
        } else {
            None
        }
    }
}

/// A decoded `NLMSG_DONE`: the end of a dump, possibly carrying the dump's error.
///
/// ```
/// use nlkit_wire::{consts::*, DoneMsg, MessageBuilder, Messages};
/// let mut b = MessageBuilder::new();
/// b.begin(NLMSG_DONE, NLM_F_MULTI, 1);
/// b.raw(&0i32.to_ne_bytes());
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let d = DoneMsg::parse(&m).unwrap();
/// assert!(d.to_error().is_none() && !d.interrupted);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DoneMsg<'a> {
    /// The positive errno the dump ended with, or 0.
    pub errno: i32,
    /// `NLM_F_DUMP_INTR` was set: the dump may be inconsistent.
    pub interrupted: bool,
    /// Extended-ack TLVs.
    pub ext: ExtAck<'a>,
}

impl<'a> DoneMsg<'a> {
    /// Decodes an `NLMSG_DONE` message. An empty payload (old families) means success; a
    /// payload of 1 to 3 bytes is a truncated error code and is rejected.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        if msg.ty() != NLMSG_DONE {
            return Err(WireError::UnexpectedType {
                expected: NLMSG_DONE,
                found: msg.ty(),
            });
        }
        let p = msg.payload();
        let error = match p {
            [] => 0,
            [a, b, c, d, ..] => i32::from_ne_bytes([*a, *b, *c, *d]),
            _ => {
                return Err(WireError::Truncated {
                    what: "nlmsg_done error code",
                    needed: 4,
                    available: p.len(),
                })
            }
        };
        let ext = if msg.flags() & NLM_F_ACK_TLVS != 0 && p.len() > 4 {
            ExtAck::parse(&p[4..])?
        } else {
            ExtAck::default()
        };
        Ok(DoneMsg {
            errno: error.checked_neg().unwrap_or(i32::MAX),
            interrupted: msg.flags() & NLM_F_DUMP_INTR != 0,
            ext,
        })
    }

    /// The dump's error, if it ended with one.
    pub fn to_error(&self) -> Option<KernelError> {
        (self.errno != 0).then(|| KernelError::new(self.errno, &self.ext))
    }
}

/// An error reported by the kernel, owned so it can outlive the receive buffer.
///
/// `Display` reads like iproute2: the extended-ack text when there is one
/// (`Error: Nexthop has invalid gateway.`), the errno's description otherwise.
///
/// ```
/// let e = nlkit_wire::KernelError { errno: 17, ..Default::default() };
/// assert_eq!(e.to_string(), "Error: File exists.");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelError {
    /// The positive errno.
    pub errno: i32,
    /// The extended-ack message.
    pub msg: Option<String>,
    /// Offset of the offending attribute in the request.
    pub offset: Option<u32>,
    /// The missing attribute's type.
    pub miss_type: Option<u32>,
    /// Offset of the nest lacking `miss_type`.
    pub miss_nest: Option<u32>,
    /// The extended-ack cookie.
    pub cookie: Option<Vec<u8>>,
}

impl KernelError {
    /// Builds the owned error from an errno and extended-ack TLVs.
    pub fn new(errno: i32, ext: &ExtAck<'_>) -> Self {
        KernelError {
            errno,
            msg: ext.msg.map(str::to_owned),
            offset: ext.offset,
            miss_type: ext.miss_type,
            miss_nest: ext.miss_nest,
            cookie: ext.cookie.map(<[u8]>::to_vec),
        }
    }

    /// The errno as an `std::io::Error` (for `?` into I/O code and for `kind()`).
    pub fn io_error(&self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.errno)
    }
}

/// The errno's description without Rust's "(os error N)" suffix.
fn describe(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match &self.msg {
            Some(m) if !m.is_empty() => m.clone(),
            _ => describe(self.errno),
        };
        write!(f, "Error: {text}")?;
        if !text.ends_with('.') {
            f.write_str(".")?;
        }
        if let Some(t) = self.miss_type {
            write!(f, " (missing attribute type {t})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelError {}
