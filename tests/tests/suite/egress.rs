//! Outbound HTTP from tasks (`wasi:http`): deny by default, the tenant's
//! allowlist and the task's `allowed_hosts`, no SSRF through DNS, per-attempt
//! limits with their own error codes, and every request recorded. A real
//! HTTP server on 127.0.0.1 stands in for the world; it counts what reaches
//! it, so "denied" also means "never sent".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use tidemark::clock::ManualClock;
use tidemark::connection::RawConnection;
use tidemark::egress::{Allowlist, Egress, HttpLimits};
use tidemark::engine::{Engine, EngineConfig, EngineError};
use tidemark::executor::{AttemptError, ErrorKind, HttpOutcome, Limits, Trigger};
use tidemark::store::ConnectionStore;
use tidemark::store::SledStore;
use tidemark::tenancy::Tenancy;
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::FETCH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::{invocation, store, DAY};

/// A plain HTTP/1.1 server on 127.0.0.1: `/ok` → "hello", `/big` → 100
/// bytes with a length, `/stream` → 100 bytes until close, `/slow` → waits
/// 3 s, anything else → 404. It counts requests, keeps each request's head
/// (request line and headers) and stops when the test's runtime ends.
pub(crate) struct Server {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The heads of the requests for `path`, in arrival order.
    pub fn heads_for(&self, path: &str) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.split_whitespace().nth(1) == Some(path))
            .cloned()
            .collect()
    }
}

/// The values of header `name` in a request head.
pub(crate) fn header_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

pub(crate) async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let counted = hits.clone();
    let kept = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let hits = counted.clone();
            let heads = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                };
                hits.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                heads.lock().unwrap().push(head.clone());
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let resp: Vec<u8> = match path.as_str() {
                    "/ok" => {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"
                            .to_vec()
                    }
                    "/big" => {
                        let mut r =
                            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n"
                                .to_vec();
                        r.extend_from_slice(&[b'x'; 100]);
                        r
                    }
                    "/stream" => {
                        let mut r = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
                        r.extend_from_slice(&[b'x'; 100]);
                        r
                    }
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_vec()
                    }
                    _ => {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = sock.write_all(&resp).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Server { port, hits, heads }
}

fn list(patterns: &[&str]) -> Allowlist {
    Allowlist::parse(patterns).unwrap()
}

/// Limits whose egress allows `patterns` for both the tenant and the task.
fn allowing(patterns: &[&str], http: HttpLimits) -> Limits {
    Limits {
        timeout: Duration::from_secs(30),
        egress: Egress {
            tenant: list(patterns),
            task: list(patterns),
            limits: http,
            ..Egress::default()
        },
        ..Limits::default()
    }
}

async fn fetch(limits: &Limits, params: &[(&str, &str)]) -> tidemark::executor::AttemptReport {
    crate::run(FETCH, &invocation("fetch", DAY, params), limits, store()).await
}

