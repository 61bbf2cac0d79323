//! Fast text for the values listings print most: IP addresses and integers, appended to a
//! byte buffer, and `Display` wrappers built on the same code.
//!
//! A million-line listing (`ip route`, `conntrack -L` style) spends most of its user time in
//! `core::fmt` when it formats through it: `Ipv4Addr`'s `Display` formats four `u8`s
//! through the formatting machinery, every integer goes through padding logic, and every
//! field is a dynamic call. [`push_ip`] and [`push_num`] append the bytes `std`'s `Display`
//! would write straight to a `Vec<u8>`, from lookup tables (written here by hand: no crate
//! appends an address to a byte buffer), written in place into the buffer's room (no
//! `memcpy` call per field, no stack buffer copied out). [`Ip`] and [`Num`] are the `Display` forms (they honour width and alignment).
//! [`push_hex`] appends bytes in hex (conntrack labels).
//!
//! ```
//! use nlkit_wire::text::{push_ip, push_num, Ip, Num};
//! let a: std::net::IpAddr = "10.1.2.3".parse().unwrap();
//! assert_eq!(format!("{} metric {}", Ip(a), Num(100u32)), "10.1.2.3 metric 100");
//! assert_eq!(format!("[{:>6}]", Num(42u8)), "[    42]");
//! let mut line = Vec::new();
//! push_ip(&mut line, "fd00::1:0:0:2".parse().unwrap());
//! line.push(b' ');
//! push_num(&mut line, 4_294_967_295u32);
//! assert_eq!(line, b"fd00::1:0:0:2 4294967295");
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Appends the first `len` bytes of `buf` to `out` with one copy of a constant size (inlined
/// as a few stores), then drops the bytes past `len`: cheaper than a copy of a variable
/// length, a `memcpy` call, for the short fields of a text line. `len` is at most `N`.
///
/// ```
/// let mut out = b"ab".to_vec();
/// nlkit_wire::text::push_fixed(&mut out, b"cdefgh\0\0", 3);
/// assert_eq!(out, b"abcde");
/// ```
#[inline]
pub fn push_fixed<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    out.extend_from_slice(buf);
    out.truncate(out.len() - (N - len.min(N)));
}

/// Appends what `write` writes at the start of an `N`-byte room (it returns the length, at
/// most `N`), writing straight into `out`'s memory. The writers below store a field's bytes
/// one to four at a time; built in a stack buffer and then copied with one wide load, those
/// bytes would stall the load (store-to-load forwarding fails when a load spans several
/// smaller stores), about a third of a `conntrack -L` line's formatting time.
#[inline(always)]
fn push_with<const N: usize>(out: &mut Vec<u8>, write: impl FnOnce(&mut [u8; N]) -> usize) {
    let start = out.len();
    out.resize(start + N, 0);
    let len = out[start..].first_chunk_mut::<N>().map_or(0, write);
    out.truncate(start + len.min(N));
}

/// `"0."` … `"255."`: an octet's decimal digits and a dot, padded to 4 bytes.
const OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, u) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            [b'0' + h, b'0' + d, b'0' + u, b'.']
        } else if i >= 10 {
            [b'0' + d, b'0' + u, b'.', 0]
        } else {
            [b'0' + u, b'.', 0, 0]
        };
        i += 1;
    }
    t
};

/// The length of `OCTETS[i]`, its dot included.
const fn octet_len(i: u8) -> usize {
    if i >= 100 {
        4
    } else if i >= 10 {
        3
    } else {
        2
    }
}

/// `"00"` … `"99"`.
const PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Writes `a` dotted at the start of `buf`; returns the length (at most 15).
fn ipv4_into(buf: &mut [u8; 16], a: Ipv4Addr) -> usize {
    let mut n = 0;
    for o in a.octets() {
        // n <= 12 here: at most three octets of at most 4 bytes came before.
        let at = n.min(12);
        buf[at..at + 4].copy_from_slice(&OCTETS[usize::from(o)]);
        n += octet_len(o);
    }
    n - 1
}

/// Appends `a` as `std`'s `Display` writes it (`10.0.0.1`).
#[inline]
pub fn push_ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    push_with::<16>(out, |buf| ipv4_into(buf, a));
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `g` in lowercase hex without leading zeros at `buf[at..]`; returns the new end.
fn hex_group(buf: &mut [u8; 48], at: usize, g: u16) -> usize {
    let digits = (16 - g.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        buf[at + i] = HEX[usize::from((g >> (4 * (digits - 1 - i))) & 0xf)];
    }
    at + digits
}

