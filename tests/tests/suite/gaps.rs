//! The gap and late-data detector (issue #20 item 4), through the router
//! on a ManualClock: late data re-committed upstream makes exactly the
//! downstream windows that read it (or waited for it) stale; the plan
//! repairs exactly those; `propose` waits for approval, `auto` runs; a
//! dismissed proposal is not made again; missing and failed windows are
//! found with their reasons; bad ranges change nothing.

use axum::http::StatusCode;
use serde_json::{json, Value};
use tidemark::schedule::format_utc;
use tidemark::store::BackfillState;

use crate::api::World;

use crate::provenance::{call, world};

/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;
const H: i64 = 3_600_000;

fn hourly(name: &str, extra: &str, tasks: &str) -> String {
    format!(
        "name = \"{name}\"\ncatchup = false\n{extra}\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n{tasks}"
    )
}

/// `raw` writes `events` rows per window; `agg` aggregates them (reads
/// the partition); `note` only waits for `raw`'s window (reads nothing).
fn raw(events: u32, fail: bool) -> String {
    hourly(
        "raw",
        "",
        &format!("[[tasks]]\nname = \"extract\"\nplugin = \"extract\"\nparams = {{ events = \"{events}\", fail_after_write = \"{fail}\" }}\n"),
    )
}

fn agg(repair: &str) -> String {
    hourly(
        "agg",
        &format!("repair = {repair}"),
        "[[tasks]]\nname = \"t\"\nplugin = \"transform\"\n[[upstream]]\nworkflow = \"raw\"\n",
    )
}

fn note(repair: &str) -> String {
    hourly(
        "note",
        &format!("repair = {repair}"),
        "[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n[[upstream]]\nworkflow = \"raw\"\n",
    )
}

