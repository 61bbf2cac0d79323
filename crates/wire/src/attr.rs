//! Attribute (`nlattr`) views, the attribute iterator and typed getters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::consts::{NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_TYPE_MASK};
use crate::{align, WireError, NLA_HDRLEN};

/// A borrowed view of one attribute: its type, flags and payload.
///
/// ```
/// use nlkit_wire::Attrs;
/// // len=8, type=3, payload "lo\0" + 1 pad byte
/// let bytes = [7, 0, 3, 0, b'l', b'o', 0, 0];
/// let a = Attrs::new(&bytes).next().unwrap().unwrap();
/// assert_eq!((a.ty(), a.str().unwrap()), (3, "lo"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    raw_ty: u16,
    payload: &'a [u8],
}

macro_rules! fixed_getter {
    ($(#[$m:meta])* $name:ident, $t:ty, $conv:ident, $what:literal) => {
        $(#[$m])*
        pub fn $name(&self) -> Result<$t, WireError> {
            let a: [u8; std::mem::size_of::<$t>()] =
                self.payload.try_into().map_err(|_| self.size_err($what))?;
            Ok(<$t>::$conv(a))
        }
    };
}

impl<'a> Attr<'a> {
    /// Creates a view from its raw type field and payload.
    pub fn new(raw_ty: u16, payload: &'a [u8]) -> Self {
        Attr { raw_ty, payload }
    }
    /// The attribute type with `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` masked off.
    pub fn ty(&self) -> u16 {
        self.raw_ty & NLA_TYPE_MASK
    }
    /// The type field as sent, flags included.
    pub fn raw_ty(&self) -> u16 {
        self.raw_ty
    }
    /// True when the sender set `NLA_F_NESTED`. Many kernel families nest without setting it;
    /// [`nested`](Attr::nested) works either way.
    pub fn is_nested(&self) -> bool {
        self.raw_ty & NLA_F_NESTED != 0
    }
    /// True when the sender set `NLA_F_NET_BYTEORDER`.
    pub fn is_net_byteorder(&self) -> bool {
        self.raw_ty & NLA_F_NET_BYTEORDER != 0
    }
    /// The payload bytes (padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
    /// The payload as raw bytes (same as [`payload`](Attr::payload)).
    pub fn bytes(&self) -> &'a [u8] {
        self.payload
    }
    /// The attributes nested inside this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }

    fn size_err(&self, expected: &'static str) -> WireError {
        WireError::AttrSize {
            ty: self.ty(),
            expected,
            len: self.payload.len(),
        }
    }

    fixed_getter!(/// The payload as a `u8`.
        u8, u8, from_ne_bytes, "u8");
    fixed_getter!(/// The payload as a native-endian `u16`.
        u16, u16, from_ne_bytes, "u16");
    fixed_getter!(/// The payload as a native-endian `u32`.
        u32, u32, from_ne_bytes, "u32");
    fixed_getter!(/// The payload as a native-endian `u64`.
        u64, u64, from_ne_bytes, "u64");
    fixed_getter!(/// The payload as a native-endian `i32`.
        i32, i32, from_ne_bytes, "i32");
    fixed_getter!(/// The payload as a big-endian (network order) `u16`.
        be16, u16, from_be_bytes, "be16");
    fixed_getter!(/// The payload as a big-endian (network order) `u32`.
        be32, u32, from_be_bytes, "be32");
    fixed_getter!(/// The payload as a big-endian (network order) `u64`.
        be64, u64, from_be_bytes, "be64");

    /// A variable-width unsigned integer (`NLA_UINT`: 1, 2, 4 or 8 bytes), read in network
    /// order when `NLA_F_NET_BYTEORDER` is set and in native order otherwise.
    ///
    /// ```
    /// let a = nlkit_wire::Attr::new(1 | nlkit_wire::consts::NLA_F_NET_BYTEORDER, &[0, 1]);
    /// assert_eq!(a.uint().unwrap(), 1);
    /// ```
    pub fn uint(&self) -> Result<u64, WireError> {
        let be = self.is_net_byteorder();
        let p = self.payload;
        Ok(match p.len() {
            1 => p[0] as u64,
            2 => {
                let a = [p[0], p[1]];
                let v = if be {
                    u16::from_be_bytes(a)
                } else {
                    u16::from_ne_bytes(a)
                };
                v as u64
            }
            4 => {
                let a = [p[0], p[1], p[2], p[3]];
                let v = if be {
                    u32::from_be_bytes(a)
                } else {
                    u32::from_ne_bytes(a)
                };
                v as u64
            }
            8 => {
                let a: [u8; 8] = p.try_into().map_err(|_| self.size_err("uint"))?;
                if be {
                    u64::from_be_bytes(a)
                } else {
                    u64::from_ne_bytes(a)
                }
            }
            _ => return Err(self.size_err("uint")),
        })
    }

    /// A NUL-terminated string; returns the text before the first NUL.
    pub fn str(&self) -> Result<&'a str, WireError> {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::BadString {
                ty: self.ty(),
                reason: "string has no terminating NUL",
            })?;
        std::str::from_utf8(&self.payload[..end]).map_err(|_| WireError::BadString {
            ty: self.ty(),
            reason: "string is not UTF-8",
        })
    }

    /// An IPv4 address (4 bytes, network order).
    pub fn ipv4(&self) -> Result<Ipv4Addr, WireError> {
        let a: [u8; 4] = self
            .payload
            .try_into()
            .map_err(|_| self.size_err("IPv4 address"))?;
        Ok(Ipv4Addr::from(a))
    }

    /// An IPv6 address (16 bytes, network order).
    pub fn ipv6(&self) -> Result<Ipv6Addr, WireError> {
        let a: [u8; 16] = self
            .payload
            .try_into()
            .map_err(|_| self.size_err("IPv6 address"))?;
        Ok(Ipv6Addr::from(a))
    }

    /// An IPv4 or IPv6 address, chosen by the payload length.
    pub fn ip(&self) -> Result<IpAddr, WireError> {
        match self.payload.len() {
            4 => self.ipv4().map(IpAddr::V4),
            16 => self.ipv6().map(IpAddr::V6),
            _ => Err(self.size_err("IP address")),
        }
    }

    /// The first `n` bytes of a struct-valued attribute. A newer kernel may append fields to
    /// such a struct; a longer payload is accepted and the tail ignored.
    ///
    /// ```
    /// let a = nlkit_wire::Attr::new(7, &[1, 2, 3, 4, 5, 6]);
    /// assert_eq!(a.prefix(4).unwrap(), &[1, 2, 3, 4]);
    /// assert!(a.prefix(8).is_err());
    /// ```
    pub fn prefix(&self, n: usize) -> Result<&'a [u8], WireError> {
        self.payload
            .get(..n)
            .ok_or_else(|| self.size_err("struct prefix"))
    }
}