/// Writes the groups `segs` joined by `:` at `buf[at..]`; returns the new end.
fn hex_groups(buf: &mut [u8; 48], mut at: usize, segs: &[u16]) -> usize {
    for (i, &g) in segs.iter().enumerate() {
        if i > 0 {
            buf[at] = b':';
            at += 1;
        }
        at = hex_group(buf, at, g);
    }
    at
}

/// Writes `a` as `std` does at the start of `buf`; returns the length (at most 39). RFC
/// 5952: lowercase hex, no leading zeros, the longest run of two or more zero groups (the
/// first of equal runs) as `::`; an IPv4-mapped address as `::ffff:a.b.c.d`.
fn ipv6_into(buf: &mut [u8; 48], a: Ipv6Addr) -> usize {
    let segs = a.segments();
    if let Some(v4) = a.to_ipv4_mapped() {
        buf[..7].copy_from_slice(b"::ffff:");
        let mut b4 = [0u8; 16];
        let n = ipv4_into(&mut b4, v4);
        buf[7..7 + n].copy_from_slice(&b4[..n]);
        return 7 + n;
    }
    // The longest run of zero groups (the first of equal ones).
    let (mut best, mut best_len, mut start, mut len) = (0, 0, 0, 0);
    for (i, &g) in segs.iter().enumerate() {
        if g == 0 {
            if len == 0 {
                start = i;
            }
            len += 1;
            if len > best_len {
                (best, best_len) = (start, len);
            }
        } else {
            len = 0;
        }
    }
    if best_len > 1 {
        let at = hex_groups(buf, 0, &segs[..best]);
        buf[at..at + 2].copy_from_slice(b"::");
        hex_groups(buf, at + 2, &segs[best + best_len..])
    } else {
        hex_groups(buf, 0, &segs)
    }
}

/// Appends `a` as `std`'s `Display` writes it (RFC 5952: `fd00::1`, `::ffff:10.0.0.1`).
pub fn push_ipv6(out: &mut Vec<u8>, a: Ipv6Addr) {
    push_with::<48>(out, |buf| ipv6_into(buf, a));
}

/// Appends `a` as `std`'s `Display` writes it.
///
/// ```
/// let mut out = Vec::new();
/// nlkit_wire::text::push_ip(&mut out, "10.0.0.1".parse().unwrap());
/// assert_eq!(out, b"10.0.0.1");
/// ```
#[inline]
pub fn push_ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => push_ipv4(out, a),
        IpAddr::V6(a) => push_ipv6(out, a),
    }
}

/// Appends `bytes` in lowercase hex, two digits a byte (what `{:02x}` writes for each).
///
/// ```
/// let mut out = b"labels=".to_vec();
/// nlkit_wire::text::push_hex(&mut out, &[0x00, 0x0a, 0xff]);
/// assert_eq!(out, b"labels=000aff");
/// ```
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(2 * bytes.len());
    for &b in bytes {
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
    }
}

/// Writes `v` in decimal at the start of `buf`; returns the length (at most 20).
fn u64_into(buf: &mut [u8; 24], mut v: u64) -> usize {
    let len = if v == 0 { 1 } else { v.ilog10() as usize + 1 };
    let mut i = len;
    while v >= 100 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[(v % 100) as usize]);
        v /= 100;
    }
    if v >= 10 {
        buf[i - 2..i].copy_from_slice(&PAIRS[v as usize]);
    } else {
        buf[i - 1] = b'0' + v as u8;
    }
    len
}

/// An integer [`push_num`] appends: the unsigned ones up to 64 bits, and the signed ones.
pub trait Decimal: Copy {
    /// The sign, and the magnitude.
    fn split(self) -> (bool, u64);
}

macro_rules! decimal {
    (unsigned $($t:ty),*; signed $($s:ty),*) => {
        $(impl Decimal for $t {
            #[inline]
            fn split(self) -> (bool, u64) {
                (false, self as u64)
            }
        })*
        $(impl Decimal for $s {
            #[inline]
            fn split(self) -> (bool, u64) {
                (self < 0, self.unsigned_abs() as u64)
            }
        })*
    };
}
decimal!(unsigned u8, u16, u32, u64, usize; signed i8, i16, i32, i64, isize);

