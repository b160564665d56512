//! Outbound HTTP of one attempt (`wasi:http/outgoing-handler`).
//!
//! Every request passes [`EgressHooks::send_request`]: the per-attempt
//! request count, both allowlists, the concurrency limit and the declared
//! body size are checked before anything touches the network. A request
//! they let out under a connection's `base_url` gets that connection's
//! credential header from the host ([`crate::egress::Credentials`]), so the
//! guest never holds the secret. Then our own
//! connector (not wasmtime-wasi-http's `default_send_request`, which
//! resolves names itself) resolves the host, drops every address the policy
//! refuses (loopback, private, link-local, metadata, ... unless named by IP
//! or CIDR) and connects only to an address it checked, so DNS cannot steer
//! a request inside. Bodies are counted on the way through; timeouts are
//! the guest's `request-options` clamped to the tenant's quotas. Each
//! request leaves an [`HttpRequestRecord`] (never headers, paths or bodies).

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::Instrument;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

use super::attempt::{LogLine, LogSource};
use super::{CancelFlag, EPOCH_TICK};
use crate::egress::{Egress, Target};

/// What one outbound request did, kept with its attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequestRecord {
    pub method: String,
    /// `host:port` the task asked for (no path: it may carry secrets).
    pub host: String,
    /// The response status; `None` when no response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Request body bytes sent.
    pub bytes_out: u64,
    /// Response body bytes received.
    pub bytes_in: u64,
    /// From the request to the end of its response body or its failure.
    pub ms: u64,
    pub outcome: HttpOutcome,
    /// Why it failed; `None` when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How an outbound request ended. Each refusal and limit has its own kind
/// (and its own `wasi:http` error code for the guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpOutcome {
    /// A response arrived (any status) and its body ended or was dropped.
    Ok,
    /// No allowlist pattern allows it (`HTTP-request-denied`); it never
    /// reached the network.
    Denied,
    /// The host resolved only to addresses the policy refuses
    /// (`destination-IP-prohibited`).
    AddressProhibited,
    /// Over `http_requests_per_attempt` (`internal-error`).
    RequestsQuota,
    /// Over `http_concurrent_requests` (`connection-limit-reached`).
    ConcurrencyQuota,
    /// Over `http_request_body_bytes` (`HTTP-request-body-size`).
    RequestBodySize,
    /// Over `http_response_body_bytes` (`HTTP-response-body-size`).
    ResponseBodySize,
    /// DNS, connect, TLS and handshake took longer than allowed
    /// (`connection-timeout`).
    ConnectTimeout,
    /// No response head, or no next body frame, in time
    /// (`connection-read-timeout`).
    ReadTimeout,
    /// Over `http_total_timeout_ms` or the attempt's deadline
    /// (`HTTP-response-timeout`).
    TotalTimeout,
    /// DNS, connection, TLS or protocol failure.
    Failed,
    /// Still waiting when the attempt ended.
    Unfinished,
}

impl HttpOutcome {
    /// The snake_case name, for metric labels.
    pub fn as_label(self) -> &'static str {
        match self {
            HttpOutcome::Ok => "ok",
            HttpOutcome::Denied => "denied",
            HttpOutcome::AddressProhibited => "address_prohibited",
            HttpOutcome::RequestsQuota => "requests_quota",
            HttpOutcome::ConcurrencyQuota => "concurrency_quota",
            HttpOutcome::RequestBodySize => "request_body_size",
            HttpOutcome::ResponseBodySize => "response_body_size",
            HttpOutcome::ConnectTimeout => "connect_timeout",
            HttpOutcome::ReadTimeout => "read_timeout",
            HttpOutcome::TotalTimeout => "total_timeout",
            HttpOutcome::Failed => "failed",
            HttpOutcome::Unfinished => "unfinished",
        }
    }
}

