//! Outbound HTTP over `wasi:http/outgoing-handler`, blocking and small.
//!
//! ```ignore
//! use serde::Deserialize;
//! use tidemark_sdk::http;
//!
//! #[derive(Deserialize)]
//! struct Rate { eur: f64 }
//!
//! let rate: Rate = http::get("https://api.example.com/rate")?
//!     .error_for_status()?
//!     .json()?;
//! ```
//!
//! Every request passes the attempt's egress policy: the host refuses a
//! host outside the tenant's allowlist or the task's `allowed_hosts` with
//! [`ErrorCode::HttpRequestDenied`] (see [`HttpError::is_denied`]), before
//! anything reaches the network. An [`HttpError`] converts into the task's
//! [`Error`](crate::Error) with `?`: transient failures (timeouts, refused
//! or dropped connections, 429 and 5xx statuses) are retryable, the rest
//! fatal. The whole response body is read into memory, within the
//! attempt's response-body quota.
//!
//! The component then imports `wasi:http/outgoing-handler@0.2` beside the
//! `tidemark:task/task` world, as the host links it for every task.

use std::fmt;

use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

pub use wasip2::http::types::ErrorCode;

/// The most bytes written to a request body stream in one call (the
/// `wasi:io` contract allows 4096 per `blocking-write-and-flush`).
const WRITE_CHUNK: usize = 4096;
const READ_CHUNK: u64 = 64 << 10;

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response, or [`HttpError::Status`] if its status is not 2xx.
    pub fn error_for_status(self) -> Result<Self, HttpError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(HttpError::Status(self.status))
        }
    }

    /// The first value of header `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body)
            .map_err(|e| HttpError::Decode(format!("body is not UTF-8: {e}")))
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HttpError::Decode(format!("body is not the expected JSON: {e}")))
    }
}

/// Why a request produced no usable response.
#[derive(Debug, Clone)]
pub enum HttpError {
    /// The URL, method or a header could not be turned into a request.
    InvalidRequest(String),
    /// The host refused or failed the request with this `wasi:http`
    /// `error-code` (e.g. `HTTP-request-denied` outside the allowlists).
    Code(ErrorCode),
    /// Reading or writing a body failed without an HTTP error code.
    Io(String),
    /// [`Response::error_for_status`] on a status that is not 2xx.
    Status(u16),
    /// [`Response::text`] or [`Response::json`] could not decode the body.
    Decode(String),
}

impl HttpError {
    /// The `wasi:http` error code, if the host reported one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            HttpError::Code(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the egress policy refused the request (`HTTP-request-denied`).
    pub fn is_denied(&self) -> bool {
        matches!(self, HttpError::Code(ErrorCode::HttpRequestDenied))
    }

    /// Whether a later attempt may succeed: timeouts, refused or dropped
    /// connections, DNS timeouts, 429 and 5xx statuses.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Code(c) => matches!(
                c,
                ErrorCode::DnsTimeout
                    | ErrorCode::DestinationUnavailable
                    | ErrorCode::ConnectionRefused
                    | ErrorCode::ConnectionTerminated
                    | ErrorCode::ConnectionTimeout
                    | ErrorCode::ConnectionReadTimeout
                    | ErrorCode::ConnectionWriteTimeout
                    | ErrorCode::HttpResponseIncomplete
                    | ErrorCode::HttpResponseTimeout
            ),
            HttpError::Status(s) => *s == 429 || *s >= 500,
            _ => false,
        }
    }
}

/// The WIT name of an error code, e.g. `HTTP-request-denied` (the same
/// name the Python and JavaScript SDKs report).
pub fn code_name(code: &ErrorCode) -> String {
    let debug = format!("{code:?}");
    let debug = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
    let variant = debug.split(['(', ' ', '{']).next().unwrap_or(debug);
    wit_name(variant)
}