/// Appends `n` in decimal, as `std`'s `Display` writes it.
///
/// ```
/// let mut out = Vec::new();
/// nlkit_wire::text::push_num(&mut out, -12i32);
/// nlkit_wire::text::push_num(&mut out, 3u8);
/// assert_eq!(out, b"-123");
/// ```
#[inline]
pub fn push_num<T: Decimal>(out: &mut Vec<u8>, n: T) {
    let (neg, v) = n.split();
    if neg {
        out.push(b'-');
    }
    push_with::<24>(out, |buf| u64_into(buf, v));
}

/// An IP address, formatted like `std` formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 48];
        let n = match self.0 {
            IpAddr::V4(a) => ipv4_into((&mut buf[..16]).try_into().map_err(|_| fmt::Error)?, a),
            IpAddr::V6(a) => ipv6_into(&mut buf, a),
        };
        // Only ASCII digits, hex digits, dots and colons were written.
        f.pad(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

/// An integer, formatted like `std` formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num<T>(pub T);

impl<T: Decimal> fmt::Display for Num<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 24];
        let (neg, v) = self.0.split();
        let mut digits = [0u8; 24];
        let len = u64_into(&mut digits, v);
        let n = usize::from(neg) + len;
        out[0] = b'-';
        out[usize::from(neg)..n].copy_from_slice(&digits[..len]);
        f.pad(std::str::from_utf8(&out[..n]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pushed(a: IpAddr) -> String {
        let mut out = b"x".to_vec();
        push_ip(&mut out, a);
        String::from_utf8(out[1..].to_vec()).unwrap()
    }

    #[test]
    fn same_as_std() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "1.22.3.44",
            "100.9.99.200",
            "::",
            "::1",
            "::2",
            "1::",
            "fd00::1:2",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::1.2.3.4",
            "1:0:0:2:0:0:0:3",
            "1:0:0:2:0:0:3:4",
            "1:0:2:3:4:5:6:7",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe80::abcd:ef01:2345:6789",
        ] {
            let a: IpAddr = s.parse().unwrap();
            assert_eq!(pushed(a), a.to_string(), "{s}");
            assert_eq!(Ip(a).to_string(), a.to_string());
            assert_eq!(format!("{:>45}", Ip(a)), format!("{:>45}", a));
        }
        for n in [0u64, 9, 10, 99, 100, 101, 4_294_967_295, u64::MAX] {
            assert_eq!(Num(n).to_string(), n.to_string());
        }
        assert_eq!(Num(-5i32).to_string(), "-5");
        assert_eq!(Num(i64::MIN).to_string(), i64::MIN.to_string());
        assert_eq!(format!("[{:<4}]", Num(-5i8)), "[-5  ]");
    }

    /// Addresses with runs of zero groups of every length and place, and mapped ones.
    fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
        prop_oneof![
            any::<u128>().prop_map(Ipv6Addr::from),
            // Each group zero, small or any: zero runs everywhere.
            prop::array::uniform8(prop_oneof![Just(0u16), 0u16..0x20, any::<u16>()])
                .prop_map(Ipv6Addr::from),
            any::<u32>().prop_map(|v| Ipv4Addr::from(v).to_ipv6_mapped()),
            any::<u32>().prop_map(|v| Ipv4Addr::from(v).to_ipv6_compatible()),
        ]
    }

    proptest! {
        #[test]
        fn ipv6_as_std(a in ipv6()) {
            prop_assert_eq!(pushed(IpAddr::V6(a)), a.to_string());
            prop_assert_eq!(Ip(IpAddr::V6(a)).to_string(), a.to_string());
        }

        #[test]
        fn ipv4_as_std(a in any::<u32>()) {
            let a = Ipv4Addr::from(a);
            prop_assert_eq!(pushed(IpAddr::V4(a)), a.to_string());
        }

        #[test]
        fn numbers_as_std(u in any::<u64>(), i in any::<i64>(), small in 0u32..1000) {
            for (ours, std) in [
                (Num(u).to_string(), u.to_string()),
                (Num(i).to_string(), i.to_string()),
                (Num(small).to_string(), small.to_string()),
            ] {
                prop_assert_eq!(ours, std);
            }
            let mut out = Vec::new();
            push_num(&mut out, u);
            push_num(&mut out, i);
            prop_assert_eq!(out, format!("{u}{i}").into_bytes());
        }

        #[test]
        fn hex_as_std(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut out = b"x".to_vec();
            push_hex(&mut out, &bytes);
            let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(String::from_utf8(out[1..].to_vec()).unwrap(), want);
        }
    }
}