/// The `wasi:http` state of one attempt's store.
pub(super) struct HttpState {
    pub ctx: WasiHttpCtx,
    pub hooks: EgressHooks,
}

impl HttpState {
    pub fn new(egress: Egress, started: Instant, deadline: Instant, cancel: CancelFlag) -> Self {
        HttpState {
            ctx: WasiHttpCtx::new(),
            hooks: EgressHooks {
                shared: Arc::new(Shared {
                    egress,
                    started,
                    deadline,
                    cancel,
                    sent: AtomicU32::new(0),
                    in_flight: AtomicU32::new(0),
                    entries: Mutex::new(Vec::new()),
                }),
            },
        }
    }

    /// Every request's record, and a log line for each that failed. A
    /// request still open is closed as it stands.
    pub fn take_records(&self) -> (Vec<HttpRequestRecord>, Vec<LogLine>) {
        let mut entries = self.hooks.shared.lock();
        let mut lines = Vec::new();
        let records = entries
            .drain(..)
            .map(|mut e| {
                if e.open {
                    e.rec.ms = e.started.elapsed().as_millis() as u64;
                    if e.rec.status.is_none() {
                        e.rec.outcome = HttpOutcome::Unfinished;
                        e.rec.error = Some("no response before the attempt ended".into());
                    }
                }
                if let Some(err) = &e.rec.error {
                    lines.push(LogLine {
                        at_ms: e.at_ms,
                        source: LogSource::Warn,
                        message: format!(
                            "http: {} {} {}: {err}",
                            e.rec.method,
                            e.rec.host,
                            e.rec.outcome.as_label()
                        ),
                    });
                }
                e.rec
            })
            .collect();
        (records, lines)
    }
}

/// The per-request hook: policy, limits, and our connector.
pub(super) struct EgressHooks {
    shared: Arc<Shared>,
}

/// What the hook and its (spawned) request futures share.
struct Shared {
    egress: Egress,
    started: Instant,
    /// The attempt's deadline: no request outlives it.
    deadline: Instant,
    /// An interrupting cancel ends waiting requests within a tick, so the
    /// guest runs again and the epoch callback can stop it.
    cancel: CancelFlag,
    sent: AtomicU32,
    in_flight: AtomicU32,
    entries: Mutex<Vec<Entry>>,
}

struct Entry {
    rec: HttpRequestRecord,
    started: Instant,
    /// Milliseconds since the attempt started.
    at_ms: u64,
    open: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // Entries are plain data, whole after every update.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self, method: String, host: String) -> usize {
        let mut entries = self.lock();
        entries.push(Entry {
            rec: HttpRequestRecord {
                method,
                host,
                status: None,
                bytes_out: 0,
                bytes_in: 0,
                ms: 0,
                outcome: HttpOutcome::Ok,
                error: None,
            },
            started: Instant::now(),
            at_ms: self.started.elapsed().as_millis() as u64,
            open: true,
        });
        entries.len() - 1
    }

    fn update(&self, idx: usize, f: impl FnOnce(&mut HttpRequestRecord)) {
        if let Some(e) = self.lock().get_mut(idx) {
            f(&mut e.rec);
        }
    }

    /// Records a request body over the quota. It closes an open record and
    /// replaces what the breach explains: a plain failure, or a response
    /// the server sent before reading the body.
    fn breach(&self, idx: usize, error: String) {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(idx) else {
            return;
        };
        if !e.open && !matches!(e.rec.outcome, HttpOutcome::Ok | HttpOutcome::Failed) {
            return;
        }
        if e.open {
            e.open = false;
            e.rec.ms = e.started.elapsed().as_millis() as u64;
        }
        e.rec.outcome = HttpOutcome::RequestBodySize;
        tracing::info!(
            method = e.rec.method,
            host = e.rec.host,
            outcome = e.rec.outcome.as_label(),
            "outbound HTTP request refused or failed: {error}"
        );
        e.rec.error = Some(error);
    }

    /// Closes a request's record; the first close wins.
    fn finish(&self, idx: usize, outcome: HttpOutcome, error: Option<String>) {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(idx).filter(|e| e.open) else {
            return;
        };
        e.open = false;
        e.rec.ms = e.started.elapsed().as_millis() as u64;
        e.rec.outcome = outcome;
        if let Some(error) = &error {
            tracing::info!(
                method = e.rec.method,
                host = e.rec.host,
                outcome = outcome.as_label(),
                "outbound HTTP request refused or failed: {error}"
            );
        }
        e.rec.error = error;
    }
}

