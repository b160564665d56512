//! The SDKs' HTTP clients (Rust `tidemark_sdk::http`, Python
//! `tidemark.http_get`, JavaScript `http.js` and plain `fetch`): the same
//! task in every language reads JSON from a real HTTP server on 127.0.0.1
//! under an allowlist that names it and writes what it read to a dataset; a
//! request outside the allowlist fails as a task error that names the
//! `wasi:http` error code and never reaches the server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidemark::egress::{Allowlist, Egress};
use tidemark::executor::{AttemptError, AttemptReport, HttpOutcome, Limits};
use tidemark_tests::plugins::{HTTP_JSON, JS_HTTP_FETCH, JS_HTTP_JSON, PY_HTTP_JSON};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{invocation, store, DAY};

const PRICES: &str = r#"{"currency":"EUR","items":[{"sku":"apple","price":120},{"sku":"pear","price":95},{"sku":"plum","price":40}]}"#;

/// The plugin, its language, and whether a refused request's error names
/// its code (`fetch` only says `NetworkError`).
const PLUGINS: [(&str, &str, bool); 4] = [
    (HTTP_JSON, "rust", true),
    (PY_HTTP_JSON, "python", true),
    (JS_HTTP_JSON, "javascript (http.js)", true),
    (JS_HTTP_FETCH, "javascript (fetch)", false),
];

/// A plain HTTP/1.1 server on 127.0.0.1: `/prices.json` → `PRICES`,
/// `/unavailable` → 503, anything else → 404. It counts requests and
/// remembers the last `accept` header.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
    accept: Arc<std::sync::Mutex<Option<String>>>,
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let accept = Arc::new(std::sync::Mutex::new(None));
    let (counted, seen) = (hits.clone(), accept.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (hits, seen) = (counted.clone(), seen.clone());
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
                *seen.lock().unwrap() = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("accept")
                        .then(|| value.trim().to_owned())
                });
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = match path.as_str() {
                    "/prices.json" => ("200 OK", PRICES),
                    "/unavailable" => ("503 Service Unavailable", "busy"),
                    _ => ("404 Not Found", ""),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Server { port, hits, accept }
}

/// Limits whose egress allows `pattern` for both the tenant and the task.
fn allowing(pattern: &str) -> Limits {
    let list = Allowlist::parse(&[pattern]).unwrap();
    Limits {
        timeout: Duration::from_secs(30),
        egress: Egress {
            tenant: list.clone(),
            task: list,
            ..Egress::default()
        },
        ..Limits::default()
    }
}

async fn prices(plugin: &str, url: &str, limits: &Limits) -> AttemptReport {
    crate::run(
        plugin,
        &invocation("prices", DAY, &[("url", url)]),
        limits,
        store(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sdk_reads_json_from_an_allowed_http_api() {
    let s = server().await;
    let url = format!("http://127.0.0.1:{}/prices.json", s.port);
    let limits = allowing(&format!("http://127.0.0.1:{}", s.port));
    for (i, (plugin, lang, _)) in PLUGINS.into_iter().enumerate() {
        let r = prices(plugin, &url, &limits).await;
        assert_eq!(
            r.result,
            Ok("3 prices in EUR, total 255".to_owned()),
            "{lang}: log {:?}",
            r.log
        );
        let written: Vec<(&str, &str, &str)> = r
            .outputs
            .iter()
            .map(|(ds, k, v)| (ds, k, std::str::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            written,
            [
                ("prices", "apple", "120"),
                ("prices", "pear", "95"),
                ("prices", "plum", "40")
            ],
            "{lang}"
        );
        assert_eq!(s.hits.load(Ordering::SeqCst), i + 1, "{lang}");
        assert_eq!(
            s.accept.lock().unwrap().as_deref(),
            Some("application/json"),
            "{lang}: the request's headers reach the server"
        );
        assert_eq!(r.http.len(), 1, "{lang}");
        assert_eq!(
            (r.http[0].status, r.http[0].outcome, r.http[0].bytes_in),
            (Some(200), HttpOutcome::Ok, PRICES.len() as u64),
            "{lang}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_request_is_a_fatal_task_error_naming_the_code_in_every_sdk() {
    let s = server().await;
    let url = format!("http://127.0.0.1:{}/prices.json", s.port);
    // The tenant and the task allow another port only.
    let limits = allowing(&format!(
        "http://127.0.0.1:{}",
        s.port.wrapping_add(1).max(1)
    ));
    for (plugin, lang, names_code) in PLUGINS {
        let r = prices(plugin, &url, &limits).await;
        match &r.result {
            Err(AttemptError::Task { retryable, message }) => {
                assert!(!retryable, "{lang}: {message}");
                if names_code {
                    assert_eq!(message, "HTTP-request-denied", "{lang}");
                } else {
                    assert!(message.contains("NetworkError"), "{lang}: {message}");
                }
            }
            other => panic!(
                "{lang}: expected a task error, got {other:?}; log {:?}",
                r.log
            ),
        }
        assert!(r.outputs.is_empty(), "{lang}");
        assert_eq!(r.http.len(), 1, "{lang}");
        assert_eq!(r.http[0].outcome, HttpOutcome::Denied, "{lang}");
    }
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        0,
        "a denied request reached the server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_api_is_a_retryable_task_error_in_every_sdk() {
    let s = server().await;
    let url = format!("http://127.0.0.1:{}/unavailable", s.port);
    let limits = allowing(&format!("http://127.0.0.1:{}", s.port));
    for (plugin, lang, _) in &PLUGINS[..3] {
        let r = prices(plugin, &url, &limits).await;
        assert_eq!(
            r.result,
            Err(AttemptError::Task {
                retryable: true,
                message: "HTTP status 503".into()
            }),
            "{lang}: log {:?}",
            r.log
        );
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 3);
}

/// Each "Write a task in ..." page shows its language's HTTP plugin, built
/// and tested here, verbatim.
#[test]
fn task_docs_show_the_tested_http_plugins() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (page, fence, plugin) in [
        (
            "docs/tasks/rust.md",
            "```rust\n",
            "plugins/http-json/src/lib.rs",
        ),
        (
            "docs/tasks/python.md",
            "```python\n",
            "plugins/python/http_json.py",
        ),
        (
            "docs/tasks/javascript.md",
            "```js\n",
            "plugins/js/http-json.js",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        let source = std::fs::read_to_string(root.join(plugin)).unwrap();
        assert!(
            text.contains(&format!("{fence}{source}```\n")),
            "{page} is stale: copy {plugin} into its HTTP section"
        );
    }
}
