//! Off-peak calendars and start-at times of backfills, on a manual clock:
//! no window starts outside the allowed hours, starts resume at the edge
//! (across a DST change), and impossible requests store nothing.

use std::sync::Arc;

use tidemark::backfill::RawBackfillRequest;
use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig, EngineError};
use tidemark::store::{BackfillState, SledStore};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::HELLO;

const T: &str = "acme";

fn at(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

async fn setup(now: &str) -> (Engine, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at(now)));
    let e = Engine::open(
        Arc::new(SledStore::open(dir.path()).unwrap()),
        crate::engine_executor(),
        clock.clone(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    e.push_plugin(T, "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    let wf =
        "name = \"wf\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
              [[tasks]]\nname = \"a\"\nplugin = \"hello\"\n";
    e.apply_workflow(T, RawWorkflow::from_toml(wf).unwrap())
        .await
        .unwrap();
    (e, clock, dir)
}

fn request(extra: serde_json::Value) -> RawBackfillRequest {
    let mut r = serde_json::json!({"workflow": "wf", "start": "2024-03-04T00:00:00Z", "end": "2024-03-04T04:00:00Z", "parallelism": 1});
    r.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(r).unwrap()
}

/// Windows the backfill has finished, and why it waits (if it does).
fn progress(e: &Engine, id: u64) -> (u64, Option<String>, BackfillState) {
    let b = e.backfill(T, id).unwrap().unwrap();
    (b.succeeded, b.throttled, b.state)
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_start_only_inside_the_allowed_hours_across_a_dst_change() {
    // Saturday 2024-03-30, 21:00 in Berlin (CET). The night that follows
    // springs forward: 01:00-03:00 local is one real hour, 00:00Z-01:00Z.
    let (e, clock, _dir) = setup("2024-03-30T20:00:00Z").await;
    let hours = serde_json::json!({"allowed_hours": {"timezone": "Europe/Berlin", "spans": ["01:00-03:00"]}});
    let waiting = "waiting: off-peak until 2024-03-31T00:00:00Z (01:00 Europe/Berlin)";
    // The dry run says the same before anything is stored.
    let mut dry = hours.clone();
    dry["dry_run"] = true.into();
    let plan = e
        .create_backfill(T, request(dry))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(plan.waiting.as_deref(), Some(waiting));
    assert_eq!(plan.runs, 4);
    let id = e
        .create_backfill(T, request(hours))
        .await
        .unwrap()
        .unwrap()
        .id;
    let report = e.tick().await.unwrap();
    e.settle().await.unwrap();
    assert_eq!(
        progress(&e, id),
        (0, Some(waiting.into()), BackfillState::Running)
    );
    assert!(
        report
            .next_wake
            .is_some_and(|w| w <= at("2024-03-31T00:00:00Z")),
        "the driver wakes by the edge: {:?}",
        report.next_wake
    );
    assert_eq!(e.active_runs(), 0, "nothing started");

    // The edge: one pass starts one window (parallelism 1).
    clock.set(at("2024-03-31T00:00:00Z"));
    e.tick().await.unwrap();
    e.wait_idle().await;
    assert_eq!(progress(&e, id).0, 1);
    assert_eq!(progress(&e, id).1, None, "open: no longer waiting");

    // 01:00Z is already 03:00 CEST: closed until 01:00 CEST the next night.
    clock.set(at("2024-03-31T01:00:00Z"));
    e.settle().await.unwrap();
    assert_eq!(
        progress(&e, id),
        (
            1,
            Some("waiting: off-peak until 2024-03-31T23:00:00Z (01:00 Europe/Berlin)".into()),
            BackfillState::Running
        )
    );
    clock.set(at("2024-03-31T23:00:00Z"));
    e.settle().await.unwrap();
    assert_eq!(progress(&e, id), (4, None, BackfillState::Succeeded));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_at_time_holds_every_window_until_it_is_due() {
    let (e, clock, _dir) = setup("2024-04-01T10:00:00Z").await;
    let id = e
        .create_backfill(
            T,
            request(serde_json::json!({"start_at": "2024-04-01T22:00:00+02:00"})),
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    e.settle().await.unwrap();
    assert_eq!(
        progress(&e, id),
        (
            0,
            Some("waiting: start-at 2024-04-01T20:00:00Z".into()),
            BackfillState::Running
        )
    );
    clock.set(at("2024-04-01T19:59:59Z"));
    e.settle().await.unwrap();
    assert_eq!(progress(&e, id).0, 0);
    clock.set(at("2024-04-01T20:00:00Z"));
    e.settle().await.unwrap();
    assert_eq!(progress(&e, id), (4, None, BackfillState::Succeeded));
}

#[tokio::test(flavor = "multi_thread")]
async fn impossible_calendars_and_past_start_times_are_refused_storing_nothing() {
    let (e, _clock, _dir) = setup("2024-04-01T10:00:00Z").await;
    let cases = [
        (
            serde_json::json!({"allowed_hours": {"timezone": "Europe/Berlin", "spans": []}}),
            "allowed_hours: no span",
        ),
        (
            serde_json::json!({"allowed_hours": {"timezone": "Europe/Berlin", "spans": ["20:00-20:00"]}}),
            "allows no time",
        ),
        (
            serde_json::json!({"allowed_hours": {"timezone": "Nowhere/City", "spans": ["20:00-06:00"]}}),
            "unknown time zone",
        ),
        (
            serde_json::json!({"start_at": "2024-04-01T09:59:59Z"}),
            "start_at: \"2024-04-01T09:59:59Z\" is in the past",
        ),
        (
            serde_json::json!({"start_at": "tomorrow"}),
            "start_at: \"tomorrow\" is not an RFC 3339 instant",
        ),
    ];
    for (extra, want) in cases {
        for dry_run in [false, true] {
            let mut extra = extra.clone();
            extra["dry_run"] = dry_run.into();
            match e.create_backfill(T, request(extra)).await {
                Err(EngineError::Backfill(err)) => {
                    assert!(err.to_string().contains(want), "{err} vs {want}")
                }
                Err(other) => panic!("{want}: wrong error {other}"),
                Ok(_) => panic!("{want}: accepted"),
            }
        }
    }
    assert!(e.store().backfills(T).unwrap().is_empty());
}
