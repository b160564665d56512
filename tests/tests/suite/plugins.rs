//! The example plugins do what they promise.

use serde_json::Value;
use tidemark::executor::{AttemptError, Trigger};
use tidemark::store::TaskData;
use tidemark_tests::plugins::*;

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn hello_sees_its_context() {
    let mut inv = invocation("greet", DAY, &[]);
    inv.workflow = "daily".into();
    inv.trigger = Trigger::Backfill;
    let r = run(HELLO, &inv, &limits(), store()).await;
    assert_eq!(r.result, Ok("hello".into()));
    let line = &r.log[0].message;
    assert!(line.contains("daily/greet"), "{line}");
    assert!(line.contains(&DAY.to_string()), "{line}");
    assert!(r.fuel_consumed.unwrap() > 0);
}

/// The extract plugin's generator, recomputed independently.
fn expected_event(window_start_ms: i64, i: u64) -> (String, u64) {
    const G: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut z = (window_start_ms as u64 ^ i.wrapping_mul(G)).wrapping_add(G);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let h = z ^ (z >> 31);
    (format!("user-{}", h % 10), (h >> 32) % 1000)
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON value")
}

#[tokio::test(flavor = "multi_thread")]
async fn etl_pipeline_produces_checkable_results() {
    let data = store();
    let windows = [DAY, DAY + HOUR];
    for &w in &windows {
        for (task, plugin) in [
            ("extract", ETL_EXTRACT),
            ("transform", ETL_TRANSFORM),
            ("load", ETL_LOAD),
        ] {
            let r = run_and_commit(
                plugin,
                &invocation(task, w, &[("events", "250")]),
                data.clone(),
            )
            .await;
            assert!(r.succeeded(), "{task} @ {w}: {:?} {:?}", r.result, r.log);
        }
    }
    for &w in &windows {
        let mut users = std::collections::BTreeMap::<String, (u64, u64)>::new();
        for i in 0..250 {
            let (user, amount) = expected_event(w, i);
            let e = users.entry(user).or_default();
            e.0 += 1;
            e.1 += amount;
        }
        let totals = data
            .dataset_scan("acme", "user_totals", w..w + 1, "", None, 1000)
            .unwrap();
        assert_eq!(totals.len(), users.len());
        for t in &totals {
            let (count, sum) = users[&t.key];
            assert_eq!(
                json(&t.value),
                serde_json::json!({"count": count, "sum": sum}),
                "{}",
                t.key
            );
        }
        let summary = json(
            &data
                .dataset_get("acme", "summary", w, "window")
                .unwrap()
                .unwrap(),
        );
        let amount: u64 = users.values().map(|v| v.1).sum();
        assert_eq!(summary["events"], 250);
        assert_eq!(summary["users"], users.len());
        assert_eq!(summary["amount"], amount);
        assert_eq!(summary["window_start"], w);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transform_without_input_is_retryable() {
    let r = run(
        ETL_TRANSFORM,
        &invocation("transform", DAY, &[]),
        &limits(),
        store(),
    )
    .await;
    match r.result {
        Err(AttemptError::Task {
            retryable: true,
            message,
        }) => {
            assert!(message.contains("no input"), "{message}")
        }
        other => panic!("expected a retryable task error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn flaky_fails_retryably_then_succeeds() {
    let data = store();
    for attempt in 1..=4 {
        let mut inv = invocation("flaky", DAY, &[("fail_times", "3")]);
        inv.attempt = attempt;
        let r = run(FLAKY, &inv, &limits(), data.clone()).await;
        if attempt <= 3 {
            let err = r.result.unwrap_err();
            assert!(
                matches!(
                    err,
                    AttemptError::Task {
                        retryable: true,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(err.retryable());
        } else {
            assert_eq!(r.result, Ok("succeeded on attempt 4".into()));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resumable_continues_from_its_checkpoint_without_repeating_items() {
    let data = store();
    let params = [("items", "100"), ("every", "10"), ("trap_after", "25")];
    let mut inv = invocation("resumable", DAY, &params);

    let first = run(RESUMABLE, &inv, &limits(), data.clone()).await;
    let err = first.result.unwrap_err();
    assert!(
        matches!(&err, AttemptError::Trap { message } if message.contains("trapping after item 25")),
        "{err:?}"
    );
    assert!(first.outputs.is_empty());
    let scope = tidemark::store::TaskScope {
        tenant: "acme".into(),
        workflow: "wf".into(),
        task: "resumable".into(),
        window_start: DAY,
    };
    assert!(
        data.checkpoint_load(&scope).unwrap().is_some(),
        "checkpoint survives the trap"
    );

    inv.attempt = 2;
    let second = run_and_commit(RESUMABLE, &inv, data.clone()).await;
    assert_eq!(
        second.result,
        Ok("processed 100 items, resumed from 20".into()),
        "{:?}",
        second.log
    );
    let items = data
        .dataset_scan("acme", "resumable", DAY..DAY + 1, "item-", None, 1000)
        .unwrap();
    assert_eq!(items.len(), 100, "every item exactly once");
    for (i, e) in items.iter().enumerate() {
        let by = json(&e.value);
        // Items before the last checkpoint (20) were done by attempt 1 and
        // never again; the rest by attempt 2.
        assert_eq!(by, if i < 20 { 1 } else { 2 }, "item {i}");
    }
    let summary = json(
        &data
            .dataset_get("acme", "resumable", DAY, "summary")
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        summary,
        serde_json::json!({"items": 100, "resumed_from": 20, "attempt": 2})
    );
    assert!(
        data.checkpoint_load(&scope).unwrap().is_none(),
        "cleared when done"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_are_per_window() {
    let data = store();
    let params = [("items", "30"), ("every", "10"), ("trap_after", "15")];
    let r = run(
        RESUMABLE,
        &invocation("resumable", DAY, &params),
        &limits(),
        data.clone(),
    )
    .await;
    assert!(r.result.is_err());
    // Another window has no checkpoint: it starts from 0 (and, as attempt 2,
    // does not trap).
    let mut other = invocation("resumable", DAY + HOUR, &params);
    other.attempt = 2;
    let r = run(RESUMABLE, &other, &limits(), data.clone()).await;
    assert_eq!(r.result, Ok("processed 30 items, resumed from 0".into()));
}

#[test]
fn concurrent_first_loads_share_the_disk_cache_safely() {
    let dir = tempfile::tempdir().unwrap();
    let executor = std::sync::Arc::new(
        tidemark::executor::Executor::new(tidemark::executor::ExecutorConfig {
            cache_dir: Some(dir.path().to_owned()),
            max_instances: Some(8),
        })
        .unwrap(),
    );
    let wasm = std::sync::Arc::new(std::fs::read(tidemark_tests::plugins::HELLO).unwrap());
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (executor, wasm, barrier) = (executor.clone(), wasm.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                executor.load(&wasm).map(|p| p.digest.clone())
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().is_ok());
    }
    // One compiled file, no temporary left behind.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".cwasm"));
}
