//! iproute2-style keyword arguments (`10.0.0.0/24 via 10.0.0.2 dev eth0 metric 10`).
//!
//! clap parses the command tree; the free-form tail of each command is parsed here the way
//! `ip` parses it: keywords followed by a value, in any order, with an optional leading
//! positional (the prefix or address).

use std::net::IpAddr;
use std::str::FromStr;

/// A usage error: shown with the command's usage and exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The keyword/value pairs and the positionals of a command tail.
#[derive(Debug, Default)]
pub struct Keywords {
    /// Values that followed no keyword, in order.
    pub positional: Vec<String>,
    pairs: Vec<(String, String)>,
    flags: Vec<String>,
}

impl Keywords {
    /// Splits `args` into keyword/value pairs (for the keywords in `with_value`), bare flags
    /// (for those in `bare`) and positionals.
    pub fn parse(args: &[String], with_value: &[&str], bare: &[&str]) -> Result<Self, UsageError> {
        let mut k = Keywords::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if with_value.contains(&a.as_str()) {
                let v = it
                    .next()
                    .ok_or_else(|| UsageError(format!("\"{a}\" needs a value")))?;
                k.pairs.push((a.clone(), v.clone()));
            } else if bare.contains(&a.as_str()) {
                k.flags.push(a.clone());
            } else {
                k.positional.push(a.clone());
            }
        }
        Ok(k)
    }

    /// The value of keyword `key`, if given (the last one wins, as in `ip`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` parsed as `T`.
    pub fn parsed<T: FromStr>(&self, key: &str) -> Result<Option<T>, UsageError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| UsageError(format!("invalid value \"{v}\" for \"{key}\"")))
            })
            .transpose()
    }

    /// True when bare flag `f` was given.
    pub fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// Fails on any positional beyond the first `n`.
    pub fn at_most(&self, n: usize) -> Result<(), UsageError> {
        match self.positional.get(n) {
            Some(extra) => Err(UsageError(format!("unexpected argument \"{extra}\""))),
            None => Ok(()),
        }
    }
}

/// An address with an optional prefix length (`10.0.0.0/24`, `fd00::1`, `default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The address (`None` for `default`, family decided by the caller).
    pub addr: Option<IpAddr>,
    /// The prefix length (the full length when omitted; 0 for `default`).
    pub len: u8,
}

impl FromStr for Prefix {
    type Err = UsageError;
    fn from_str(s: &str) -> Result<Self, UsageError> {
        if s == "default" || s == "all" {
            return Ok(Prefix { addr: None, len: 0 });
        }
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| UsageError(format!("invalid address \"{a}\"")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| UsageError(format!("invalid prefix length \"{l}\"")))?,
            None => max,
        };
        Ok(Prefix {
            addr: Some(addr),
            len,
        })
    }
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<Vec<u8>, UsageError> {
    let bytes: Result<Vec<u8>, _> = s.split(':').map(|p| u8::from_str_radix(p, 16)).collect();
    match bytes {
        Ok(b) if !b.is_empty() && s.split(':').all(|p| p.len() <= 2 && !p.is_empty()) => Ok(b),
        _ => Err(UsageError(format!("invalid link-layer address \"{s}\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn keywords_and_positionals() {
        let k = Keywords::parse(
            &v("10.0.0.0/24 via 10.0.0.2 dev eth0 onlink"),
            &["via", "dev"],
            &["onlink"],
        )
        .unwrap();
        assert_eq!(k.positional, ["10.0.0.0/24"]);
        assert_eq!(k.get("via"), Some("10.0.0.2"));
        assert_eq!(k.get("dev"), Some("eth0"));
        assert!(k.flag("onlink"));
        assert!(Keywords::parse(&v("dev"), &["dev"], &[]).is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!("default".parse::<Prefix>().unwrap().len, 0);
        assert_eq!("10.1.0.0/16".parse::<Prefix>().unwrap().len, 16);
        assert_eq!("fd00::1".parse::<Prefix>().unwrap().len, 128);
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nonsense".parse::<Prefix>().is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert!(parse_mac("02:00:zz").is_err());
        assert!(parse_mac("").is_err());
    }
}
