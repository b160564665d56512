//! One allowlist pattern, `scheme://host[:port]`: parsing, matching a
//! request, and containment of one pattern in another.

use std::fmt;
use std::net::IpAddr;

use super::Target;

/// A parsed pattern; displays as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    original: String,
    /// `None`: any scheme.
    scheme: Option<&'static str>,
    host: Host,
    /// Inclusive; `*` is `1..=65535`.
    ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    /// A lowercase DNS name.
    Name(String),
    /// `*.domain`: stored as `.domain`.
    Subdomain(String),
    /// An address or CIDR range.
    Net(Net),
}

/// An IP network: the address with its host bits cleared, and the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn bits(ip: IpAddr) -> (u128, u8) {
        match ip {
            IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    fn new(addr: IpAddr, prefix: u8) -> Self {
        let (bits, width) = Self::bits(addr);
        let masked = bits & Self::mask(prefix, width);
        let addr = match addr {
            IpAddr::V4(_) => IpAddr::V4((masked as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(masked.into()),
        };
        Net { addr, prefix }
    }

    fn mask(prefix: u8, width: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            (u128::MAX << (width - prefix)) & (u128::MAX >> (128 - width))
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let (mine, width) = Self::bits(self.addr);
        let (theirs, _) = Self::bits(ip);
        theirs & Self::mask(self.prefix, width) == mine
    }

    fn contains_net(&self, other: &Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
}

/// A pattern that cannot be parsed; nothing is stored when this is
/// returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {pattern:?}: {reason} (expected scheme://host[:port], e.g. https://api.example.com, https://*.example.com:8443, http://10.0.0.0/8:*)")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let bad = |reason: &str| PatternError {
            pattern: pattern.to_owned(),
            reason: reason.to_owned(),
        };
        let text = pattern.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("missing the scheme (http://, https:// or *://)"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            "http" => Some("http"),
            "https" => Some("https"),
            _ => return Err(bad("the scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("only :port may follow an IPv6 address"))?,
                ),
            };
            (host, port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.contains('/') && host.parse::<IpAddr>().is_err() && !looks_like_cidr(host) {
            return Err(bad("a pattern has no path"));
        }
        let host = parse_host(host).map_err(|r| bad(&r))?;
        let ports = match port {
            None => match scheme {
                Some("http") => (80, 80),
                Some("https") => (443, 443),
                _ => {
                    return Err(bad(
                        "with scheme * the port must be given (a number, lo-hi or *)",
                    ))
                }
            },
            Some("*") => (1, u16::MAX),
            Some(p) => parse_ports(p).map_err(|r| bad(&r))?,
        };
        Ok(HostPattern {
            original: text.to_owned(),
            scheme,
            host,
            ports,
        })
    }

    pub(super) fn allows(&self, t: &Target) -> bool {
        self.scheme_allows(&t.scheme)
            && self.port_allows(t.port)
            && match &self.host {
                Host::Any => true,
                Host::Name(n) => *n == t.host,
                Host::Subdomain(suffix) => t.host.ends_with(suffix.as_str()),
                Host::Net(net) => t.host.parse().is_ok_and(|ip| net.contains(ip)),
            }
    }

    pub(super) fn names_address(&self, t: &Target, ip: IpAddr) -> bool {
        matches!(&self.host, Host::Net(net) if net.contains(ip))
            && self.scheme_allows(&t.scheme)
            && self.port_allows(t.port)
    }

    /// Whether every request `other` allows is one this pattern allows.
    pub(super) fn covers(&self, other: &HostPattern) -> bool {
        let scheme = match (self.scheme, other.scheme) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        let ports = self.ports.0 <= other.ports.0 && other.ports.1 <= self.ports.1;
        let host = match (&self.host, &other.host) {
            (Host::Any, _) => true,
            (Host::Name(a), Host::Name(b)) => a == b,
            (Host::Subdomain(s), Host::Name(n)) => n.ends_with(s.as_str()),
            (Host::Subdomain(s), Host::Subdomain(t)) => t.ends_with(s.as_str()),
            (Host::Net(a), Host::Net(b)) => a.contains_net(b),
            _ => false,
        };
        scheme && ports && host
    }

    fn scheme_allows(&self, scheme: &str) -> bool {
        self.scheme.is_none_or(|s| s == scheme)
    }

    fn port_allows(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

fn looks_like_cidr(host: &str) -> bool {
    host.split_once('/')
        .is_some_and(|(a, p)| a.parse::<IpAddr>().is_ok() && p.parse::<u8>().is_ok())
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host == "*" {
        return Ok(Host::Any);
    }
    if let Some((addr, prefix)) = host.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} before / is not an IP address"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= width)
            .ok_or_else(|| format!("the prefix length must be a number from 0 to {width}"))?;
        return Ok(Host::Net(Net::new(addr, prefix)));
    }
    if let Ok(addr) = host.parse::<IpAddr>() {
        let width = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(Host::Net(Net::new(addr, width)));
    }
    let (wild, name) = match host.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, host),
    };
    if name.contains('*') {
        return Err(
            "a wildcard is allowed only as the whole host (*) or its first label (*.example.com)"
                .into(),
        );
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{host:?} is not a host name, IP address or CIDR range"
        ));
    }
    Ok(if wild {
        Host::Subdomain(format!(".{name}"))
    } else {
        Host::Name(name)
    })
}

fn parse_ports(p: &str) -> Result<(u16, u16), String> {
    let port = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("port {s:?} is not a number from 1 to 65535"))
    };
    match p.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (port(lo)?, port(hi)?);
            if lo > hi {
                return Err(format!("port range {p:?} is empty"));
            }
            Ok((lo, hi))
        }
        None => port(p).map(|n| (n, n)),
    }
}