/// Iterator over a sequence of attributes (a message payload or a nested attribute).
///
/// Yields an error for an attribute whose `nla_len` is below 4 or runs past its parent, then
/// stops. Fewer than 4 trailing bytes are treated as padding, as the kernel does.
///
/// ```
/// use nlkit_wire::{Attrs, MessageBuilder};
/// let mut b = MessageBuilder::new();
/// b.begin(16, 0, 0);
/// let n = b.nest_begin(1);
/// b.attr_u16(2, 7);
/// b.nest_end(n);
/// b.finish().unwrap();
/// let outer = Attrs::new(&b.as_bytes()[16..]).next().unwrap().unwrap();
/// let inner = outer.nested().find(2).unwrap().unwrap();
/// assert_eq!(inner.u16().unwrap(), 7);
/// ```
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Walks the attributes in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Attrs { rest: bytes }
    }

    /// The first attribute of type `ty` (flags masked), if any. A malformed attribute before
    /// it is reported as an error.
    pub fn find(self, ty: u16) -> Option<Result<Attr<'a>, WireError>> {
        for a in self {
            match a {
                Ok(a) if a.ty() == ty => return Some(Ok(a)),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// Checks every attribute (descending into those flagged `NLA_F_NESTED`, at any depth) and
    /// counts them.
    ///
    /// The descent uses an explicit stack rather than recursion: one 64 KiB attribute can hold
    /// over 16,000 levels of nesting, which would overflow a thread's stack.
    ///
    /// ```
    /// use nlkit_wire::{Attrs, MessageBuilder};
    /// let mut b = MessageBuilder::new();
    /// b.begin(16, 0, 0);
    /// let n = b.nest_begin(1);
    /// b.attr_u32(2, 7).attr_u32(3, 8);
    /// b.nest_end(n);
    /// b.finish().unwrap();
    /// assert_eq!(Attrs::new(&b.as_bytes()[16..]).validate(), Ok(3));
    /// ```
    pub fn validate(self) -> Result<usize, WireError> {
        let mut n = 0;
        let mut stack = vec![self];
        while let Some(top) = stack.last_mut() {
            match top.next() {
                None => {
                    stack.pop();
                }
                Some(a) => {
                    let a = a?;
                    n += 1;
                    if a.is_nested() {
                        stack.push(a.nested());
                    }
                }
            }
        }
        Ok(n)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < NLA_HDRLEN {
            self.rest = &[];
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]);
        let raw_ty = u16::from_ne_bytes([self.rest[2], self.rest[3]]);
        let l = len as usize;
        if l < NLA_HDRLEN || l > self.rest.len() {
            let err = WireError::AttrLength {
                ty: raw_ty & NLA_TYPE_MASK,
                len,
                available: self.rest.len(),
            };
            self.rest = &[];
            return Some(Err(err));
        }
        let attr = Attr {
            raw_ty,
            payload: &self.rest[NLA_HDRLEN..l],
        };
        self.rest = &self.rest[align(l).min(self.rest.len())..];
        Some(Ok(attr))
    }
}
