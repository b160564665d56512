//! Notifications end to end on the in-process engine (manual clock) and a
//! real local HTTP receiver: webhooks signed with the connection's secret
//! (verified here with HMAC-SHA256), retried with backoff while the
//! receiver answers 500, recorded in the delivery log; a receiver that
//! hangs does not hold a backfill back; bad targets are refused naming
//! the field, and nothing is stored.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use tidemark::clock::Clock;
use tidemark::egress::Allowlist;
use tidemark_tests::plugins::*;
use tower::ServiceExt;

use crate::api::{world_with, World};

const SECRET: &str = "wh-s3cret-7f1e2d3c";

/// What the receiver got, and what it answers next (200 when none left;
/// it never answers while `hang`).
#[derive(Default)]
struct Receiver {
    hits: Mutex<Vec<(HeaderMap, Bytes)>>,
    statuses: Mutex<VecDeque<u16>>,
    hang: bool,
}

impl Receiver {
    fn hits(&self) -> Vec<(HeaderMap, Bytes)> {
        self.hits.lock().unwrap().clone()
    }
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.hits.lock().unwrap().push((headers, body));
    if r.hang {
        std::future::pending::<()>().await;
    }
    let s = r.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(s).unwrap()
}

async fn receiver(statuses: &[u16], hang: bool) -> (SocketAddr, Arc<Receiver>) {
    let r = Arc::new(Receiver {
        statuses: Mutex::new(statuses.iter().copied().collect()),
        hang,
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, r)
}

async fn call(w: &World, method: &str, path: &str, body: Value) -> (StatusCode, Value, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", w.token))
        .header("content-type", "application/json")
        .body(Body::from(if body.is_null() {
            String::new()
        } else {
            body.to_string()
        }))
        .unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        !text.contains(SECRET),
        "a response carries the secret: {text}"
    );
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    )
}