async fn apply(w: &World, def: &str) {
    let (s, v) = call(w, "POST", "/api/v1/workflows", def).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Lets the hours `10..until` pass, each window running as it is due.
async fn live_until(w: &World, until: i64) {
    for h in 11..=until {
        w.clock.set(T0 + h * H + 5);
        w.engine.settle().await.unwrap();
    }
}

/// Re-runs `raw`'s windows at these hours with workflow version `version`,
/// to the end.
async fn recommit_raw(w: &World, hours: &[i64], version: u32) {
    let dates: Vec<String> = hours.iter().map(|h| format_utc(T0 + h * H)).collect();
    let body = json!({"workflow": "raw", "dates": dates, "rerun": "all", "version": version});
    let (s, v) = call(w, "POST", "/api/v1/backfills", &body.to_string()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    w.engine.settle().await.unwrap();
    let id = v["backfill"]["id"].as_u64().unwrap();
    assert_eq!(
        w.engine.backfill("acme", id).unwrap().unwrap().state,
        BackfillState::Succeeded
    );
}

async fn gaps(w: &World, workflow: &str, query: &str) -> Value {
    let (s, v) = call(
        w,
        "GET",
        &format!("/api/v1/workflows/{workflow}/gaps{query}"),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// `(window hour, kind)` of each gap.
fn found(report: &Value) -> Vec<(i64, String)> {
    report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                (g["window_start_ms"].as_i64().unwrap() - T0) / H,
                g["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Repair backfills of `workflow`, oldest first.
fn repairs(w: &World, workflow: &str) -> Vec<tidemark::store::BackfillRecord> {
    let mut all: Vec<_> = w
        .engine
        .store()
        .backfills("acme")
        .unwrap()
        .into_iter()
        .filter(|b| b.request.workflow == workflow && b.repair.is_some())
        .collect();
    all.sort_by_key(|b| b.id);
    all
}

fn run_of(w: &World, workflow: &str, hour: i64) -> u64 {
    let start = T0 + hour * H;
    w.engine
        .runs_of("acme", workflow, start, start + 1, 1)
        .unwrap()
        .first()
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread")]
async fn late_data_marks_exactly_the_dependent_windows_stale_and_the_repair_fixes_them() {
    let w = world().await;
    apply(&w, &raw(5, false)).await;
    apply(&w, &agg("{ mode = \"propose\", lookback = \"1d\" }")).await;
    apply(&w, &note("\"auto\"")).await;
    w.engine.settle().await.unwrap();
    live_until(&w, 14).await;
    // Hours 9..13 ran live; nothing is stale, and the windows before the
    // workflows were applied are not "missing" to the detector.
    w.engine.scan_repairs().await.unwrap();
    assert!(repairs(&w, "agg").is_empty() && repairs(&w, "note").is_empty());
    assert_eq!(found(&gaps(&w, "agg", "").await), vec![]);

    // Late data: hour 11 of `raw` is committed again with more rows; hour
    // 12 again with the same rows (same content version).
    recommit_raw(&w, &[12], 1).await;
    apply(&w, &raw(7, false)).await;
    recommit_raw(&w, &[11], 2).await;

    // `agg` read the partitions: only hour 11 changed under it.
    let report = gaps(&w, "agg", "").await;
    assert_eq!(found(&report), vec![(11, "stale".to_owned())], "{report}");
    let reason = report["gaps"][0]["reason"].as_str().unwrap();
    let stale_run = run_of(&w, "agg", 11);
    assert!(
        reason.starts_with(&format!(
            "stale: events@2024-03-01T11:00:00Z was committed again after run {stale_run} read it (version "
        )),
        "{reason}"
    );
    assert_eq!(report["summary"], "1 stale");
    assert_eq!(
        report["plan"]["dates"],
        json!(["2024-03-01T11:00:00Z"]),
        "the plan repairs exactly the stale window"
    );
    assert_eq!(report["plan"]["rerun"], "all");
    assert_eq!(report["plan"]["dry_run"], true);
    // The plan is a ready-made dry run.
    let (s, dry) = call(&w, "POST", "/api/v1/backfills", &report["plan"].to_string()).await;
    assert_eq!(s, StatusCode::OK, "{dry}");
    assert_eq!(dry["plan"]["runs"], 1);

    // `note` read nothing: both hours whose upstream ran again are stale.
    let report = gaps(&w, "note", "").await;
    assert_eq!(
        found(&report),
        vec![(11, "stale".to_owned()), (12, "stale".to_owned())]
    );
    assert!(report["gaps"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("raw@2024-03-01T12:00:00Z ran again"));

    // The detector's pass: `agg` gets a paused proposal, `note` a running
    // repair; a second pass adds nothing while they exist.
    w.engine.scan_repairs().await.unwrap();
    w.engine.scan_repairs().await.unwrap();
    let proposed = repairs(&w, "agg");
    assert_eq!(proposed.len(), 1);
    let p = &proposed[0];
    assert_eq!(p.state, BackfillState::Paused);
    assert!(
        p.pause_reason
            .as_deref()
            .unwrap()
            .starts_with("proposed by the gap detector (1 stale)"),
        "{:?}",
        p.pause_reason
    );
    assert_eq!(p.requested_by, tidemark::run::Requester::Scheduler);
    let auto = repairs(&w, "note");
    assert_eq!(auto.len(), 1);
    assert_eq!(auto[0].state, BackfillState::Running);
    w.engine.settle().await.unwrap();
    assert_eq!(
        w.engine
            .backfill("acme", auto[0].id)
            .unwrap()
            .unwrap()
            .state,
        BackfillState::Succeeded
    );
    assert_eq!(found(&gaps(&w, "note", "").await), vec![]);
    // The proposal has not run.
    assert_eq!(run_of(&w, "agg", 11), stale_run);

    // Each repair run says why it exists.
    let (_, why) = call(
        &w,
        "GET",
        &format!("/api/v1/runs/{}/why", run_of(&w, "note", 12)),
        "",
    )
    .await;
    assert_eq!(why["cause"]["kind"], "gap_repair", "{why}");
    assert_eq!(why["cause"]["backfill_id"], auto[0].id);
    assert!(why["cause"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("stale: raw@2024-03-01T12:00:00Z ran again"));

    // The console's backfill page shows the proposal for what it is.
    let (_, b) = call(&w, "GET", &format!("/api/v1/backfills/{}", p.id), "").await;
    assert_eq!(
        b["backfill"]["gap_repair"],
        json!({"by": "propose", "windows": 1})
    );

    // Approval is a resume: exactly the stale window runs again.
    let (s, v) = call(
        &w,
        "POST",
        &format!("/api/v1/backfills/{}/resume", p.id),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.engine.settle().await.unwrap();
    let done = w.engine.backfill("acme", p.id).unwrap().unwrap();
    assert_eq!((done.state, done.succeeded), (BackfillState::Succeeded, 1));
    assert_ne!(run_of(&w, "agg", 11), stale_run);
    assert_eq!(found(&gaps(&w, "agg", "").await), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dismissed_proposal_is_not_made_again_until_a_new_gap_appears() {
    let w = world().await;
    apply(&w, &raw(5, false)).await;
    apply(&w, &agg("\"propose\"")).await;
    w.engine.settle().await.unwrap();
    live_until(&w, 13).await;
    w.engine.scan_repairs().await.unwrap();
    apply(&w, &raw(6, false)).await;
    recommit_raw(&w, &[11], 2).await;
    w.engine.scan_repairs().await.unwrap();
    let first = repairs(&w, "agg");
    assert_eq!(first.len(), 1);
    let (s, v) = call(
        &w,
        "POST",
        &format!("/api/v1/backfills/{}/cancel", first[0].id),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.engine.settle().await.unwrap();

    w.engine.scan_repairs().await.unwrap();
    assert_eq!(repairs(&w, "agg").len(), 1, "dismissed: not proposed again");
    // The gap is still reported on request.
    assert_eq!(
        found(&gaps(&w, "agg", "").await),
        vec![(11, "stale".to_owned())]
    );

    recommit_raw(&w, &[12], 2).await;
    w.engine.scan_repairs().await.unwrap();
    let again = repairs(&w, "agg");
    assert_eq!(again.len(), 2, "a new gap: a new proposal");
    let reasons: Vec<i64> = again[1]
        .repair
        .as_ref()
        .unwrap()
        .reasons
        .iter()
        .map(|(s, _)| (s - T0) / H)
        .collect();
    assert_eq!(reasons, vec![11, 12]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_failed_windows_are_found_and_repaired_on_request() {
    let w = world().await;
    apply(&w, &raw(5, true)).await;
    w.engine.settle().await.unwrap();
    live_until(&w, 11).await;

    // Hours 6..8 never ran (before the workflow existed); 9 and 10 failed.
    let report = gaps(&w, "raw", "?since=2024-03-01T06:00:00Z").await;
    assert_eq!(
        found(&report),
        vec![
            (6, "missing".to_owned()),
            (7, "missing".to_owned()),
            (8, "missing".to_owned()),
            (9, "failed".to_owned()),
            (10, "failed".to_owned()),
        ],
        "{report}"
    );
    assert_eq!(report["scanned"], 5);
    assert_eq!(report["summary"], "3 missing, 2 failed");
    let failed = &report["gaps"][3];
    assert_eq!(failed["run_id"], run_of(&w, "raw", 9));
    assert!(
        failed["reason"].as_str().unwrap().starts_with(&format!(
            "failed: run {} failed: task extract: ",
            run_of(&w, "raw", 9)
        )),
        "{failed}"
    );
    assert_eq!(report["gaps"][0]["reason"], "missing: never ran");

    // Bad input names the field and stores nothing.
    let before = w.engine.store().backfills("acme").unwrap().len();
    for (query, what) in [
        ("?since=yesterday", "since"),
        ("?until=soon", "until"),
        (
            "?since=2024-03-01T08:00:00Z&until=2024-03-01T07:00:00Z",
            "must be before until",
        ),
    ] {
        let (s, v) = call(&w, "GET", &format!("/api/v1/workflows/raw/gaps{query}"), "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(what),
            "{v}"
        );
    }
    for body in [r#"{"since": "yesterday"}"#, r#"{"propse": true}"#, "[1]"] {
        let (s, v) = call(&w, "POST", "/api/v1/workflows/raw/gaps/repair", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    let (s, _) = call(&w, "GET", "/api/v1/workflows/nope/gaps", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(w.engine.store().backfills("acme").unwrap().len(), before);

    // A repair on request: fixed, the plugin repairs every gap.
    apply(&w, &raw(5, false)).await;
    let body = json!({"since": "2024-03-01T06:00:00Z"}).to_string();
    let (s, v) = call(&w, "POST", "/api/v1/workflows/raw/gaps/repair", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["backfill"]["backfill"]["gap_repair"],
        json!({"by": "request", "windows": 5})
    );
    assert_eq!(v["backfill"]["backfill"]["state"], "running");
    w.engine.settle().await.unwrap();
    let (_, why) = call(
        &w,
        "GET",
        &format!("/api/v1/runs/{}/why", run_of(&w, "raw", 7)),
        "",
    )
    .await;
    assert_eq!(why["cause"]["reason"], "missing: never ran");
    assert_eq!(why["requested_by"]["kind"], "token");
    let report = gaps(&w, "raw", "?since=2024-03-01T06:00:00Z").await;
    assert_eq!(found(&report), vec![]);
    assert_eq!(report["plan"], Value::Null);
    let (s, v) = call(&w, "POST", "/api/v1/workflows/raw/gaps/repair", &body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["backfill"], Value::Null, "nothing to repair");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_driver_runs_the_detector_once_a_minute_by_itself() {
    let w = world().await;
    apply(&w, &raw(5, false)).await;
    apply(&w, &note("\"auto\"")).await;
    w.engine.settle().await.unwrap();
    live_until(&w, 12).await;
    // Wait out any pass the passes above began, then make a gap.
    w.engine.scan_repairs().await.unwrap();
    recommit_raw(&w, &[11], 1).await;
    assert!(repairs(&w, "note").is_empty(), "no pass is due yet");

    // A minute later a driver pass starts the detector in the background.
    w.clock.advance(61_000);
    w.engine.tick().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while repairs(&w, "note").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no repair was made");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let made = &repairs(&w, "note")[0];
    assert_eq!(
        made.repair.as_ref().unwrap().mode,
        tidemark::gap::RepairMode::Auto
    );
    assert_eq!(made.repair.as_ref().unwrap().reasons.len(), 1);
    w.engine.settle().await.unwrap();
    assert_eq!(found(&gaps(&w, "note", "").await), vec![]);
}
