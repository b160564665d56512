//! Outbound HTTP policy: which hosts a task may call, and on which
//! addresses.
//!
//! Deny by default. A request leaves the sandbox only if both the tenant's
//! allowlist (admin-managed, kept with the tenant record) and the task's own
//! `allowed_hosts` (its workflow definition; a subset of the tenant's,
//! checked when the workflow is applied) allow its scheme, host and port.
//! Patterns are Spin's `allowed_outbound_hosts` shape,
//! `scheme://host[:port]`:
//!
//! - scheme: `http`, `https` or `*`;
//! - host: a name (`api.example.com`), `*.example.com` (any subdomain, not
//!   the domain itself), `*` (any host), an IP address (`127.0.0.1`,
//!   `[::1]`) or a CIDR range (`10.0.0.0/8`, `[fc00::/7]`);
//! - port: a number, `lo-hi` (inclusive) or `*`; omitted, it is the
//!   scheme's default (80, 443; `*://` needs a port).
//!
//! Names are resolved by the executor's own connector, which refuses
//! loopback, private, link-local, unspecified and metadata addresses
//! ([`special`]) unless both allowlists name a range holding the address by
//! IP or CIDR: a name or wildcard never reaches them, whatever DNS says.

mod credentials;
mod pattern;

use std::net::IpAddr;
use std::time::Duration;

pub use credentials::{check_header_name, Auth, Credential, CredentialError, Credentials, Secret};
pub use pattern::{HostPattern, PatternError};

/// A list of patterns; empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(Vec<HostPattern>);

/// What one request asks for: the URL's scheme, host (lowercase, IPv6
/// without brackets) and port (the scheme's default when omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// The target of an absolute `http(s)://` URL.
    pub fn from_url(url: &str) -> Result<Target, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        Target::from_uri(&uri).ok_or_else(|| "has no scheme or host".into())
    }

    /// The target of a request URI: scheme, lowercase host, port (default
    /// by scheme); `None` without a scheme or host.
    pub fn from_uri(uri: &http::Uri) -> Option<Target> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let auth = uri.authority()?;
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let port = auth
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some(Target { scheme, host, port })
    }

    /// `host:port` (IPv6 in brackets), as logged and recorded.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl Allowlist {
    /// Parses every pattern; the first bad one is named in the error.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        patterns
            .iter()
            .map(|p| HostPattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Allowlist)
    }

    pub fn from_patterns(patterns: Vec<HostPattern>) -> Self {
        Allowlist(patterns)
    }

    /// The patterns, parsed.
    pub fn iter(&self) -> impl Iterator<Item = &HostPattern> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns as written.
    pub fn patterns(&self) -> Vec<String> {
        self.0.iter().map(|p| p.to_string()).collect()
    }

    /// Whether some pattern allows the request's scheme, host and port.
    pub fn allows(&self, t: &Target) -> bool {
        self.0.iter().any(|p| p.allows(t))
    }

    /// Whether some pattern names a range (IP or CIDR, not a name or a
    /// wildcard) holding `ip`, for the request's scheme and port.
    pub fn names_address(&self, t: &Target, ip: IpAddr) -> bool {
        self.0.iter().any(|p| p.names_address(t, ip))
    }

    /// Whether one of these patterns allows everything `p` allows.
    pub fn covers(&self, p: &HostPattern) -> bool {
        self.0.iter().any(|mine| mine.covers(p))
    }
}

/// Why a request was refused before it reached the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No pattern of the tenant's allowlist allows it.
    Tenant,
    /// No pattern of the task's `allowed_hosts` allows it.
    Task,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Denial::Tenant => "not in the tenant's egress allowlist",
            Denial::Task => "not in the task's allowed_hosts",
        })
    }
}

/// The outbound HTTP an attempt may do: both allowlists and its limits,
/// and the credentials the host adds to the requests they allow. The
/// default allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    pub tenant: Allowlist,
    pub task: Allowlist,
    pub limits: HttpLimits,
    /// Of the workflow's `http` connections, secrets opened at attempt
    /// start (`Debug` redacts them).
    pub credentials: Credentials,
}

impl Egress {
    /// Whether both allowlists allow the request.
    pub fn decide(&self, t: &Target) -> Result<(), Denial> {
        if !self.tenant.allows(t) {
            return Err(Denial::Tenant);
        }
        if !self.task.allows(t) {
            return Err(Denial::Task);
        }
        Ok(())
    }

    /// Whether the connector may connect to `ip` for this request: any
    /// public address, or a special one both allowlists name explicitly.
    pub fn address_allowed(&self, t: &Target, ip: IpAddr) -> Result<(), &'static str> {
        match special(ip) {
            None => Ok(()),
            Some(_) if self.tenant.names_address(t, ip) && self.task.names_address(t, ip) => Ok(()),
            Some(class) => Err(class),
        }
    }
}

/// Per-attempt limits of outbound HTTP (tenant quotas `http_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests one attempt may send.
    pub requests: u32,
    /// Requests in flight at once (sent, response body not finished).
    pub concurrent: u32,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// DNS, TCP and TLS together; the guest may ask for less.
    pub connect_timeout: Duration,
    /// From sending to the response head, and between body frames; the
    /// guest may ask for less.
    pub first_byte_timeout: Duration,
    /// From sending to the end of the response body.
    pub total_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            requests: 100,
            concurrent: 8,
            request_body_bytes: 16 << 20,
            response_body_bytes: 64 << 20,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
        }
    }
}

/// The class of an address a name must never lead to (SSRF, DNS
/// rebinding): `None` for an ordinary public address. IPv4-mapped and
/// NAT64 IPv6 addresses are judged by the IPv4 address they carry.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return special_v4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn special_v4(v4: std::net::Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4 == std::net::Ipv4Addr::new(169, 254, 169, 254) {
        Some("metadata")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        Some("shared (carrier-grade NAT)")
    } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