fn task_error(r: &tidemark::executor::AttemptReport) -> String {
    match &r.result {
        Err(AttemptError::Task { message, .. }) => message.clone(),
        other => panic!("expected a task error, got {other:?}; log {:?}", r.log),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_host_is_reached_and_the_request_recorded() {
    let s = server().await;
    let url = format!("http://127.0.0.1:{}/ok", s.port);
    let pattern = format!("http://127.0.0.1:{}", s.port);
    let r = fetch(
        &allowing(&[&pattern], HttpLimits::default()),
        &[("url", &url)],
    )
    .await;
    assert_eq!(
        r.result,
        Ok("status 200, 5 bytes".into()),
        "log {:?}",
        r.log
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    assert_eq!(r.http.len(), 1);
    let rec = &r.http[0];
    assert_eq!(
        (
            rec.method.as_str(),
            rec.host.clone(),
            rec.status,
            rec.bytes_in,
            rec.bytes_out,
            rec.outcome
        ),
        (
            "GET",
            format!("127.0.0.1:{}", s.port),
            Some(200),
            5,
            0,
            HttpOutcome::Ok
        )
    );
    assert_eq!(rec.error, None);
    // The record never carries the path (it may hold secrets).
    assert!(!serde_json::to_string(rec).unwrap().contains("/ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_is_denied_by_default_and_outside_either_allowlist() {
    let s = server().await;
    let url = format!("http://127.0.0.1:{}/ok", s.port);
    let here = format!("http://127.0.0.1:{}", s.port);
    let elsewhere = format!("http://127.0.0.1:{}", s.port.wrapping_add(1).max(1));
    let cases = [
        // No grant at all: the executor's default.
        (Limits::default(), "tenant"),
        // The task asks for it, the tenant does not allow it.
        (
            Limits {
                egress: Egress {
                    tenant: list(&["https://api.example.com"]),
                    task: list(&[&here]),
                    ..Egress::default()
                },
                ..Limits::default()
            },
            "tenant",
        ),
        // The tenant allows the host, the task's allowed_hosts do not.
        (
            Limits {
                egress: Egress {
                    tenant: list(&["http://127.0.0.0/8:*"]),
                    task: list(&[&elsewhere]),
                    ..Egress::default()
                },
                ..Limits::default()
            },
            "task",
        ),
    ];
    for (limits, whose) in cases {
        let r = fetch(&limits, &[("url", &url)]).await;
        assert_eq!(task_error(&r), "ErrorCode::HttpRequestDenied");
        assert_eq!(r.http.len(), 1);
        assert_eq!(r.http[0].outcome, HttpOutcome::Denied);
        assert_eq!(r.http[0].status, None);
        let why = r.http[0].error.clone().unwrap();
        assert!(why.contains(whose), "{why}");
        // The attempt's log names the host.
        assert!(
            r.log.iter().any(|l| l.message.contains("denied")
                && l.message.contains(&format!("127.0.0.1:{}", s.port))),
            "{:?}",
            r.log
        );
    }
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        0,
        "a denied request reached the server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_resolving_to_loopback_is_refused_unless_the_range_is_named() {
    let s = server().await;
    let url = format!("http://localhost:{}/ok", s.port);
    let by_name = format!("http://localhost:{}", s.port);
    let r = fetch(
        &allowing(&[&by_name], HttpLimits::default()),
        &[("url", &url)],
    )
    .await;
    assert_eq!(task_error(&r), "ErrorCode::DestinationIpProhibited");
    assert_eq!(r.http[0].outcome, HttpOutcome::AddressProhibited);
    assert!(
        r.http[0].error.as_ref().unwrap().contains("loopback"),
        "{:?}",
        r.http
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);

    // Naming the address range explicitly (in both lists) allows it.
    let range = format!("http://127.0.0.0/8:{}", s.port);
    let r = fetch(
        &allowing(&[&by_name, &range], HttpLimits::default()),
        &[("url", &url)],
    )
    .await;
    assert_eq!(
        r.result,
        Ok("status 200, 5 bytes".into()),
        "log {:?}",
        r.log
    );
    // And so does allowing exactly that address and port.
    let exact = format!("http://127.0.0.1:{}", s.port);
    let r = fetch(
        &allowing(&[&exact], HttpLimits::default()),
        &[("url", &format!("http://127.0.0.1:{}/ok", s.port))],
    )
    .await;
    assert_eq!(
        r.result,
        Ok("status 200, 5 bytes".into()),
        "log {:?}",
        r.log
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_limit_has_its_own_error_code_and_outcome() {
    let s = server().await;
    let pattern = format!("http://127.0.0.1:{}", s.port);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", s.port);
    let with = |http: HttpLimits| allowing(&[&pattern], http);

    // Response body over the quota: declared by its length, or streamed.
    let small = HttpLimits {
        response_body_bytes: 10,
        ..HttpLimits::default()
    };
    let r = fetch(&with(small.clone()), &[("url", &url("/big"))]).await;
    assert_eq!(task_error(&r), "ErrorCode::HttpResponseBodySize(Some(100))");
    assert_eq!(r.http[0].outcome, HttpOutcome::ResponseBodySize);
    let r = fetch(&with(small), &[("url", &url("/stream"))]).await;
    assert!(
        task_error(&r).contains("body size exceeds limit"),
        "{}",
        task_error(&r)
    );
    assert_eq!(r.http[0].outcome, HttpOutcome::ResponseBodySize);
    assert_eq!(r.http[0].status, Some(200));

    // Requests per attempt.
    let two = HttpLimits {
        requests: 2,
        ..HttpLimits::default()
    };
    let before = s.hits.load(Ordering::SeqCst);
    let r = fetch(&with(two), &[("url", &url("/ok")), ("repeat", "3")]).await;
    assert_eq!(
        task_error(&r),
        r#"ErrorCode::InternalError(Some("tidemark: requests per attempt quota 2 exceeded"))"#
    );
    let outcomes: Vec<HttpOutcome> = r.http.iter().map(|h| h.outcome).collect();
    assert_eq!(
        outcomes,
        [HttpOutcome::Ok, HttpOutcome::Ok, HttpOutcome::RequestsQuota]
    );
    assert_eq!(s.hits.load(Ordering::SeqCst) - before, 2);

    // Concurrent requests.
    let one = HttpLimits {
        concurrent: 1,
        ..HttpLimits::default()
    };
    let r = fetch(&with(one), &[("url", &url("/ok")), ("parallel", "2")]).await;
    assert_eq!(task_error(&r), "ErrorCode::ConnectionLimitReached");
    assert!(r
        .http
        .iter()
        .any(|h| h.outcome == HttpOutcome::ConcurrencyQuota));

    // Request body over the quota: also when the server answers before the
    // guest writes the body (the response head is then in before the
    // breach, which used to be recorded as `failed`).
    let tiny = HttpLimits {
        request_body_bytes: 100,
        ..HttpLimits::default()
    };
    for delay in ["0", "300"] {
        let before = s.heads_for("/ok").len();
        let r = fetch(
            &with(tiny.clone()),
            &[
                ("url", &url("/ok")),
                ("method", "POST"),
                ("body_bytes", "10000"),
                ("body_delay_ms", delay),
            ],
        )
        .await;
        // The guest may see the refusal while writing the body or when it
        // asks for the response (which one depends on scheduling), and when
        // the server answered before the body it may get that response; the
        // record says why either way.
        if delay == "0" || r.result.is_err() {
            assert!(task_error(&r).contains("ErrorCode::"), "{}", task_error(&r));
        }
        assert_eq!(
            r.http[0].outcome,
            HttpOutcome::RequestBodySize,
            "delay {delay}: {:?}",
            r.http[0]
        );
        assert!(r.http[0].bytes_out <= 100, "{:?}", r.http[0]);
        if delay != "0" {
            // The server saw the head and answered before the body came.
            assert_eq!(s.heads_for("/ok").len(), before + 1);
        }
    }

    // First-byte timeout: the quota wins over a longer one the guest asks.
    let quick = HttpLimits {
        first_byte_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let started = Instant::now();
    let r = fetch(
        &with(quick),
        &[("url", &url("/slow")), ("first_byte_timeout_ms", "60000")],
    )
    .await;
    assert_eq!(task_error(&r), "ErrorCode::ConnectionReadTimeout");
    assert_eq!(r.http[0].outcome, HttpOutcome::ReadTimeout);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Total timeout.
    let total = HttpLimits {
        total_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let started = Instant::now();
    let r = fetch(&with(total), &[("url", &url("/slow"))]).await;
    assert_eq!(task_error(&r), "ErrorCode::HttpResponseTimeout");
    assert_eq!(r.http[0].outcome, HttpOutcome::TotalTimeout);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Plugins that do not import wasi:http still run.
    crate::assert_engine_healthy().await;
}

const ADMIN: &str = "admin-secret-for-egress-tests";
/// 2024-03-04T00:00:00Z.
const MON: i64 = 1_709_510_400_000;

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn workflow(url: &str, allowed: &[&str]) -> RawWorkflow {
    let hosts: Vec<String> = allowed.iter().map(|h| format!("{h:?}")).collect();
    RawWorkflow::from_toml(&format!(
        "name = \"pull\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"get\"\nplugin = \"fetch\"\nallowed_hosts = [{}]\nparams = {{ url = {url:?} }}\n",
        hosts.join(", ")
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_allowlists_are_admin_managed_and_bound_each_tenant() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(MON));
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        clock,
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let tenancy = Tenancy::new(store, ADMIN);
    let alpha = tenancy.create_tenant("alpha", MON).unwrap().2;
    tenancy.create_tenant("beta", MON).unwrap();
    let app = tidemark::api::app(engine.clone(), tenancy);
    let here = format!("http://127.0.0.1:{}", s.port);
    let url = format!("http://127.0.0.1:{}/ok", s.port);

    // A malformed pattern is a 400 naming it, and nothing is stored.
    let (status, v) = call(
        &app,
        "PUT",
        "/api/v1/tenants/alpha/egress",
        ADMIN,
        serde_json::json!({"allowed_hosts": [here, "ftp://files.example.com"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_pattern");
    assert_eq!(v["error"]["details"]["pattern"], "ftp://files.example.com");
    let (_, v) = call(
        &app,
        "GET",
        "/api/v1/tenants/alpha/egress",
        ADMIN,
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["allowed_hosts"], serde_json::json!([]));
    // Only the admin sets it.
    let (status, _) = call(
        &app,
        "PUT",
        "/api/v1/tenants/alpha/egress",
        &alpha,
        serde_json::json!({"allowed_hosts": [here]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = call(
        &app,
        "PUT",
        "/api/v1/tenants/alpha/egress",
        ADMIN,
        serde_json::json!({"allowed_hosts": [here]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = call(
        &app,
        "GET",
        "/api/v1/egress",
        &alpha,
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["allowed_hosts"], serde_json::json!([here]));

    let fetch_wasm = std::fs::read(FETCH).unwrap();
    for t in ["alpha", "beta"] {
        engine
            .push_plugin(t, "fetch", fetch_wasm.clone())
            .await
            .unwrap();
    }
    // A task's allowed_hosts must stay within its tenant's allowlist.
    let wider = workflow(&url, &["http://127.0.0.1:*"]);
    match engine.apply_workflow("alpha", wider).await {
        Err(EngineError::Definition(e)) => {
            let m = e.to_string();
            assert!(m.starts_with("tasks[0].allowed_hosts[0]: "), "{m}");
            assert!(
                m.contains("not within the tenant's egress allowlist"),
                "{m}"
            );
        }
        other => panic!("expected a definition error, got {other:?}"),
    }
    let (status, v) = call(
        &app,
        "POST",
        "/api/v1/workflows",
        &alpha,
        serde_json::to_value(workflow(&url, &["https://*.example.com"])).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tasks[0].allowed_hosts[0]"));

    // Alpha's task reaches the server, and its attempt shows the request.
    engine
        .apply_workflow("alpha", workflow(&url, &[&here]))
        .await
        .unwrap();
    let run = engine
        .run_window("alpha", "pull", MON - 3_600_000, Trigger::Manual)
        .await
        .unwrap();
    engine.settle().await.unwrap();
    let attempts = engine.attempts("alpha", run.id).unwrap();
    assert_eq!(attempts[0].error_kind, None, "{:?}", attempts[0]);
    assert_eq!(attempts[0].http.len(), 1);
    assert_eq!(attempts[0].http[0].status, Some(200));
    let (status, v) = call(
        &app,
        "GET",
        &format!("/api/v1/runs/{}", run.id),
        &alpha,
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["attempts"][0]["http"][0]["status"], 200, "{v}");
    assert_eq!(v["attempts"][0]["http"][0]["bytes_in"], 5, "{v}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);

    // Alpha's allowlist is not beta's: beta cannot ask for the host, and
    // without asking it is denied.
    assert!(engine
        .apply_workflow("beta", workflow(&url, &[&here]))
        .await
        .is_err());
    engine
        .apply_workflow("beta", workflow(&url, &[]))
        .await
        .unwrap();
    let run = engine
        .run_window("beta", "pull", MON - 3_600_000, Trigger::Manual)
        .await
        .unwrap();
    engine.settle().await.unwrap();
    let attempts = engine.attempts("beta", run.id).unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(last.error_kind, Some(ErrorKind::Task));
    assert_eq!(
        last.message,
        "task error (fatal): ErrorCode::HttpRequestDenied"
    );
    assert_eq!(last.http[0].outcome, HttpOutcome::Denied);
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        1,
        "beta's request reached the server"
    );

    // Metrics count requests per tenant and outcome.
    let (_, text) = {
        let req = Request::builder()
            .uri("/metrics")
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    };
    assert!(
        text.contains(r#"tidemark_http_requests_total{tenant="alpha",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tidemark_http_requests_total{tenant="beta",outcome="denied"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tidemark_http_bytes_total{tenant="alpha",direction="in"} 5"#),
        "{text}"
    );
}

#[test]
fn the_cli_manages_a_tenants_allowlist() {
    use crate::daemon::{Daemon, ADMIN as DAEMON_ADMIN};
    let data = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(data.path(), None, None);
    d.login_as_new_tenant("acme");
    let (code, out, err) = d.cli_as(DAEMON_ADMIN, &["tenant", "egress", "show", "acme"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no outbound HTTP"), "{out}");
    let (code, out, err) = d.cli_as(
        DAEMON_ADMIN,
        &[
            "tenant",
            "egress",
            "set",
            "acme",
            "https://api.example.com",
            "http://10.0.0.0/8:8000-8100",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "https://api.example.com\nhttp://10.0.0.0/8:8000-8100\n"
    );
    // A malformed pattern is named and nothing changes.
    let (code, _, err) = d.cli_as(
        DAEMON_ADMIN,
        &["tenant", "egress", "set", "acme", "api.example.com"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("\"api.example.com\"") && err.contains("missing the scheme"),
        "{err}"
    );
    let (code, out, _) = d.cli_as(
        DAEMON_ADMIN,
        &["tenant", "egress", "show", "acme", "--output", "json"],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["allowed_hosts"].as_array().unwrap().len(), 2);
    // A tenant token cannot change it.
    let (code, _, _) = d.cli(&["tenant", "egress", "set", "acme"]);
    assert_eq!(code, 1);
}

#[test]
fn task_run_reaches_only_hosts_allowed_on_the_command_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(server());
    let url = format!("url=http://127.0.0.1:{}/ok", s.port);
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(tidemark_tests::tidemark_bin())
            .args(["task", "run", FETCH, "--param", &url])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ErrorCode::HttpRequestDenied"), "{out}");
    let allow = format!("http://127.0.0.1:{}", s.port);
    let (code, out) = run(&["--allow-host", &allow]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("succeeded: status 200, 5 bytes"), "{out}");
    assert!(
        out.contains(&format!("http GET 127.0.0.1:{} 200 (ok)", s.port)),
        "{out}"
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    let (code, _) = run(&["--allow-host", "127.0.0.1"]);
    assert_eq!(code, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupting_cancel_ends_a_request_in_flight() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        Arc::new(ManualClock::new(MON)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    Tenancy::new(store, ADMIN)
        .create_tenant("alpha", MON)
        .unwrap();
    let here = format!("http://127.0.0.1:{}", s.port);
    engine.set_egress("alpha", &list(&[&here])).unwrap();
    engine
        .push_plugin("alpha", "fetch", std::fs::read(FETCH).unwrap())
        .await
        .unwrap();
    let url = format!("{here}/slow");
    engine
        .apply_workflow("alpha", workflow(&url, &[&here]))
        .await
        .unwrap();
    let run = engine
        .run_window("alpha", "pull", MON - 3_600_000, Trigger::Manual)
        .await
        .unwrap();
    let started = Instant::now();
    // The request reaches the server, then the run is cancelled.
    while s.hits.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no request");
        engine.tick().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.cancel_run_with("alpha", run.id, true).await.unwrap();
    engine.settle().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the cancel waited for the server: {:?}",
        started.elapsed()
    );
    let attempts = engine.attempts("alpha", run.id).unwrap();
    assert_eq!(
        attempts[0].error_kind,
        Some(ErrorKind::Cancelled),
        "{:?}",
        attempts[0]
    );
}

const BEARER: &str = "bearer-S3CRET-a1b2c3";
const ROTATED_BEARER: &str = "bearer-ROTATED-d4e5f6";
const PASSWORD: &str = "basic-PASSW0RD-778899";
const API_KEY: &str = "header-APIKEY-445566";

/// A workflow with one `fetch` task per `(name, url, guest header)`, naming
/// `connections`.
fn workflow_with(connections: &[&str], here: &str, tasks: &[(&str, &str, &str)]) -> RawWorkflow {
    let mut toml = format!(
        "name = \"creds\"\npaused = true\nconnections = {connections:?}\n\
         [schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n"
    );
    for (name, url, header) in tasks {
        toml.push_str(&format!(
            "[[tasks]]\nname = {name:?}\nplugin = \"fetch\"\nallowed_hosts = [{here:?}]\n\
             params = {{ url = {url:?}, header = {header:?} }}\n"
        ));
    }
    RawWorkflow::from_toml(&toml).unwrap()
}

fn connection(name: &str, config: &[(&str, &str)], secrets: &[(&str, &str)]) -> RawConnection {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    RawConnection {
        name: name.into(),
        kind: "http".into(),
        config: map(config),
        secrets: map(secrets),
    }
}

/// An engine with tenant `alpha` allowed to reach `here`, `fetch` pushed,
/// and three http connections under `here`: bearer (`/bearer`), basic
/// (`/basic/`) and a header of its own (`/key`).
async fn engine_with_connections(here: &str) -> (Engine, Arc<SledStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        Arc::new(ManualClock::new(MON)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    Tenancy::new(store.clone(), ADMIN)
        .create_tenant("alpha", MON)
        .unwrap();
    engine.set_egress("alpha", &list(&[here])).unwrap();
    engine
        .push_plugin("alpha", "fetch", std::fs::read(FETCH).unwrap())
        .await
        .unwrap();
    for c in [
        connection(
            "bearer_api",
            &[("base_url", &format!("{here}/bearer")), ("auth", "bearer")],
            &[("token", BEARER)],
        ),
        connection(
            "basic_api",
            &[
                ("base_url", &format!("{here}/basic/")),
                ("auth", "basic"),
                ("username", "ann"),
            ],
            &[("password", PASSWORD)],
        ),
        connection(
            "key_api",
            &[
                ("base_url", &format!("{here}/key")),
                ("auth", "header"),
                ("header", "X-Api-Key"),
            ],
            &[("value", API_KEY)],
        ),
    ] {
        engine.create_connection("alpha", &c).unwrap();
    }
    (engine, store, dir)
}

/// Runs window `start` of `creds` and returns its attempts.
async fn run_creds(engine: &Engine, start: i64) -> Vec<tidemark::store::AttemptRecord> {
    let run = engine
        .run_window("alpha", "creds", start, Trigger::Manual)
        .await
        .unwrap();
    engine.settle().await.unwrap();
    engine.attempts("alpha", run.id).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_adds_each_connections_credential_under_its_base_url() {
    let s = server().await;
    let here = format!("http://127.0.0.1:{}", s.port);
    let (engine, _store, _dir) = engine_with_connections(&here).await;
    let u = |path: &str| format!("{here}{path}");
    let tasks = [
        ("bearer", u("/bearer/orders"), String::new()),
        ("basic", u("/basic/x"), String::new()),
        ("key", u("/key"), String::new()),
        // The guest's own Authorization is replaced, not doubled.
        (
            "guest",
            u("/bearer/guest"),
            "Authorization: Bearer guest-made".to_owned(),
        ),
        // Outside every base URL: on a segment boundary, not a prefix.
        ("outside", u("/bearerx/y"), String::new()),
        (
            "elsewhere",
            u("/ok"),
            "Authorization: Bearer mine".to_owned(),
        ),
        // A path that climbs out of the base once normalized.
        ("climb", u("/key/../ok"), String::new()),
    ];
    let tasks: Vec<(&str, &str, &str)> = tasks
        .iter()
        .map(|(n, u, h)| (*n, u.as_str(), h.as_str()))
        .collect();
    engine
        .apply_workflow(
            "alpha",
            workflow_with(&["bearer_api", "basic_api", "key_api"], &here, &tasks),
        )
        .await
        .unwrap();
    let attempts = run_creds(&engine, MON - 3_600_000).await;
    assert_eq!(attempts.len(), tasks.len(), "{attempts:?}");
    for a in &attempts {
        assert_eq!(a.error_kind, None, "{a:?}");
        assert_eq!(a.http.len(), 1, "{a:?}");
    }
    let only = |path: &str| {
        let heads = s.heads_for(path);
        assert_eq!(heads.len(), 1, "{path}: {heads:?}");
        heads[0].clone()
    };
    let auth = |path: &str| header_values(&only(path), "authorization");
    assert_eq!(auth("/bearer/orders"), [format!("Bearer {BEARER}")]);
    // base64("ann:basic-PASSW0RD-778899")
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ann:{PASSWORD}"));
    assert_eq!(auth("/basic/x"), [format!("Basic {basic}")]);
    assert_eq!(header_values(&only("/key"), "x-api-key"), [API_KEY]);
    assert!(auth("/key").is_empty());
    assert_eq!(auth("/bearer/guest"), [format!("Bearer {BEARER}")]);
    assert!(auth("/bearerx/y").is_empty());
    assert_eq!(auth("/ok"), ["Bearer mine"]);
    let climbed = only("/key/../ok");
    assert!(header_values(&climbed, "x-api-key").is_empty(), "{climbed}");
    // Nothing the attempt recorded carries a secret.
    let recorded = format!("{attempts:?}");
    for secret in [BEARER, PASSWORD, API_KEY, basic.as_str()] {
        assert!(!recorded.contains(secret), "{recorded}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_is_sent_from_the_next_attempt_and_a_bad_one_fails_it() {
    let s = server().await;
    let here = format!("http://127.0.0.1:{}", s.port);
    let (engine, store, _dir) = engine_with_connections(&here).await;
    let url = format!("{here}/bearer/orders");
    engine
        .apply_workflow(
            "alpha",
            workflow_with(&["bearer_api"], &here, &[("get", &url, "")]),
        )
        .await
        .unwrap();
    let attempts = run_creds(&engine, MON - 3_600_000).await;
    assert_eq!(attempts[0].error_kind, None, "{attempts:?}");
    let rotated: std::collections::BTreeMap<String, String> =
        [("token".to_owned(), ROTATED_BEARER.to_owned())].into();
    engine
        .rotate_connection("alpha", "bearer_api", None, rotated)
        .unwrap();
    let attempts = run_creds(&engine, MON - 2 * 3_600_000).await;
    assert_eq!(attempts[0].error_kind, None, "{attempts:?}");
    let sent: Vec<Vec<String>> = s
        .heads_for("/bearer/orders")
        .iter()
        .map(|h| header_values(h, "authorization"))
        .collect();
    assert_eq!(
        sent,
        [
            vec![format!("Bearer {BEARER}")],
            vec![format!("Bearer {ROTATED_BEARER}")]
        ]
    );
    // The same workflow version ran both.
    assert_eq!(engine.workflow("alpha", "creds").unwrap().version, 1);

    // A sealed value that does not open (moved from another connection)
    // fails the attempt naming connection and field, and nothing is sent.
    let mut record = store
        .connection_get("alpha", "bearer_api")
        .unwrap()
        .unwrap();
    let other = store.connection_get("alpha", "key_api").unwrap().unwrap();
    record
        .secrets
        .insert("token".into(), other.secrets["value"].clone());
    record.revision += 1;
    assert!(store.connection_update("alpha", &record).unwrap());
    let hits = s.hits.load(Ordering::SeqCst);
    let attempts = run_creds(&engine, MON - 3 * 3_600_000).await;
    let a = &attempts[0];
    assert_eq!(a.error_kind, Some(ErrorKind::Host), "{a:?}");
    assert!(
        a.message.contains("connection \"bearer_api\"")
            && a.message.contains("secret field \"token\""),
        "{}",
        a.message
    );
    for secret in [BEARER, ROTATED_BEARER, API_KEY] {
        assert!(!format!("{a:?}").contains(secret), "{a:?}");
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), hits);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_timeout_and_a_dns_failure_have_their_own_error_codes() {
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so a connect neither succeeds nor is refused.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    while let Ok(Ok(c)) = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        fillers.push(c);
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    let pattern = format!("http://{addr}");
    let quick = HttpLimits {
        connect_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let started = Instant::now();
    let r = fetch(
        &allowing(&[&pattern], quick),
        &[("url", &format!("http://{addr}/ok"))],
    )
    .await;
    assert_eq!(task_error(&r), "ErrorCode::ConnectionTimeout");
    assert_eq!(
        r.http[0].outcome,
        HttpOutcome::ConnectTimeout,
        "{:?}",
        r.http
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A name that does not resolve (`.invalid` never does, RFC 6761).
    let r = fetch(
        &allowing(&["http://no-such-host.invalid"], HttpLimits::default()),
        &[("url", "http://no-such-host.invalid/ok")],
    )
    .await;
    assert!(
        task_error(&r).starts_with("ErrorCode::DnsError"),
        "{}",
        task_error(&r)
    );
    assert_eq!(r.http[0].outcome, HttpOutcome::Failed, "{:?}", r.http);
    let why = r.http[0].error.clone().unwrap();
    assert!(why.contains("resolving no-such-host.invalid"), "{why}");
    drop((listener, fillers));
}
