//! Credentials the host adds to a task's requests, so the guest never sees
//! a secret.
//!
//! Each `http` connection a workflow names becomes a [`Credential`] when an
//! attempt starts: its `base_url` and one header (`Authorization: Bearer`,
//! `Authorization: Basic` or a header of its own) whose value holds the
//! opened secret. A request whose URL lies under the base URL (same scheme,
//! host and port, path on a segment boundary) gets the header, replacing
//! one of the same name the guest set. Injection is decided after the
//! allowlists: it never lets a request out that they refuse.
//!
//! The value lives in a [`Secret`], whose `Debug` is redacted and which is
//! marked sensitive as a header value; nothing here formats it.

use std::fmt;

use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use super::Target;

/// Why a connection could not become a credential. Names the connection
/// and the field, never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection {connection:?}: {field}: {message}")]
pub struct CredentialError {
    pub connection: String,
    pub field: String,
    pub message: String,
}

/// A header value holding a secret: `Debug` shows `<redacted>`.
#[derive(Clone)]
pub struct Secret(HeaderValue);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for Secret {
    /// Compares in time independent of where the values differ.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

/// The URL prefix a credential is for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Base {
    target: Target,
    /// The path without a trailing `/` (empty: every path).
    path: String,
}

/// One connection's credential: the header it adds under its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The connection it comes from.
    pub connection: String,
    base: Base,
    header: HeaderName,
    value: Secret,
}

/// How a connection authenticates, with its secret opened.
pub enum Auth<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer { token: &'a [u8] },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        username: &'a str,
        password: &'a [u8],
    },
    /// `<header>: <value>`.
    Header { name: &'a str, value: &'a [u8] },
}

/// Headers a credential may not set: they frame or route the request.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// Checks a header name a connection's `header` setting gives.
pub fn check_header_name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not an HTTP header name"))?;
    if RESERVED.contains(&parsed.as_str()) {
        return Err(format!(
            "{name:?} frames or routes the request; use another header"
        ));
    }
    Ok(parsed)
}

impl Credential {
    /// A credential for requests under `base_url`.
    pub fn new(connection: &str, base_url: &str, auth: Auth<'_>) -> Result<Self, CredentialError> {
        let err = |field: &str, message: String| CredentialError {
            connection: connection.to_owned(),
            field: field.to_owned(),
            message,
        };
        let base = parse_base(base_url).ok_or_else(|| {
            err(
                "config.base_url",
                format!("{base_url:?} is not an http(s) URL"),
            )
        })?;
        let not_a_value = |field: &str| {
            err(
                field,
                "is not a valid HTTP header value (control characters?)".into(),
            )
        };
        let (header, value) = match auth {
            Auth::Bearer { token } => {
                let mut v = b"Bearer ".to_vec();
                v.extend_from_slice(token);
                let v = HeaderValue::from_bytes(&v).map_err(|_| not_a_value("secrets.token"))?;
                (AUTHORIZATION, v)
            }
            Auth::Basic { username, password } => {
                let mut pair = username.as_bytes().to_vec();
                pair.push(b':');
                pair.extend_from_slice(password);
                let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
                let v = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| not_a_value("secrets.password"))?;
                (AUTHORIZATION, v)
            }
            Auth::Header { name, value } => {
                let name = check_header_name(name).map_err(|m| err("config.header", m))?;
                let v = HeaderValue::from_bytes(value).map_err(|_| not_a_value("secrets.value"))?;
                (name, v)
            }
        };
        let mut value = value;
        value.set_sensitive(true);
        Ok(Credential {
            connection: connection.to_owned(),
            base,
            header,
            value: Secret(value),
        })
    }

    /// The header this credential sets.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Sets the header, replacing every value of that name the guest set.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(self.header.clone(), self.value.0.clone());
    }

    /// Whether a request to `target` with `path` lies under the base URL.
    fn covers(&self, target: &Target, path: &str) -> bool {
        if self.base.target != *target {
            return false;
        }
        let base = self.base.path.as_str();
        base.is_empty()
            || path == base
            || path.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
    }
}

/// The credentials of one attempt. `Debug` names connections, base URLs and
/// headers only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials(Vec<Credential>);