/// A request in flight; dropping it frees its concurrency slot.
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

type SendResult = Result<(http::Response<WasiBody>, IoFuture), Error>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let shared = self.shared.clone();
        match admit(&shared, &request) {
            Err(e) => Box::new(std::future::ready(Err(e))),
            Ok((idx, target, slot)) => {
                let mut request = request;
                // Only a request the allowlists let out gets a credential.
                let path = request.uri().path().to_owned();
                if let Some(c) = shared.egress.credentials.for_request(&target, &path) {
                    c.apply(request.headers_mut());
                    tracing::debug!(
                        connection = c.connection,
                        host = target.authority(),
                        header = c.header().as_str(),
                        "credential added to an outbound request"
                    );
                }
                Box::new(send(shared, idx, target, slot, request, options).in_current_span())
            }
        }
    }
}

/// The checks made before anything touches the network, in order: the
/// request count, both allowlists, concurrency, the declared body size.
fn admit(
    shared: &Arc<Shared>,
    req: &http::Request<WasiBody>,
) -> Result<(usize, Target, InFlight), Error> {
    let method = req.method().to_string();
    let Some(target) = Target::from_uri(req.uri()) else {
        let idx = shared.open(method, req.uri().to_string());
        shared.finish(idx, HttpOutcome::Failed, Some("no host in the URL".into()));
        return Err(Error::HttpRequestUriInvalid);
    };
    let idx = shared.open(method, target.authority());
    let limits = &shared.egress.limits;
    if shared.sent.fetch_add(1, Ordering::SeqCst) >= limits.requests {
        let msg = format!(
            "tidemark: requests per attempt quota {} exceeded",
            limits.requests
        );
        shared.finish(idx, HttpOutcome::RequestsQuota, Some(msg.clone()));
        return Err(Error::InternalError(Some(msg)));
    }
    if let Err(denial) = shared.egress.decide(&target) {
        let msg = format!("{} is {denial}", target.authority());
        shared.finish(idx, HttpOutcome::Denied, Some(msg));
        return Err(Error::HttpRequestDenied);
    }
    if shared.in_flight.fetch_add(1, Ordering::SeqCst) >= limits.concurrent {
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let msg = format!(
            "tidemark: concurrent requests quota {} exceeded",
            limits.concurrent
        );
        shared.finish(idx, HttpOutcome::ConcurrencyQuota, Some(msg));
        return Err(Error::ConnectionLimitReached);
    }
    let slot = InFlight(shared.clone());
    if let Some(len) = content_length(req.headers()).filter(|n| *n > limits.request_body_bytes) {
        let msg = format!(
            "request body of {len} bytes is over the quota of {} bytes",
            limits.request_body_bytes
        );
        shared.finish(idx, HttpOutcome::RequestBodySize, Some(msg));
        return Err(Error::HttpRequestBodySize(Some(len)));
    }
    Ok((idx, target, slot))
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A failure before the response head, with its record's outcome.
struct Failure {
    outcome: HttpOutcome,
    error: Error,
    detail: String,
}

impl Failure {
    fn new(outcome: HttpOutcome, error: Error) -> Self {
        let detail = error.to_string();
        Failure {
            outcome,
            error,
            detail,
        }
    }
}

async fn send(
    shared: Arc<Shared>,
    idx: usize,
    target: Target,
    slot: InFlight,
    req: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let limits = shared.egress.limits.clone();
    let clamp = |asked: Option<Duration>, max: Duration| asked.map_or(max, |a| a.min(max));
    let connect_timeout = clamp(
        options.and_then(|o| o.connect_timeout),
        limits.connect_timeout,
    );
    let first_byte = clamp(
        options.and_then(|o| o.first_byte_timeout),
        limits.first_byte_timeout,
    );
    let between_bytes = clamp(
        options.and_then(|o| o.between_bytes_timeout),
        limits.first_byte_timeout,
    );
    let deadline = (Instant::now() + limits.total_timeout).min(shared.deadline);
    // A HEAD response declares the length of a body it does not carry.
    let has_body = req.method() != http::Method::HEAD;
    let exchange = exchange(&shared, idx, &target, req, connect_timeout, first_byte);
    let exchange = tokio::time::timeout_at(deadline.into(), exchange);
    let outcome = tokio::select! {
        r = exchange => r,
        () = cancelled(shared.cancel.clone()) => {
            shared.finish(idx, HttpOutcome::Failed, Some(CANCELLED.into()));
            return Err(Error::InternalError(Some(CANCELLED.into())));
        }
    };
    let (res, conn) = match outcome {
        Err(_) => {
            let msg = format!(
                "no response within the total timeout of {} ms",
                limits.total_timeout.as_millis()
            );
            shared.finish(idx, HttpOutcome::TotalTimeout, Some(msg));
            return Err(Error::HttpResponseTimeout);
        }
        Ok(Err(f)) => {
            shared.finish(idx, f.outcome, Some(f.detail));
            return Err(f.error);
        }
        Ok(Ok(pair)) => pair,
    };
    shared.update(idx, |r| r.status = Some(res.status().as_u16()));
    if let Some(len) =
        content_length(res.headers()).filter(|n| has_body && *n > limits.response_body_bytes)
    {
        let msg = format!(
            "response body of {len} bytes is over the quota of {} bytes",
            limits.response_body_bytes
        );
        shared.finish(idx, HttpOutcome::ResponseBodySize, Some(msg));
        return Err(Error::HttpResponseBodySize(Some(len)));
    }
    let res = res.map(|incoming| {
        ResponseBody {
            inner: incoming,
            shared: shared.clone(),
            idx,
            limit: limits.response_body_bytes,
            seen: 0,
            between_bytes,
            idle: None,
            total: Box::pin(tokio::time::sleep_until(deadline.into())),
            total_ms: limits.total_timeout.as_millis() as u64,
            cancel: shared.cancel.clone(),
            tick: Box::pin(tokio::time::interval(EPOCH_TICK)),
            _slot: slot,
            done: false,
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        match conn.await {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(e) => Err(Error::from(e)),
        }
    });
    Ok((res, io))
}

const CANCELLED: &str = "tidemark: the attempt was cancelled";

/// Resolves once `flag` is raised (checked every epoch tick).
async fn cancelled(flag: CancelFlag) {
    while !flag.is_raised() {
        tokio::time::sleep(EPOCH_TICK).await;
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

type Conn = hyper::client::conn::http1::Connection<TokioIo<Box<dyn Stream>>, WasiBody>;

/// Connects (resolve, check, TCP, TLS, handshake) and sends the request,
/// driving the connection until the response head arrives.
async fn exchange(
    shared: &Arc<Shared>,
    idx: usize,
    target: &Target,
    mut req: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte: Duration,
) -> Result<(http::Response<hyper::body::Incoming>, Option<Conn>), Failure> {
    let (mut sender, conn) = tokio::time::timeout(connect_timeout, connect(shared, target))
        .await
        .map_err(|_| Failure {
            outcome: HttpOutcome::ConnectTimeout,
            error: Error::ConnectionTimeout,
            detail: format!("no connection within {} ms", connect_timeout.as_millis()),
        })??;

    // The request line carries only the path; the scheme and authority
    // are for a proxy.
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Failure::new(HttpOutcome::Failed, Error::HttpRequestUriInvalid))?;
    let limit = shared.egress.limits.request_body_bytes;
    let req = req.map(|inner| {
        RequestBody {
            inner: Some(inner),
            shared: shared.clone(),
            idx,
            limit,
            seen: 0,
            ended: false,
        }
        .boxed_unsync()
    });

    let send = async move {
        match tokio::time::timeout(first_byte, sender.send_request(req)).await {
            Err(_) => Err(Failure {
                outcome: HttpOutcome::ReadTimeout,
                error: Error::ConnectionReadTimeout,
                detail: format!("no response within {} ms", first_byte.as_millis()),
            }),
            Ok(Err(e)) => Err(hyper_failure(e)),
            Ok(Ok(res)) => Ok(res),
        }
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let res = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let r = ready!(Pin::new(c).poll(cx));
            conn = None;
            match r {
                Ok(()) => send.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(hyper_failure(e))),
            }
        }
    })
    .await?;
    // `None`: the connection already ended and has nothing left to drive.
    Ok((res, conn))
}