/// Waits (real time, bounded) until `f` holds; the sender runs on its own.
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn deliveries(w: &World) -> Vec<Value> {
    let (s, v, _) = call(w, "GET", "/api/v1/notifications/deliveries", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["deliveries"].as_array().unwrap().clone()
}

/// Tenant `acme` allows `addr`, has connection `hooks` (secret `token`)
/// and the workflows `wf` (hello) and `boom` (panics, paused).
async fn setup(addr: SocketAddr) -> World {
    let w = world_with(&[("hello", HELLO), ("panic", PANIC)]).await;
    w.engine
        .set_egress(
            "acme",
            &Allowlist::parse(&[format!("http://{addr}")]).unwrap(),
        )
        .unwrap();
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/connections",
        json!({"name": "hooks", "kind": "http",
               "config": {"base_url": format!("http://{addr}"), "auth": "bearer"},
               "secrets": {"token": SECRET}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    w
}

fn workflow(name: &str, plugin: &str) -> String {
    format!("name = \"{name}\"\ncatchup = false\n[schedule]\ncron = \"0 * * * *\"\ntimezone = \"UTC\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"{plugin}\"\n")
}

async fn apply(w: &World, toml: String) {
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/workflows")
        .header("authorization", format!("Bearer {}", w.token))
        .body(Body::from(toml))
        .unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn backfill(w: &World, workflow: &str) -> u64 {
    let (s, v, _) = call(
        w,
        "POST",
        "/api/v1/backfills",
        json!({"workflow": workflow, "start": "2024-03-01T00:00:00Z", "end": "2024-03-01T03:00:00Z"}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    v["backfill"]["id"].as_u64().unwrap()
}

/// `t=<unix>,v1=<hex>` checked against HMAC-SHA256(secret, t + "." + body).
fn verify(headers: &HeaderMap, body: &[u8]) -> i64 {
    let sig = headers
        .get("tidemark-signature")
        .expect("signed")
        .to_str()
        .unwrap();
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|r| r.split_once(",v1="))
        .expect("t=...,v1=...");
    let mut mac = hmac::Hmac::<sha2_hmac::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    assert_eq!(hex(&mac.finalize().into_bytes()), v1, "signature");
    t.parse().unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn notif_backfill_end_is_signed_retried_on_500_then_delivered() {
    let (addr, rx) = receiver(&[500, 500], false).await;
    let w = setup(addr).await;
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/notifications/targets",
        json!({"name": "ops", "url": format!("http://{addr}/hook"), "connection": "hooks",
               "events": ["backfill.ended", "run.failed"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["events"], json!(["backfill.ended", "run.failed"]));
    assert_eq!(v["secret_field"], "token");

    apply(&w, workflow("wf", "hello")).await;
    w.engine.settle().await.unwrap();
    let id = backfill(&w, "wf").await;
    w.engine.settle().await.unwrap();

    // First attempt: 500, recorded, due again after the backoff (2 s).
    until("the first attempt", || async {
        deliveries(&w)
            .await
            .first()
            .is_some_and(|d| d["attempts"] == 1)
    })
    .await;
    let d = deliveries(&w).await;
    assert_eq!(d.len(), 1, "one target subscribed: {d:?}");
    let d0 = &d[0];
    assert_eq!(
        (
            &d0["event"],
            &d0["state"],
            &d0["last_status"],
            &d0["target"]
        ),
        (
            &json!("backfill.ended"),
            &json!("pending"),
            &json!(500),
            &json!("ops")
        )
    );
    assert!(d0["last_error"].as_str().unwrap().contains("500"), "{d0}");
    let now = w.clock.now_ms();
    assert_eq!(d0["next_attempt_ms"], json!(now + 2000));

    // Nothing more until the engine's clock passes the backoff.
    w.clock.advance(1999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.hits().len(), 1, "no retry before the backoff");
    w.clock.advance(1);
    until("the second attempt", || async {
        deliveries(&w).await[0]["attempts"] == 2
    })
    .await;
    assert_eq!(
        deliveries(&w).await[0]["next_attempt_ms"],
        json!(now + 2000 + 4000)
    );
    w.clock.advance(4000);
    until("delivery", || async {
        deliveries(&w).await[0]["state"] == "delivered"
    })
    .await;
    let d0 = deliveries(&w).await[0].clone();
    assert_eq!(
        (&d0["attempts"], &d0["last_status"]),
        (&json!(3), &json!(200))
    );
    assert_eq!(d0["last_error"], Value::Null);

    // Every attempt carried the same body, each signed with the secret.
    let hits = rx.hits();
    assert_eq!(hits.len(), 3);
    for (h, body) in &hits {
        let t = verify(h, body);
        assert!(
            (t - w.clock.now_ms() / 1000).abs() <= 10,
            "timestamp from the engine's clock"
        );
        assert_eq!(h["tidemark-event"], "backfill.ended");
        assert_eq!(body, &hits[0].1);
    }
    // A tampered body does not verify.
    let mut mac = hmac::Hmac::<sha2_hmac::Sha256>::new_from_slice(b"another secret").unwrap();
    mac.update(&hits[0].1);
    assert_ne!(
        hex(&mac.finalize().into_bytes()),
        hits[0].0["tidemark-signature"].to_str().unwrap()
    );
    let payload: Value = serde_json::from_slice(&hits[0].1).unwrap();
    assert_eq!(payload["type"], "backfill.ended");
    assert_eq!(payload["tenant"], "acme");
    assert_eq!(
        payload["id"],
        d0["delivery_id"].as_u64().unwrap().to_string()
    );
    let data = &payload["data"];
    assert_eq!(
        (&data["backfill"], &data["workflow"], &data["state"]),
        (&json!(id), &json!("wf"), &json!("succeeded"))
    );
    assert_eq!(
        (&data["succeeded"], &data["failed"]),
        (&json!(3), &json!(0))
    );
    assert_eq!(data["failed_windows"], json!([]));
    assert!(data.get("duration_ms").is_some() && data.get("estimated_ms").is_some());

    // One delivery with its payload; the secret is in no response.
    let (s, one, text) = call(
        &w,
        "GET",
        &format!("/api/v1/notifications/deliveries/{}", d0["delivery_id"]),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(one["payload"], payload);
}

#[tokio::test(flavor = "multi_thread")]
async fn notif_live_run_failure_and_failed_windows_in_the_summary() {
    let (addr, rx) = receiver(&[], false).await;
    let w = setup(addr).await;
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/notifications/targets",
        json!({"name": "ops", "url": format!("http://{addr}/hook"), "connection": "hooks",
               "events": ["run.failed", "backfill.ended"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The live run of the last hour panics: `run.failed`.
    apply(&w, workflow("boom", "panic")).await;
    w.engine.settle().await.unwrap();
    until("run.failed", || async { !rx.hits().is_empty() }).await;
    let first: Value = serde_json::from_slice(&rx.hits()[0].1).unwrap();
    assert_eq!(first["type"], "run.failed");
    assert_eq!(first["data"]["workflow"], "boom");
    assert_eq!(first["data"]["task"], "t");
    assert!(
        first["data"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{first}"
    );

    // A backfill of it: its windows fail, which is no `run.failed` (a
    // backfill run), but the summary lists them with their first errors.
    let id = backfill(&w, "boom").await;
    w.engine.settle().await.unwrap();
    until("backfill.ended", || async { rx.hits().len() == 2 }).await;
    let hits = rx.hits();
    let end: Value = serde_json::from_slice(&hits[1].1).unwrap();
    verify(&hits[1].0, &hits[1].1);
    assert_eq!(end["type"], "backfill.ended", "{end}");
    assert_eq!(end["data"]["backfill"], id);
    assert_eq!(end["data"]["failed"], 3);
    let failed = end["data"]["failed_windows"].as_array().unwrap();
    assert_eq!(failed.len(), 3, "{end}");
    assert!(
        failed
            .iter()
            .all(|f| f["error"].as_str().is_some_and(|e| !e.is_empty())),
        "{end}"
    );
    until("both delivered", || async {
        let d = deliveries(&w).await;
        d.len() == 2 && d.iter().all(|d| d["state"] == "delivered")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn notif_receiver_down_never_holds_a_backfill_back() {
    // The receiver takes the request and never answers.
    let (addr, rx) = receiver(&[], true).await;
    let w = setup(addr).await;
    let (s, _, _) = call(
        &w,
        "POST",
        "/api/v1/notifications/targets",
        json!({"name": "ops", "url": format!("http://{addr}/hook"), "connection": "hooks",
               "events": ["backfill.ended", "run.failed"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    apply(&w, workflow("wf", "hello")).await;
    w.engine.settle().await.unwrap();
    let first = backfill(&w, "wf").await;
    w.engine.settle().await.unwrap();
    until("the hanging attempt", || async { rx.hits().len() == 1 }).await;
    // While that delivery hangs, another backfill runs to its end.
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        json!({"workflow": "wf", "start": "2024-03-01T03:00:00Z", "end": "2024-03-01T06:00:00Z"}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    w.engine.settle().await.unwrap();
    for id in [first, v["backfill"]["id"].as_u64().unwrap()] {
        let (_, b, _) = call(&w, "GET", &format!("/api/v1/backfills/{id}"), Value::Null).await;
        assert_eq!(b["backfill"]["state"], "succeeded", "{b}");
        assert_eq!(b["backfill"]["succeeded"], 3, "{b}");
    }
    // The sender is not held either: the second end is recorded and tried.
    until("the second delivery", || async { rx.hits().len() == 2 }).await;
    let d = deliveries(&w).await;
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|d| d["state"] == "pending"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn notif_bad_targets_are_refused_naming_the_field() {
    let (addr, _rx) = receiver(&[], false).await;
    let w = setup(addr).await;
    let ok = json!({"name": "ops", "url": format!("http://{addr}/hook"), "connection": "hooks",
                    "events": ["backfill.ended"]});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with("url", json!("http://hooks.example.com/x")), "url"),
        (with("url", json!("http://127.0.0.2:9/x")), "url"),
        (with("url", json!("ftp://x")), "url"),
        (
            with("events", json!(["backfill.ended", "backfill.exploded"])),
            "events[1]",
        ),
        (with("events", json!([])), "events"),
        (with("connection", json!("nope")), "connection"),
        (with("secret_field", json!("password")), "secret_field"),
    ] {
        let (s, v, text) = call(&w, "POST", "/api/v1/notifications/targets", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert_eq!(v["error"]["code"], "invalid_notification_target", "{text}");
        assert_eq!(v["error"]["details"]["field"], field, "{text}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{text}"
        );
    }
    let (_, v, _) = call(&w, "GET", "/api/v1/notifications/targets", Value::Null).await;
    assert_eq!(v["targets"], json!([]), "nothing stored");

    let (s, _, _) = call(&w, "POST", "/api/v1/notifications/targets", ok.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = call(&w, "POST", "/api/v1/notifications/targets", ok.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, v, _) = call(&w, "GET", "/api/v1/notifications/targets", Value::Null).await;
    assert_eq!(v["targets"][0]["name"], "ops");
    // The connection that signs a target's notifications stays while the
    // target does.
    let (s, v, text) = call(&w, "DELETE", "/api/v1/connections/hooks", Value::Null).await;
    assert_eq!(s, StatusCode::CONFLICT, "{text}");
    assert_eq!(v["error"]["code"], "in_use", "{text}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("targets [\"ops\"]"),
        "{text}"
    );
    let (s, _, _) = call(&w, "GET", "/api/v1/connections/hooks", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "the connection is still there");
    let (s, _, _) = call(
        &w,
        "DELETE",
        "/api/v1/notifications/targets/ops",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, text) = call(&w, "DELETE", "/api/v1/connections/hooks", Value::Null).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{text}");
    let (s, _, _) = call(
        &w,
        "DELETE",
        "/api/v1/notifications/targets/ops",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The CLI against the real daemon: a target created, listed and refused
/// with the field named; the delivery log read; the secret in no output
/// and no log line.
#[test]
fn notif_cli_through_the_real_daemon() {
    use std::process::{Command, Stdio};
    use tidemark_tests::tidemark_bin;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, _rx) = rt.block_on(receiver(&[], false));
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = Command::new(tidemark_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("TIDEMARK_ADMIN_TOKEN", crate::daemon::ADMIN)
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning tidemark serve");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    crate::daemon::wait_for("the daemon to listen", Duration::from_secs(60), || {
        read(&out_path).contains("tidemark listening on")
    });
    let url = read(&out_path)
        .lines()
        .find_map(|l| l.strip_prefix("tidemark listening on ").map(str::to_owned))
        .unwrap();
    let http = |token: &str, method: &str, path: &str, body: Value| -> (u16, Value) {
        let req = ureq::request(method, &format!("{url}{path}"))
            .set("authorization", &format!("Bearer {token}"));
        match req.send_json(body) {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(c, r)) => (c, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    };
    let (c, v) = http(
        crate::daemon::ADMIN,
        "POST",
        "/api/v1/tenants",
        json!({"name": "n"}),
    );
    assert_eq!(c, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (c, v) = http(
        crate::daemon::ADMIN,
        "PUT",
        "/api/v1/tenants/n/egress",
        json!({"allowed_hosts": [format!("http://{addr}")]}),
    );
    assert_eq!(c, 200, "{v}");
    let (c, v) = http(
        &token,
        "POST",
        "/api/v1/connections",
        json!({"name": "hooks", "kind": "http",
               "config": {"base_url": format!("http://{addr}"), "auth": "bearer"},
               "secrets": {"token": SECRET}}),
    );
    assert_eq!(c, 201, "{v}");

    let cli = |args: &[&str]| {
        let out = Command::new(tidemark_bin())
            .args(args)
            .env("TIDEMARK_SERVER", &url)
            .env("TIDEMARK_TOKEN", &token)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains(SECRET), "{args:?} shows the secret: {text}");
        (out.status.success(), text)
    };
    let hook = format!("http://{addr}/hook");
    let (ok, text) = cli(&[
        "notify",
        "create",
        "ops",
        "--url",
        &hook,
        "--connection",
        "hooks",
        "--event",
        "run.failed",
        "--event",
        "backfill.ended",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("backfill.ended,run.failed"), "{text}");
    let (ok, text) = cli(&["notify", "list"]);
    assert!(
        ok && text.contains("ops") && text.contains("hooks.token"),
        "{text}"
    );
    let (ok, text) = cli(&[
        "notify",
        "create",
        "bad",
        "--url",
        &hook,
        "--connection",
        "hooks",
        "--event",
        "nope",
    ]);
    assert!(!ok && text.contains("events[0]"), "{text}");
    let (ok, text) = cli(&[
        "notify",
        "create",
        "far",
        "--url",
        "https://elsewhere.example.com/",
        "--connection",
        "hooks",
        "--event",
        "run.failed",
    ]);
    assert!(
        !ok && text.contains("url") && text.contains("allowlist"),
        "{text}"
    );
    let (ok, text) = cli(&["notify", "deliveries"]);
    assert!(ok && text.contains("ATTEMPTS"), "{text}");
    let (ok, text) = cli(&["notify", "delete", "ops"]);
    assert!(ok, "{text}");
    let (_, v) = http(&token, "GET", "/api/v1/notifications/targets", Value::Null);
    assert_eq!(v["targets"], json!([]));

    let _ = child.kill();
    let _ = child.wait();
    for p in [&out_path, &err_path] {
        assert!(
            !read(p).contains(SECRET),
            "the secret is in the daemon's log"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn notif_budget_pause_and_a_stuck_backfill() {
    let (addr, rx) = receiver(&[], false).await;
    let w = setup(addr).await;
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/notifications/targets",
        json!({"name": "ops", "url": format!("http://{addr}/hook"), "connection": "hooks",
               "events": ["backfill.paused", "backfill.stuck"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    apply(&w, workflow("wf", "hello")).await;
    w.engine.settle().await.unwrap();
    let payloads = || {
        rx.hits()
            .iter()
            .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
            .collect::<Vec<_>>()
    };

    // A fuel budget of 1 pauses it before a window would pass it.
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        json!({"workflow": "wf", "mode": "serial", "start": "2024-03-01T00:00:00Z",
               "end": "2024-03-01T05:00:00Z", "budget": {"max_fuel": 1}}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let paused_id = v["backfill"]["id"].as_u64().unwrap();
    w.engine.settle().await.unwrap();
    until("backfill.paused", || async { !rx.hits().is_empty() }).await;
    let p = &payloads()[0];
    assert_eq!(p["type"], "backfill.paused", "{p}");
    assert_eq!(p["data"]["backfill"], paused_id);
    assert!(
        p["data"]["reason"].as_str().unwrap().contains("fuel"),
        "{p}"
    );

    // A backfill that waits an hour without ending a window is stuck
    // (once): here its windows wait for an upstream workflow that never
    // runs them. The paused one is not, nor one that waits on purpose for
    // its start-at time.
    apply(&w, workflow("up", "hello")).await;
    apply(
        &w,
        format!(
            "{}[[upstream]]\nworkflow = \"up\"\n",
            workflow("down", "hello")
        ),
    )
    .await;
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        json!({"workflow": "wf", "start": "2024-03-02T00:00:00Z", "end": "2024-03-02T02:00:00Z",
               "start_at": "2030-01-01T00:00:00Z"}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        json!({"workflow": "down", "start": "2024-03-02T00:00:00Z", "end": "2024-03-02T02:00:00Z"}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let stuck = v["backfill"]["id"].as_u64().unwrap();
    w.engine.settle().await.unwrap();
    w.clock.advance(3_600_000 - 1);
    w.engine.settle().await.unwrap();
    w.clock.advance(1);
    w.engine.settle().await.unwrap();
    until("backfill.stuck", || async { rx.hits().len() == 2 }).await;
    let p = &payloads()[1];
    assert_eq!(p["type"], "backfill.stuck", "{p}");
    assert_eq!(p["data"]["backfill"], stuck);
    assert_eq!(p["data"]["idle_ms"], 3_600_000);
    w.clock.advance(3_600_000);
    w.engine.settle().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), 2, "reported once");
}

/// A stuck backfill is told once, also across its off-peak pauses: the
/// time it waits on purpose neither reports it again nor counts as idle.
#[tokio::test(flavor = "multi_thread")]
async fn notif_a_stuck_backfill_is_told_once_across_off_peak_pauses() {
    let (addr, rx) = receiver(&[], false).await;
    let w = setup(addr).await;
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/notifications/targets",
        json!({"name": "ops", "url": format!("http://{addr}/hook"), "connection": "hooks",
               "events": ["backfill.stuck"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    apply(&w, workflow("up", "hello")).await;
    apply(
        &w,
        format!(
            "{}[[upstream]]\nworkflow = \"up\"\n",
            workflow("down", "hello")
        ),
    )
    .await;
    // The world's clock starts at 10:00 UTC on 2024-03-01; the backfill
    // may run from 10:00 to 12:00 each day, and its windows wait for
    // `up`'s, which are still ahead when the test ends.
    let start = w.clock.now_ms();
    assert_eq!(
        start % 86_400_000 / 3_600_000,
        10,
        "the clock starts at 10:00 UTC"
    );
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        json!({"workflow": "down", "start": "2024-03-03T00:00:00Z", "end": "2024-03-03T02:00:00Z",
               "allowed_hours": {"timezone": "UTC", "spans": ["10:00-12:00"]}}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let id = v["backfill"]["id"].as_u64().unwrap();
    w.engine.settle().await.unwrap();
    w.clock.advance(3_600_000);
    w.engine.settle().await.unwrap();
    until("backfill.stuck", || async { rx.hits().len() == 1 }).await;
    let p: Value = serde_json::from_slice(&rx.hits()[0].1).unwrap();
    assert_eq!(p["data"]["backfill"], id, "{p}");
    // Closed from 12:00 (a pass sees it waiting), open again the next day
    // at 10:00 and for the hour after, still without a window ended.
    w.clock.advance(3_600_000 + 1);
    w.engine.settle().await.unwrap();
    w.clock.advance(22 * 3_600_000);
    w.engine.settle().await.unwrap();
    w.clock.advance(3_600_000);
    w.engine.settle().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), 1, "told once until it moves");
}

/// `gap.detected`: the detector's pass finds the failed window of a
/// workflow with `repair = "auto"`, starts its repair, and says both.
#[tokio::test(flavor = "multi_thread")]
async fn notif_gap_detected_names_the_gaps_and_their_repair() {
    let (addr, rx) = receiver(&[], false).await;
    let w = setup(addr).await;
    let (s, v, _) = call(
        &w,
        "POST",
        "/api/v1/notifications/targets",
        json!({"name": "gaps", "url": format!("http://{addr}/hook"), "connection": "hooks",
               "events": ["gap.detected"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let flaky = workflow("flaky", "panic")
        .replace("catchup = false\n", "catchup = false\nrepair = \"auto\"\n");
    apply(&w, flaky).await;
    w.engine.settle().await.unwrap();
    // The first window that starts after the workflow was applied fails
    // when it is due, two hours on.
    for _ in 0..2 {
        w.clock.advance(3_600_000);
        w.engine.settle().await.unwrap();
    }
    w.engine.scan_repairs().await.unwrap();
    until("gap.detected", || async { !rx.hits().is_empty() }).await;
    let repairs: Vec<_> = w
        .engine
        .store()
        .backfills("acme")
        .unwrap()
        .into_iter()
        .filter(|b| b.repair.is_some())
        .collect();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "one pass, one notice");
    let (headers, body) = &hits[0];
    verify(headers, body);
    assert_eq!(headers["tidemark-event"], "gap.detected");
    let p: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(p["type"], "gap.detected", "{p}");
    let d = &p["data"];
    assert_eq!(d["workflow"], "flaky", "{p}");
    assert_eq!(d["repair_backfill"], repairs[0].id, "{p}");
    let failed = d["failed"].as_u64().unwrap();
    assert!(failed >= 1, "{p}");
    assert_eq!(d["stale"], 0, "{p}");
    let windows = d["windows"].as_array().unwrap();
    assert_eq!(
        windows.len() as u64,
        failed + d["missing"].as_u64().unwrap(),
        "{p}"
    );
    // The window that failed after the apply is the one.
    let hour = 3_600_000;
    let failed_window = (w.clock.now_ms() / hour - 1) * hour;
    assert_eq!(windows, &[json!(failed_window)], "{p}");
    assert_eq!((failed, &d["missing"]), (1, &json!(0)), "{p}");
    let logged = deliveries(&w).await;
    assert_eq!(
        (&logged[0]["event"], &logged[0]["target"]),
        (&json!("gap.detected"), &json!("gaps"))
    );
}
