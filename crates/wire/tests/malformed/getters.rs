//! Typed getters given payloads of the wrong size or content.

use super::attr_size;
use nlkit_wire::consts::*;
use nlkit_wire::{Attr, WireError};

type Getter = fn(&Attr<'static>) -> Result<(), WireError>;

#[test]
fn fixed_size_getters_reject_every_other_size() {
    let getters: [(&str, usize, Getter); 11] = [
        ("u8", 1, |a| a.u8().map(drop)),
        ("u16", 2, |a| a.u16().map(drop)),
        ("u32", 4, |a| a.u32().map(drop)),
        ("u64", 8, |a| a.u64().map(drop)),
        ("i32", 4, |a| a.i32().map(drop)),
        ("be16", 2, |a| a.be16().map(drop)),
        ("be32", 4, |a| a.be32().map(drop)),
        ("be64", 8, |a| a.be64().map(drop)),
        ("IPv4 address", 4, |a| a.ipv4().map(drop)),
        ("IPv6 address", 16, |a| a.ipv6().map(drop)),
        ("IP address", 4, |a| a.ip().map(drop)),
    ];
    static BYTES: [u8; 32] = [0x5a; 32];
    for (expected, good, get) in getters {
        for len in 0..=20 {
            // The type carries both flags: the error reports the masked type.
            let a = Attr::new(6 | NLA_F_NESTED | NLA_F_NET_BYTEORDER, &BYTES[..len]);
            let ok = len == good || (expected == "IP address" && len == 16);
            if ok {
                assert!(get(&a).is_ok(), "{expected} with {len} bytes");
            } else {
                assert_eq!(
                    get(&a),
                    Err(attr_size(6, expected, len)),
                    "{expected}, {len}"
                );
            }
        }
    }
}

#[test]
fn getter_errors_render() {
    let e = Attr::new(4, &[1, 2, 3]).u32().unwrap_err();
    assert_eq!(
        e.to_string(),
        "attribute type 4: payload of 3 bytes is not a valid u32"
    );
}

#[test]
fn uint_sizes() {
    let native = Attr::new(1, &[0x01, 0x02]);
    assert_eq!(native.uint(), Ok(u16::from_ne_bytes([1, 2]) as u64));
    let cases: [(&[u8], u64); 4] = [
        (&[0x81], 0x81),
        (&[0x01, 0x02], 0x0102),
        (&[0x01, 0x02, 0x03, 0x04], 0x0102_0304),
        (&[1, 2, 3, 4, 5, 6, 7, 8], 0x0102_0304_0506_0708),
    ];
    for (bytes, be) in cases {
        let a = Attr::new(1 | NLA_F_NET_BYTEORDER, bytes);
        assert_eq!(a.uint(), Ok(be));
        let mut padded = [0u8; 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        let ne = match bytes.len() {
            1 => bytes[0] as u64,
            2 => u16::from_ne_bytes([bytes[0], bytes[1]]) as u64,
            4 => u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as u64,
            _ => u64::from_ne_bytes(padded),
        };
        assert_eq!(Attr::new(1, bytes).uint(), Ok(ne));
    }
    static BYTES: [u8; 17] = [0; 17];
    for len in [0, 3, 5, 6, 7, 9, 12, 16, 17] {
        for ty in [1, 1 | NLA_F_NET_BYTEORDER] {
            let a = Attr::new(ty, &BYTES[..len]);
            assert_eq!(a.uint(), Err(attr_size(1, "uint", len)));
        }
    }
}

#[test]
fn bad_strings() {
    let no_nul = WireError::BadString {
        ty: 3,
        reason: "string has no terminating NUL",
    };
    let not_utf8 = WireError::BadString {
        ty: 3,
        reason: "string is not UTF-8",
    };
    assert_eq!(Attr::new(3, b"").str(), Err(no_nul.clone()));
    assert_eq!(Attr::new(3, b"eth0").str(), Err(no_nul));
    assert_eq!(Attr::new(3, b"\xc3\x28\0").str(), Err(not_utf8.clone()));
    assert_eq!(
        Attr::new(3 | NLA_F_NESTED, b"ok\xff\0").str(),
        Err(not_utf8)
    );
    // Valid: the text before the first NUL; bytes after it are not looked at.
    assert_eq!(Attr::new(3, b"\0").str(), Ok(""));
    assert_eq!(Attr::new(3, b"lo\0\xff\xff").str(), Ok("lo"));
    assert_eq!(Attr::new(3, "naïve\0".as_bytes()).str(), Ok("naïve"));
    let rendered = Attr::new(3, b"x").str().unwrap_err().to_string();
    assert_eq!(rendered, "attribute type 3: string has no terminating NUL");
}

#[test]
fn struct_prefix_too_short() {
    let a = Attr::new(8, &[1, 2, 3]);
    assert_eq!(a.prefix(4), Err(attr_size(8, "struct prefix", 3)));
    assert_eq!(a.prefix(3), Ok(&[1u8, 2, 3][..]));
    assert_eq!(a.prefix(0), Ok(&[][..]));
}
