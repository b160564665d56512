//! Provenance per run (issue #20 item 5) and cascade scope per launch
//! (item 6), through the router on a ManualClock: every cause recorded and
//! shown, who asked, plugin digests and the dataset partitions a task read,
//! two runs of one window compared, and a cascade limited per launch.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tidemark::backfill::RunReason;
use tidemark::clock::Clock;
use tidemark::schedule::format_utc;
use tidemark_tests::plugins::*;
use tower::ServiceExt;

use crate::api::World;

/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;
const H: i64 = 3_600_000;

pub(crate) async fn world() -> World {
    crate::api::world_with(&[
        ("extract", ETL_EXTRACT),
        ("transform", ETL_TRANSFORM),
        ("hello", HELLO),
    ])
    .await
}

async fn call_with(
    w: &World,
    method: &str,
    path: &str,
    body: &str,
    header: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", w.token));
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let resp = w
        .app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(crate) async fn call(w: &World, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
    call_with(w, method, path, body, None).await
}

/// An hourly ETL: `extract` writes `events` rows of the window, `transform`
/// reads them back.
fn etl(events: u32) -> String {
    format!(
        "name = \"etl\"\ncatchup = false\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"extract\"\nplugin = \"extract\"\nparams = {{ events = \"{events}\" }}\n\
         [[tasks]]\nname = \"transform\"\nplugin = \"transform\"\ndepends_on = [\"extract\"]\n"
    )
}

/// An hourly workflow of `hello` that waits for the same hour of `etl`.
fn downstream(name: &str) -> String {
    format!(
        "name = \"{name}\"\ncatchup = false\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"t\"\nplugin = \"hello\"\n[[upstream]]\nworkflow = \"etl\"\n"
    )
}

async fn apply(w: &World, def: &str) {
    let (s, v) = call(w, "POST", "/api/v1/workflows", def).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn why(w: &World, id: u64) -> Value {
    let (s, v) = call(w, "GET", &format!("/api/v1/runs/{id}/why"), "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn run_of(w: &World, workflow: &str, start: i64) -> u64 {
    w.engine
        .runs_of("acme", workflow, start, start + 1, 1)
        .unwrap()
        .first()
        .unwrap_or_else(|| panic!("no run of {workflow} at {start}"))
        .id
}

fn task<'a>(why: &'a Value, name: &str) -> &'a Value {
    why["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cause_is_recorded_with_who_asked_and_what_was_read() {
    let w = world().await;
    apply(&w, &etl(5)).await;
    apply(&w, &downstream("report")).await;
    w.engine.settle().await.unwrap();
    let window = T0 + 9 * H;

    // The schedule: the daemon asked; transform read the partition extract
    // committed, and each task names the digest it ran.
    let a = run_of(&w, "etl", window);
    let v = why(&w, a).await;
    assert_eq!(v["cause"], json!({"kind": "schedule"}));
    assert_eq!(v["requested_by"], json!({"kind": "scheduler"}));
    assert_eq!(v["version"], 1);
    let extract_digest = tidemark::executor::digest(&std::fs::read(ETL_EXTRACT).unwrap());
    assert_eq!(task(&v, "extract")["plugin_digest"], extract_digest);
    assert_eq!(task(&v, "extract")["reads"], json!([]));
    let reads = task(&v, "transform")["reads"].as_array().unwrap().clone();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(
        (
            reads[0]["dataset"].as_str(),
            reads[0]["partition_ms"].as_i64()
        ),
        (Some("events"), Some(window))
    );
    let first_version = reads[0]["version"].as_str().unwrap().to_owned();
    assert!(first_version.starts_with("sha256:"), "{first_version}");

    // The downstream run records the upstream run it waited for.
    let r = why(&w, run_of(&w, "report", window)).await;
    assert_eq!(
        r["upstream"],
        json!([{"workflow": "etl", "window_start_ms": window, "window_end_ms": window + H, "run_id": a}])
    );

    // A manual run through the API names the token; a new version with
    // other params writes other rows, so transform reads another version.
    apply(&w, &etl(7)).await;
    let (s, run) = call(
        &w,
        "POST",
        "/api/v1/workflows/etl/runs",
        &json!({"window": window.to_string()}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    let b = run["id"].as_u64().unwrap();
    w.engine.settle().await.unwrap();
    let v = why(&w, b).await;
    assert_eq!(v["cause"], json!({"kind": "manual", "at_ms": window}));
    let token_id = match &v["requested_by"] {
        Value::Object(o) if o["kind"] == "token" && o["label"] == "first token" => {
            o["token_id"].as_u64().unwrap()
        }
        other => panic!("requested_by {other}"),
    };
    let second_version = task(&v, "transform")["reads"][0]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_version, first_version);

    // What changed between the two runs of the window: exactly these.
    let (s, c) = call(&w, "GET", &format!("/api/v1/runs/{a}/compare/{b}"), "").await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let read_field = format!("read:transform:events@{window}");
    assert_eq!(
        c["differences"],
        json!([
            {"field": "version", "this": "1", "other": "2"},
            {"field": "cause", "this": "schedule", "other": format!("manual (window at {window})")},
            {"field": "requested_by", "this": "scheduler", "other": format!("token {token_id} (first token)")},
            {"field": "params:extract.events", "this": "5", "other": "7"},
            {"field": read_field, "this": first_version, "other": second_version},
        ])
    );
    // Runs of different windows are not compared.
    let other_window = run_of(&w, "report", window);
    let (s, e) = call(
        &w,
        "GET",
        &format!("/api/v1/runs/{a}/compare/{other_window}"),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], "not_comparable");

    // The trigger keeps its idempotency key.
    let (s, t) = call_with(
        &w,
        "POST",
        "/api/v1/workflows/etl/trigger",
        "{}",
        Some(("idempotency-key", "order-42")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let v = why(&w, t["run_id"].as_u64().unwrap()).await;
    assert_eq!(
        v["cause"],
        json!({"kind": "trigger", "idempotency_key": "order-42"})
    );
    assert_eq!(v["requested_by"]["kind"], "token");

    // A backfill with its cascade: the selected window says why the rerun
    // policy took it, the downstream one which upstream window it follows.
    let earlier = T0 + 8 * H;
    let (s, bf) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        &json!({"workflow": "etl", "dates": [format_utc(earlier)], "downstream": "direct"})
            .to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{bf}");
    let bf_id = bf["backfill"]["id"].as_u64().unwrap();
    w.engine.settle().await.unwrap();
    let repaired = run_of(&w, "etl", earlier);
    let v = why(&w, repaired).await;
    assert_eq!(
        v["cause"],
        json!({"kind": "backfill", "backfill_id": bf_id, "reason": RunReason::Missing.as_str()})
    );
    assert_eq!(v["requested_by"]["token_id"], token_id);
    let v = why(&w, run_of(&w, "report", earlier)).await;
    assert_eq!(
        v["cause"],
        json!({"kind": "cascade", "backfill_id": bf_id, "upstream": [
            {"workflow": "etl", "window_start_ms": earlier, "window_end_ms": earlier + H}
        ]})
    );
    assert_eq!(v["upstream"][0]["run_id"], repaired, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_scopes_its_cascade_and_the_preview_shows_each_workflow() {
    let w = world().await;
    apply(&w, &etl(5)).await;
    apply(&w, &downstream("report")).await;
    apply(&w, &downstream("audit")).await;
    w.engine.settle().await.unwrap();
    let request = |extra: Value| {
        let mut body = json!({
            "workflow": "etl",
            "start": format_utc(T0 + 6 * H),
            "end": format_utc(T0 + 8 * H),
            "downstream": "direct",
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body.to_string()
    };
    // Unknown or unreachable workflows: 400 naming the field and the
    // workflow, and nothing stored.
    for (extra, field, name) in [
        (
            json!({"downstream_include": ["nope"]}),
            "downstream_include",
            "nope",
        ),
        (
            json!({"downstream_exclude": ["etl"]}),
            "downstream_exclude",
            "etl",
        ),
        (
            json!({"downstream_exclude": ["nope"], "dry_run": true}),
            "downstream_exclude",
            "nope",
        ),
    ] {
        let (s, e) = call(&w, "POST", "/api/v1/backfills", &request(extra)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(field) && msg.contains(&format!("{name:?}")),
            "{msg}"
        );
    }
    let (_, list) = call(&w, "GET", "/api/v1/backfills", "").await;
    assert_eq!(list["backfills"], json!([]));

    // The preview: two windows of etl, audit's two left out, report's two
    // added, and only report's windows in the plan.
    let (s, d) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        &request(json!({"downstream_exclude": ["audit"], "dry_run": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let mut cascade = d["plan"]["cascade"].as_array().unwrap().clone();
    cascade.sort_by_key(|c| c["workflow"].as_str().unwrap().to_owned());
    assert_eq!(
        cascade,
        [
            json!({"workflow": "audit", "depth": 1, "windows": 2, "included": false}),
            json!({"workflow": "report", "depth": 1, "windows": 2, "included": true}),
        ]
    );
    let planned: Vec<(String, i64)> = d["plan"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["workflow"].as_str().unwrap().to_owned(),
                e["window_start_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [("etl", 6), ("etl", 7), ("report", 6), ("report", 7)]
        .iter()
        .map(|(wf, h)| (wf.to_string(), T0 + h * H))
        .collect();
    assert_eq!(planned, expected);

    // Launched: report's windows run again, audit's do not.
    let (s, bf) = call(
        &w,
        "POST",
        "/api/v1/backfills",
        &request(json!({"downstream_include": ["report"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{bf}");
    w.engine.settle().await.unwrap();
    let ran = |wf: &str| {
        w.engine
            .runs_of("acme", wf, T0 + 6 * H, T0 + 8 * H, 10)
            .unwrap()
            .len()
    };
    assert_eq!((ran("etl"), ran("report"), ran("audit")), (2, 2, 0));
}

/// A retry through the API keeps the run's cause and first requester, and
/// records who asked for it and when (the engine's clock), once per retry;
/// `runs why` shows them too.
#[tokio::test(flavor = "multi_thread")]
async fn each_retry_records_who_asked_and_when() {
    let w = crate::api::world_with(&[("flaky", FLAKY)]).await;
    apply(
        &w,
        "name = \"fragile\"\ncatchup = false\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"f\"\nplugin = \"flaky\"\nparams = { fail_times = 2 }\n",
    )
    .await;
    w.engine.settle().await.unwrap();
    let id = run_of(&w, "fragile", T0 + 9 * H);
    let v = why(&w, id).await;
    assert_eq!(v["retries"], json!([]), "{v}");

    let path = format!("/api/v1/runs/{id}/retry");
    let first_at = w.clock.now_ms();
    let (s, r) = call(&w, "POST", &path, "").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    w.engine.settle().await.unwrap();
    assert_eq!(
        w.engine.run("acme", id).unwrap().unwrap().state.as_str(),
        "failed"
    );
    w.clock.advance(5 * 60_000);
    let (s, r) = call(&w, "POST", &path, "").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    w.engine.settle().await.unwrap();

    let v = why(&w, id).await;
    assert_eq!(v["cause"], json!({"kind": "schedule"}));
    assert_eq!(v["requested_by"], json!({"kind": "scheduler"}));
    let token_id = v["retries"][0]["requested_by"]["token_id"]
        .as_u64()
        .expect("a token id");
    let asker = json!({"kind": "token", "token_id": token_id, "label": "first token"});
    assert_eq!(
        v["retries"],
        json!([
            {"requested_by": asker, "at_ms": first_at},
            {"requested_by": asker, "at_ms": first_at + 5 * 60_000},
        ])
    );
    // The third attempt passed; a run that is not failed or cancelled is
    // refused, and nothing is recorded.
    assert_eq!(
        w.engine.run("acme", id).unwrap().unwrap().state.as_str(),
        "succeeded"
    );
    let (s, e) = call(&w, "POST", &path, "").await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(why(&w, id).await["retries"].as_array().unwrap().len(), 2);
}
