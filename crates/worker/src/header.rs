//! The fixed binary header in front of every message on the channel.
//!
//! Layout (24 bytes, little-endian): `magic u32 | version u16 | opcode u16 | seq u64 |
//! len u32 | kind u8 | nfds u8 | reserved u16`. A receiver checks every field before it trusts
//! the message: a wrong magic, version or kind, a length over [`MAX_PAYLOAD`] or different from
//! the bytes received, or too many descriptors is a [`ProtocolError`] — never a huge allocation
//! or a panic (the failure mode of OVS bug #14616).

use crate::error::ProtocolError;

/// `"NLKW"` as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"NLKW");
/// Protocol version; both sides come from the same binary, so any difference is skew.
pub const VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;
/// Largest payload of one message (128 KiB). Larger data belongs in a memfd passed as a
/// descriptor. SOCK_SEQPACKET needs a message to fit the socket buffer (about 208 KiB).
pub const MAX_PAYLOAD: usize = 128 * 1024;
/// Most descriptors one message carries (OVS used 8 too).
pub const MAX_FDS: usize = 8;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Main → worker, first message: transport setup (memfd and eventfds for the ring).
    Setup = 1,
    /// Worker → main, answer to setup: version, pid and the handler table.
    Hello = 2,
    /// Main → worker: run handler `opcode` on the payload.
    Request = 3,
    /// Worker → main: the handler's reply.
    Reply = 4,
    /// Worker → main: the handler failed; the payload is postcard `(Option<i32>, String)`,
    /// the errno and the message.
    Error = 5,
}

impl Kind {
    fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            1 => Self::Setup,
            2 => Self::Hello,
            3 => Self::Request,
            4 => Self::Reply,
            5 => Self::Error,
            _ => return None,
        })
    }
}

/// A decoded, validated header.
///
/// ```
/// use nlkit_worker::{Header, Kind, HEADER_LEN};
/// let h = Header { kind: Kind::Request, opcode: 7, seq: 42, len: 3, nfds: 0 };
/// let bytes = h.encode();
/// assert_eq!(bytes.len(), HEADER_LEN);
/// assert_eq!(Header::decode(&bytes).unwrap(), h);
/// assert!(Header::decode(&[0u8; HEADER_LEN]).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message kind.
    pub kind: Kind,
    /// Handler id (requests and replies).
    pub opcode: u16,
    /// Sequence number: requests count up from 1; a reply carries its request's number.
    pub seq: u64,
    /// Payload length after the header.
    pub len: u32,
    /// Number of descriptors attached with `SCM_RIGHTS`.
    pub nfds: u8,
}

impl Header {
    /// The 24 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&self.opcode.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20] = self.kind as u8;
        b[21] = self.nfds;
        b
    }

    /// Decodes and validates the header at the start of `bytes` (magic, version, kind, length
    /// cap, descriptor cap, reserved bits zero).
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(ProtocolError::Short(bytes.len()))?;
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if magic != MAGIC {
            return Err(ProtocolError::BadMagic(magic));
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(ProtocolError::BadVersion(version));
        }
        let kind = Kind::from_raw(b[20]).ok_or(ProtocolError::BadKind(b[20]))?;
        let len = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
        if len as usize > MAX_PAYLOAD {
            return Err(ProtocolError::TooLong(len as usize));
        }
        if b[21] as usize > MAX_FDS {
            return Err(ProtocolError::TooManyFds(b[21] as usize));
        }
        if b[22] != 0 || b[23] != 0 {
            return Err(ProtocolError::Reserved);
        }
        Ok(Self {
            kind,
            opcode: u16::from_le_bytes([b[6], b[7]]),
            seq: u64::from_le_bytes(b[8..16].try_into().map_err(|_| ProtocolError::Short(0))?),
            len,
            nfds: b[21],
        })
    }

    /// Decodes a whole message: the header, then checks that the payload length and the number
    /// of descriptors match what actually arrived. Returns the header and the payload.
    pub fn decode_message(
        bytes: &[u8],
        fds_received: usize,
    ) -> Result<(Self, &[u8]), ProtocolError> {
        let h = Self::decode(bytes)?;
        let payload = &bytes[HEADER_LEN..];
        if payload.len() != h.len as usize {
            return Err(ProtocolError::LengthMismatch {
                header: h.len as usize,
                actual: payload.len(),
            });
        }
        if fds_received != h.nfds as usize {
            return Err(ProtocolError::FdMismatch {
                header: h.nfds as usize,
                actual: fds_received,
            });
        }
        Ok((h, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), fds in 0usize..10) {
            let _ = Header::decode_message(&bytes, fds);
        }

        #[test]
        fn corrupted_valid_headers_are_rejected_or_equal(seq: u64, op: u16, idx in 0usize..HEADER_LEN, bit in 0u8..8) {
            let h = Header { kind: Kind::Reply, opcode: op, seq, len: 0, nfds: 0 };
            let mut b = h.encode();
            b[idx] ^= 1 << bit;
            // A flipped bit is either rejected or lands in a field with no validity rule.
            if let Ok((d, _)) = Header::decode_message(&b, 0) {
                prop_assert!(d != h && (6..16).contains(&idx) || idx == 20);
            }
        }
    }

    #[test]
    fn length_cap_and_mismatch() {
        let h = Header {
            kind: Kind::Request,
            opcode: 1,
            seq: 1,
            len: (MAX_PAYLOAD + 1) as u32,
            nfds: 0,
        };
        assert!(matches!(
            Header::decode(&h.encode()),
            Err(ProtocolError::TooLong(_))
        ));
        let h = Header { len: 10, ..h };
        let mut msg = h.encode().to_vec();
        msg.extend_from_slice(&[0; 4]);
        assert!(matches!(
            Header::decode_message(&msg, 0),
            Err(ProtocolError::LengthMismatch { .. })
        ));
    }
}
