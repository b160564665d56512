//! A backfill's state strip: window states counted per time bucket by the
//! store, with the windows not yet started as `pending`.

use tidemark::engine::{EngineError, Strip};

use crate::backfill::{iso, run_checked, setup, start, H, MON, T};

/// `(pending, running, succeeded, skipped)` per bucket.
fn shape(s: &Strip) -> Vec<(u64, u64, u64, u64)> {
    s.buckets
        .iter()
        .map(|b| {
            (
                b.pending,
                b.counts.running,
                b.counts.succeeded,
                b.counts.skipped,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn strip_counts_each_bucket_and_what_is_pending() {
    let (e, _dir) = setup().await;
    // The first six hours succeed first, so the day's backfill skips them.
    let early = start(
        &e,
        serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 6 * H)}),
    )
    .await;
    run_checked(&e, early, 8).await;
    let day = start(
        &e,
        serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 24 * H), "parallelism": 4}),
    )
    .await;

    // Nothing materialized yet: every window is pending.
    let before = e.backfill_strip(T, day, None, (None, None), 4).unwrap();
    assert_eq!((before.from, before.to), (MON, MON + 24 * H));
    assert_eq!(shape(&before), vec![(6, 0, 0, 0); 4]);

    run_checked(&e, day, 4).await;
    let after = e.backfill_strip(T, day, None, (None, None), 4).unwrap();
    assert_eq!(
        shape(&after),
        vec![(0, 0, 0, 6), (0, 0, 6, 0), (0, 0, 6, 0), (0, 0, 6, 0)]
    );
    assert_eq!(
        after
            .buckets
            .iter()
            .map(|b| (b.start, b.end))
            .collect::<Vec<_>>(),
        (0..4)
            .map(|i| (MON + i * 6 * H, MON + (i + 1) * 6 * H))
            .collect::<Vec<_>>()
    );
    // A zoomed-in range with more buckets than windows: one window each.
    let zoom = e
        .backfill_strip(
            T,
            day,
            Some("wf"),
            (Some(MON + 5 * H), Some(MON + 8 * H)),
            3,
        )
        .unwrap();
    assert_eq!(shape(&zoom), vec![(0, 0, 0, 1), (0, 0, 1, 0), (0, 0, 1, 0)]);
    // Uneven split: 24 windows in 5 buckets still count each window once.
    let uneven = e.backfill_strip(T, day, None, (None, None), 5).unwrap();
    let total: u64 = uneven
        .buckets
        .iter()
        .map(|b| b.counts.total() + b.pending)
        .sum();
    assert_eq!((uneven.buckets.len(), total), (5, 24));

    // A date list is exact, and bad requests name the problem.
    let dates = start(
        &e,
        serde_json::json!({"workflow": "wf", "dates": [iso(MON + 30 * H), iso(MON + 40 * H)]}),
    )
    .await;
    let s = e.backfill_strip(T, dates, None, (None, None), 2).unwrap();
    assert_eq!((s.from, s.to), (MON + 30 * H, MON + 40 * H + 1));
    assert_eq!(
        s.buckets.iter().map(|b| b.pending).collect::<Vec<_>>(),
        vec![1, 1]
    );
    match e.backfill_strip(T, day, None, (Some(MON + H), Some(MON)), 2) {
        Err(EngineError::Backfill(err)) => assert_eq!(err.field, "to"),
        other => panic!("{other:?}"),
    }
    match e.backfill_strip(T, day, Some("other"), (None, None), 2) {
        Err(EngineError::Backfill(err)) => assert!(
            err.message.contains("\"other\" is not (yet)"),
            "{}",
            err.message
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.backfill_strip("nobody", day, None, (None, None), 2),
        Err(EngineError::BackfillNotFound(_))
    ));
}