impl Credentials {
    pub fn new(list: Vec<Credential>) -> Self {
        Credentials(list)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The credential for a request: the one whose base URL covers it with
    /// the longest path. None for a path that could climb out of a base
    /// path once the server normalizes it (`..`, `.`, encoded slashes).
    pub fn for_request(&self, target: &Target, path: &str) -> Option<&Credential> {
        if self.0.is_empty() || !plain_path(path) {
            return None;
        }
        self.0
            .iter()
            .filter(|c| c.covers(target, path))
            .max_by_key(|c| c.base.path.len())
    }
}

/// A path without dot segments (also percent-encoded) and without encoded
/// slashes or backslashes.
fn plain_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return false;
    }
    !lower.split('/').any(|seg| {
        let seg = seg.replace("%2e", ".");
        seg == "." || seg == ".."
    })
}

/// `scheme://host[:port][/path]` into a base; query and fragment ignored.
fn parse_base(url: &str) -> Option<Base> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let auth = uri.authority()?;
    if auth.as_str().contains('@') {
        return None;
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let port = auth
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let path = uri.path().trim_end_matches('/').to_owned();
    Some(Base {
        target: Target { scheme, host, port },
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(scheme: &str, host: &str, port: u16) -> Target {
        Target {
            scheme: scheme.into(),
            host: host.into(),
            port,
        }
    }

    fn bearer(name: &str, base: &str, token: &str) -> Credential {
        Credential::new(
            name,
            base,
            Auth::Bearer {
                token: token.as_bytes(),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_credential_covers_its_base_url_on_segment_boundaries() {
        let creds = Credentials::new(vec![
            bearer("api", "https://API.example.com/v1/", "t1"),
            bearer("admin", "https://api.example.com/v1/admin", "t2"),
            bearer("root", "http://other.example.com:8080", "t3"),
        ]);
        let api = target("https", "api.example.com", 443);
        let pick = |t: &Target, p: &str| creds.for_request(t, p).map(|c| c.connection.as_str());
        assert_eq!(pick(&api, "/v1"), Some("api"));
        assert_eq!(pick(&api, "/v1/orders"), Some("api"));
        assert_eq!(pick(&api, "/v1/admin/x"), Some("admin"));
        assert_eq!(pick(&api, "/v1x"), None);
        assert_eq!(pick(&api, "/v2/orders"), None);
        assert_eq!(pick(&api, "/v1/../admin"), None);
        assert_eq!(pick(&api, "/v1/%2E%2e/admin"), None);
        assert_eq!(pick(&api, "/v1%2f..%2fadmin"), None);
        // Scheme and port are part of the base.
        assert_eq!(pick(&target("http", "api.example.com", 80), "/v1"), None);
        assert_eq!(pick(&target("https", "api.example.com", 8443), "/v1"), None);
        let other = target("http", "other.example.com", 8080);
        assert_eq!(pick(&other, "/"), Some("root"));
        assert_eq!(pick(&other, "/anything"), Some("root"));
        assert_eq!(pick(&target("http", "other.example.com", 80), "/"), None);
    }

    #[test]
    fn headers_are_built_per_auth_and_replace_the_guests() {
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer guest"));
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer guest2"));
        bearer("a", "https://h", "tok").apply(&mut h);
        assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
        assert_eq!(h[AUTHORIZATION], "Bearer tok");
        assert!(h[AUTHORIZATION].is_sensitive());

        let basic = Credential::new(
            "b",
            "https://h",
            Auth::Basic {
                username: "ann",
                password: b"pw",
            },
        )
        .unwrap();
        basic.apply(&mut h);
        assert_eq!(h[AUTHORIZATION], "Basic YW5uOnB3");

        let custom = Credential::new(
            "c",
            "https://h",
            Auth::Header {
                name: "X-Api-Key",
                value: b"k",
            },
        )
        .unwrap();
        custom.apply(&mut h);
        assert_eq!(h["x-api-key"], "k");
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let c = bearer("a", "https://h/v1", "hunter2-secret");
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
        assert!(!format!("{:?}", Credentials::new(vec![c])).contains("hunter2"));
        let e = Credential::new(
            "a",
            "https://h",
            Auth::Bearer {
                token: b"bad\nhunter2",
            },
        )
        .unwrap_err();
        assert_eq!(e.field, "secrets.token");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = Credential::new(
            "a",
            "https://h",
            Auth::Header {
                name: "Host",
                value: b"x",
            },
        )
        .unwrap_err();
        assert_eq!(e.field, "config.header");
        assert!(Credential::new("a", "ftp://h", Auth::Bearer { token: b"t" }).is_err());
    }
}
