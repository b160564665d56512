//! `fetch`: sends HTTP requests through `wasi:http/outgoing-handler` and
//! writes the last response's status and body length to dataset `fetch`
//! (keys `status`, `length`); exercises outbound HTTP and its policy.
//!
//! Params: `url` (required), `method` (`GET`), `repeat` (requests sent one
//! after another, 1), `parallel` (requests in flight at once before any is
//! read, 1), `body_bytes` (a request body of that many bytes, none),
//! `first_byte_timeout_ms` (asked of the host, none), `header` (one request
//! header, `name: value`, none), `body_delay_ms` (a wait before writing the
//! body, so the response can arrive first, 0). A request that fails
//! is a fatal task error whose message starts with the `error-code`, e.g.
//! `ErrorCode::HttpRequestDenied`.

use tidemark_sdk::{export_task, Context, Dataset, Error, Outcome, Result, Task};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

struct Fetch;

fn code(e: ErrorCode) -> Error {
    Error::fatal(format!("{e:?}"))
}

fn start(ctx: &Context, url: &str) -> Result<FutureIncomingResponse> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::fatal(format!("{url:?} has no scheme")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    if let Some(h) = ctx.param("header").filter(|h| !h.is_empty()) {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| Error::fatal(format!("header {h:?} is not `name: value`")))?;
        headers
            .append(name.trim(), value.trim().as_bytes())
            .map_err(|e| Error::fatal(format!("header {name:?} refused: {e:?}")))?;
    }
    let req = OutgoingRequest::new(headers);
    let method = match ctx.param("method").unwrap_or("GET") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        other => Method::Other(other.to_owned()),
    };
    let bad = |what: &str| Error::fatal(format!("invalid {what} in {url:?}"));
    req.set_method(&method).map_err(|()| bad("method"))?;
    req.set_scheme(Some(&match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    }))
    .map_err(|()| bad("scheme"))?;
    req.set_authority(Some(authority))
        .map_err(|()| bad("authority"))?;
    req.set_path_with_query(Some(path))
        .map_err(|()| bad("path"))?;
    let body_bytes: Option<usize> = ctx.param_opt("body_bytes")?;
    let body = body_bytes
        .map(|_| {
            req.body()
                .map_err(|()| Error::fatal("request body taken twice"))
        })
        .transpose()?;
    let options = match ctx.param_opt::<u64>("first_byte_timeout_ms")? {
        Some(ms) => {
            let o = RequestOptions::new();
            o.set_first_byte_timeout(Some(ms * 1_000_000))
                .map_err(|()| Error::fatal("first_byte_timeout_ms refused"))?;
            Some(o)
        }
        None => None,
    };
    let future = outgoing_handler::handle(req, options).map_err(code)?;
    if let (Some(body), Some(n)) = (body, body_bytes) {
        let delay: u64 = ctx.param_or("body_delay_ms", 0)?;
        if delay > 0 {
            wasip2::clocks::monotonic_clock::subscribe_duration(delay * 1_000_000).block();
        }
        let out = body
            .write()
            .map_err(|()| Error::fatal("request body stream taken twice"))?;
        let chunk = vec![b'x'; 4096];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            if out.blocking_write_and_flush(&chunk[..k]).is_err() {
                break;
            }
            left -= k;
        }
        drop(out);
        // A failure here shows again as the response's error.
        let _ = OutgoingBody::finish(body, None);
    }
    Ok(future)
}

/// Waits for the response and reads its whole body: `(status, length)`.
fn finish(future: FutureIncomingResponse) -> Result<(u16, usize)> {
    future.subscribe().block();
    let resp = future
        .get()
        .ok_or_else(|| Error::fatal("response not ready after waiting"))?
        .map_err(|()| Error::fatal("response taken twice"))?
        .map_err(code)?;
    let status = resp.status();
    let body = resp
        .consume()
        .map_err(|()| Error::fatal("response body taken twice"))?;
    let stream = body
        .stream()
        .map_err(|()| Error::fatal("response stream taken twice"))?;
    let mut length = 0;
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => length += chunk.len(),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let what = match wasip2::http::types::http_error_code(&e) {
                    Some(c) => format!("{c:?}"),
                    None => e.to_debug_string(),
                };
                return Err(Error::fatal(format!("{what} (reading the body)")));
            }
        }
    }
    Ok((status, length))
}

impl Task for Fetch {
    fn run(ctx: &Context) -> Result<Outcome> {
        let url: String = ctx.require_param("url")?;
        let repeat: u32 = ctx.param_or("repeat", 1)?;
        let parallel: u32 = ctx.param_or("parallel", 1)?;
        let mut last = (0, 0);
        for _ in 0..repeat {
            let futures = (0..parallel.max(1))
                .map(|_| start(ctx, &url))
                .collect::<Result<Vec<_>>>()?;
            for f in futures {
                last = finish(f)?;
            }
        }
        let (status, length) = last;
        let out = Dataset::new("fetch");
        out.put("status", status.to_string().as_bytes())?;
        out.put("length", length.to_string().as_bytes())?;
        Ok(Outcome::summary(format!("status {status}, {length} bytes")))
    }
}

export_task!(Fetch);