/// `HttpRequestDenied` → `HTTP-request-denied`, `DnsError` → `DNS-error`.
fn wit_name(camel: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        words.last_mut().unwrap().push(c.to_ascii_lowercase());
    }
    words
        .into_iter()
        .map(|w| match w.as_str() {
            "http" | "dns" | "tls" | "ip" => w.to_ascii_uppercase(),
            _ => w,
        })
        .collect::<Vec<_>>()
        .join("-")
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HttpError::Code(c) => {
                write!(f, "{}", code_name(c))?;
                let debug = format!("{c:?}");
                match debug.split_once('(') {
                    Some((_, detail)) => write!(f, " ({}", detail),
                    None => Ok(()),
                }
            }
            HttpError::Io(m) => write!(f, "body: {m}"),
            HttpError::Status(s) => write!(f, "HTTP status {s}"),
            HttpError::Decode(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for crate::Error {
    fn from(err: HttpError) -> Self {
        if err.is_transient() {
            crate::Error::Retryable(err.to_string())
        } else {
            crate::Error::Fatal(err.to_string())
        }
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    request("GET", url, &[], None)
}

/// Sends one request and reads the whole response. `headers` are name/value
/// pairs; a `body` gets a `content-length` unless `headers` set one.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let parts = Url::parse(url)?;
    let mut fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            fields.push(("content-length".into(), b.len().to_string().into_bytes()));
        }
    }
    let fields = Fields::from_list(&fields)
        .map_err(|e| HttpError::InvalidRequest(format!("headers: {e:?}")))?;
    let req = OutgoingRequest::new(fields);
    let invalid = |what: &str| HttpError::InvalidRequest(format!("{what} of {url:?}"));
    req.set_method(&method_of(method))
        .map_err(|()| HttpError::InvalidRequest(format!("method {method:?}")))?;
    req.set_scheme(Some(&parts.scheme))
        .map_err(|()| invalid("scheme"))?;
    req.set_authority(Some(parts.authority))
        .map_err(|()| invalid("authority"))?;
    req.set_path_with_query(Some(&parts.path_with_query))
        .map_err(|()| invalid("path"))?;
    let out_body = match body {
        Some(_) => Some(
            req.body()
                .map_err(|()| HttpError::Io("request body taken twice".into()))?,
        ),
        None => None,
    };
    let future = outgoing_handler::handle(req, None).map_err(HttpError::Code)?;
    if let (Some(out_body), Some(bytes)) = (out_body, body) {
        let stream = out_body
            .write()
            .map_err(|()| HttpError::Io("request body stream taken twice".into()))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The response reports why (e.g. a body over the quota).
                break;
            }
        }
        drop(stream);
        // A failure here shows again as the response's error.
        let _ = OutgoingBody::finish(out_body, None);
    }
    future.subscribe().block();
    let resp = future
        .get()
        .ok_or_else(|| HttpError::Io("response not ready after waiting".into()))?
        .map_err(|()| HttpError::Io("response taken twice".into()))?
        .map_err(HttpError::Code)?;
    read(resp)
}

fn read(resp: IncomingResponse) -> Result<Response, HttpError> {
    let status = resp.status();
    let headers = resp.headers().entries();
    let body = resp
        .consume()
        .map_err(|()| HttpError::Io("response body taken twice".into()))?;
    let stream = body
        .stream()
        .map_err(|()| HttpError::Io("response body stream taken twice".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasip2::http::types::http_error_code(&e) {
                    Some(code) => HttpError::Code(code),
                    None => HttpError::Io(e.to_debug_string()),
                });
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

fn method_of(method: &str) -> Method {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        _ => Method::Other(method.to_owned()),
    }
}

/// The parts of an absolute `http(s)://` URL a request needs.
struct Url<'a> {
    scheme: Scheme,
    authority: &'a str,
    path_with_query: String,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Self, HttpError> {
        let bad = |why: &str| HttpError::InvalidRequest(format!("{url:?}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad("the scheme is not http or https")),
        };
        // The fragment never goes to the server.
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let path_with_query = match path.chars().next() {
            Some('/') => path.to_owned(),
            _ => format!("/{path}"),
        };
        Ok(Url {
            scheme,
            authority,
            path_with_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_names_keep_the_acronyms() {
        assert_eq!(wit_name("HttpRequestDenied"), "HTTP-request-denied");
        assert_eq!(wit_name("DnsTimeout"), "DNS-timeout");
        assert_eq!(
            wit_name("DestinationIpProhibited"),
            "destination-IP-prohibited"
        );
        assert_eq!(wit_name("TlsAlertReceived"), "TLS-alert-received");
        assert_eq!(wit_name("InternalError"), "internal-error");
        assert_eq!(
            code_name(&ErrorCode::HttpRequestDenied),
            "HTTP-request-denied"
        );
        assert_eq!(
            code_name(&ErrorCode::HttpResponseBodySize(Some(100))),
            "HTTP-response-body-size"
        );
    }

    #[test]
    fn urls_split_into_request_parts() {
        let u = Url::parse("http://127.0.0.1:8080/a/b?x=1#frag").unwrap();
        assert_eq!(
            (u.authority, u.path_with_query.as_str()),
            ("127.0.0.1:8080", "/a/b?x=1")
        );
        let u = Url::parse("https://example.com").unwrap();
        assert_eq!(
            (u.authority, u.path_with_query.as_str()),
            ("example.com", "/")
        );
        let u = Url::parse("https://example.com?q").unwrap();
        assert_eq!(u.path_with_query, "/?q");
        assert!(Url::parse("example.com/x").is_err());
        assert!(Url::parse("ftp://example.com/x").is_err());
        assert!(Url::parse("http:///x").is_err());
    }

    #[test]
    fn transient_failures_are_retryable() {
        let e: crate::Error = HttpError::Code(ErrorCode::HttpRequestDenied).into();
        assert_eq!(e, crate::Error::Fatal("HTTP-request-denied".into()));
        let e: crate::Error = HttpError::Status(503).into();
        assert_eq!(e, crate::Error::Retryable("HTTP status 503".into()));
        let e: crate::Error = HttpError::Code(ErrorCode::ConnectionRefused).into();
        assert!(matches!(e, crate::Error::Retryable(_)));
    }
}