/// A hyper failure; a request body over the quota fails the send with our
/// own error inside.
fn hyper_failure(e: hyper::Error) -> Failure {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(Error::HttpRequestBodySize(n)) = s.downcast_ref::<Error>() {
            return Failure::new(HttpOutcome::RequestBodySize, Error::HttpRequestBodySize(*n));
        }
        source = s.source();
    }
    let detail = format!("{e}");
    Failure {
        outcome: HttpOutcome::Failed,
        error: Error::Hyper(e),
        detail,
    }
}

/// Resolves the host, keeps the addresses the policy allows, connects to
/// the first that answers, and shakes hands (TLS for https, then HTTP/1).
async fn connect(
    shared: &Arc<Shared>,
    target: &Target,
) -> Result<(hyper::client::conn::http1::SendRequest<WasiBody>, Conn), Failure> {
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| Failure {
            outcome: HttpOutcome::Failed,
            error: Error::DnsError {
                rcode: Some("address not available".into()),
                info_code: None,
            },
            detail: format!("resolving {}: {e}", target.host),
        })?;
    let mut refused = Vec::new();
    let allowed: Vec<std::net::SocketAddr> = addrs
        .filter(|a| match shared.egress.address_allowed(target, a.ip()) {
            Ok(()) => true,
            Err(class) => {
                refused.push(format!("{} ({class})", a.ip()));
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(Failure {
            outcome: HttpOutcome::AddressProhibited,
            error: Error::DestinationIpProhibited,
            detail: if refused.is_empty() {
                format!("{} has no address", target.host)
            } else {
                format!(
                    "{} resolves only to refused addresses: {} (allow them by IP or CIDR to reach them)",
                    target.host,
                    refused.join(", ")
                )
            },
        });
    }
    let mut last = None;
    let mut stream = None;
    for addr in allowed {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(tcp) = stream else {
        let e = last.unwrap_or_else(|| std::io::Error::other("no address"));
        let detail = format!("connecting to {}: {e}", target.authority());
        return Err(Failure {
            outcome: HttpOutcome::Failed,
            error: Error::Connect(e),
            detail,
        });
    };
    let io: Box<dyn Stream> = if target.scheme == "https" {
        let name = rustls::pki_types::ServerName::try_from(target.host.as_str())
            .map_err(|e| Failure::new(HttpOutcome::Failed, Error::InvalidDnsNameError(e)))?
            .to_owned();
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| Failure::new(HttpOutcome::Failed, Error::Tls(e)))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(hyper_failure)
}

/// TLS with the compiled-in web PKI roots (no system store: the same
/// answer on every machine).
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// The guest's request body, counted and capped.
///
/// A breach is recorded where it is seen, not from the error hyper passes
/// on: a server that answers (or closes) before reading the body ends the
/// exchange first, and then nothing else would say why. If hyper drops the
/// body before its end (the exchange failed or the response came first),
/// what the guest still writes is drained and counted, so a body over the
/// quota is recorded as such whatever the server did meanwhile.
struct RequestBody {
    /// `None` once handed to the drain.
    inner: Option<WasiBody>,
    shared: Arc<Shared>,
    idx: usize,
    limit: u64,
    seen: u64,
    /// The body ended, failed or went over the quota.
    ended: bool,
}

impl RequestBody {
    fn over(&self) -> String {
        format!("request body over the quota of {} bytes", self.limit)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    let n = data.len() as u64;
                    this.seen += n;
                    if this.seen > this.limit {
                        this.ended = true;
                        this.shared.breach(this.idx, this.over());
                        return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.shared.update(this.idx, |r| r.bytes_out += n);
                }
            }
            Some(Err(_)) | None => this.ended = true,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let (Some(mut body), Ok(rt)) = (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (shared, idx, limit, mut seen) = (self.shared.clone(), self.idx, self.limit, self.seen);
        let over = self.over();
        // Ends with the guest's body (at the latest when the attempt's
        // store drops it) or at the attempt's deadline.
        rt.spawn(async move {
            let drain = async {
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if seen > limit {
                        shared.breach(idx, over);
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout_at(shared.deadline.into(), drain).await;
        });
    }
}

/// The response body, counted and capped, under the between-bytes and
/// total timeouts; it holds the request's concurrency slot until it ends.
struct ResponseBody {
    inner: hyper::body::Incoming,
    shared: Arc<Shared>,
    idx: usize,
    limit: u64,
    seen: u64,
    between_bytes: Duration,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    total: Pin<Box<tokio::time::Sleep>>,
    total_ms: u64,
    cancel: CancelFlag,
    /// Wakes a guest waiting for data every tick, to see a cancel.
    tick: Pin<Box<tokio::time::Interval>>,
    _slot: InFlight,
    done: bool,
}

impl ResponseBody {
    fn fail(
        &mut self,
        outcome: HttpOutcome,
        error: Error,
        detail: String,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.done = true;
        self.shared.finish(self.idx, outcome, Some(detail));
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.cancel.is_raised() {
            let error = Error::InternalError(Some(CANCELLED.into()));
            return this.fail(HttpOutcome::Failed, error, CANCELLED.into());
        }
        if this.total.as_mut().poll(cx).is_ready() {
            let detail = format!(
                "response not finished within the total timeout of {} ms",
                this.total_ms
            );
            return this.fail(
                HttpOutcome::TotalTimeout,
                Error::HttpResponseTimeout,
                detail,
            );
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.done = true;
                this.shared.finish(this.idx, HttpOutcome::Ok, None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let detail = format!("reading the response: {e}");
                this.fail(HttpOutcome::Failed, Error::Hyper(e), detail)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.idle = None;
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.seen += n;
                    this.shared.update(this.idx, |r| r.bytes_in += n);
                    if this.seen > this.limit {
                        let detail =
                            format!("response body over the quota of {} bytes", this.limit);
                        return this.fail(
                            HttpOutcome::ResponseBodySize,
                            Error::HttpResponseBodySize(Some(this.limit)),
                            detail,
                        );
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                while this.tick.as_mut().poll_tick(cx).is_ready() {}
                let between = this.between_bytes;
                let idle = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(between)));
                ready!(idle.as_mut().poll(cx));
                let detail = format!("no data for {} ms", between.as_millis());
                this.fail(
                    HttpOutcome::ReadTimeout,
                    Error::ConnectionReadTimeout,
                    detail,
                )
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The guest dropped the body before its end: what it read stands.
        self.shared.finish(self.idx, HttpOutcome::Ok, None);
    }
}
