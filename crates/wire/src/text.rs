//! Fast `Display` for the values listings print most: IP addresses and integers.
//!
//! A million-line listing (`ip route`, `conntrack -L` style) spends most of its user time in
//! `core::fmt`: `Ipv4Addr`'s `Display` formats four `u8`s through the formatting machinery
//! and every integer goes through padding logic. These wrappers render into a stack buffer
//! with `itoa` and hand the formatter one string (still honouring width and alignment).
//!
//! ```
//! use nlkit_wire::text::{Ip, Num};
//! let a: std::net::IpAddr = "10.1.2.3".parse().unwrap();
//! assert_eq!(format!("{} metric {}", Ip(a), Num(100u32)), "10.1.2.3 metric 100");
//! assert_eq!(format!("[{:>6}]", Num(42u8)), "[    42]");
//! ```

use std::fmt;
use std::net::IpAddr;

/// An IP address, formatted like `std` formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => {
                let mut buf = [0u8; 15];
                let mut n = 0;
                for (i, octet) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    let mut digits = itoa::Buffer::new();
                    let d = digits.format(octet).as_bytes();
                    buf[n..n + d.len()].copy_from_slice(d);
                    n += d.len();
                }
                // Only ASCII digits and dots were written.
                f.pad(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
            }
            IpAddr::V6(a) => fmt::Display::fmt(&a, f),
        }
    }
}

/// An integer, formatted with `itoa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num<T>(pub T);

impl<T: itoa::Integer + Copy> fmt::Display for Num<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(itoa::Buffer::new().format(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_std() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "1.22.3.44",
            "::1",
            "fd00::1:2",
        ] {
            let a: IpAddr = s.parse().unwrap();
            assert_eq!(Ip(a).to_string(), a.to_string());
            assert_eq!(format!("{:>20}", Ip(a)), format!("{:>20}", a));
        }
        for n in [0u64, 9, 10, 4_294_967_295, u64::MAX] {
            assert_eq!(Num(n).to_string(), n.to_string());
        }
        assert_eq!(Num(-5i32).to_string(), "-5");
    }
}
