//! A backfill's state strip: window states counted per time bucket by the
//! store, with the windows not yet started as `pending`.

use tidemark::engine::{Engine, EngineError, Strip};
use tidemark::store::StateCounts;

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

/// Counts per bucket of `strip` from the backfill's window records.
fn listed(e: &Engine, id: u64, s: &Strip) -> Vec<StateCounts> {
    let windows = e.store().backfill_windows(T, id, None, 100_000).unwrap();
    s.buckets
        .iter()
        .map(|b| {
            let mut c = StateCounts::default();
            for w in windows
                .iter()
                .filter(|w| w.workflow == s.workflow && (b.start..b.end).contains(&w.window_start))
            {
                c.add(w.state);
            }
            c
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn wide_buckets_snap_to_tiles_and_count_exactly() {
    let (e, _dir) = setup().await;
    let early = start(
        &e,
        serde_json::json!({"workflow": "wf", "start": iso(MON + 100 * H), "end": iso(MON + 110 * H)}),
    )
    .await;
    run_checked(&e, early, 8).await;
    // 20 days of hourly windows, ten of them already done (skipped).
    let (from, to) = (MON, MON + 480 * H);
    let id = start(
        &e,
        serde_json::json!({"workflow": "wf", "start": iso(from), "end": iso(to), "parallelism": 64}),
    )
    .await;
    // Tiles of 64 hours rounded up to a power of two: 2^28 ms, about 74.6
    // hours, so 4 buckets of 120 hours are wider than a tile.
    let tile = 1i64 << 28;
    assert_eq!(e.store().backfill_tile_width(T, id, "wf").unwrap(), None);
    run_checked(&e, id, 64).await;
    assert_eq!(
        e.store().backfill_tile_width(T, id, "wf").unwrap(),
        Some(tile)
    );

    let wide = e.backfill_strip(T, id, None, (None, None), 4).unwrap();
    let edges: Vec<i64> = wide.buckets.iter().map(|b| b.start).collect();
    assert_eq!((wide.from, wide.to), (from, to));
    assert_eq!(wide.buckets.len(), 4);
    assert_eq!((edges[0], wide.buckets[3].end), (from, to));
    assert!(
        wide.buckets.windows(2).all(|p| p[0].end == p[1].start),
        "{wide:?}"
    );
    // Inner edges moved from the even split (MON + 120 h, ...) to the
    // nearest tile boundary.
    let even: Vec<i64> = (1..4).map(|i| from + i * 120 * H).collect();
    let nearest: Vec<i64> = even.iter().map(|e| (e + tile / 2) / tile * tile).collect();
    assert_eq!(edges[1..], nearest[..]);
    assert_ne!(edges[1..], even[..]);
    assert_eq!(
        wide.buckets.iter().map(|b| b.counts).collect::<Vec<_>>(),
        listed(&e, id, &wide)
    );
    let hours = |b: &tidemark::engine::Bucket| ((b.end - 1) / H - (b.start - 1) / H) as u64;
    for b in &wide.buckets {
        // Every hour of the bucket counted once, nothing left pending.
        assert_eq!((b.counts.total(), b.pending), (hours(b), 0), "{b:?}");
    }
    let totals: Vec<(u64, u64)> = wide
        .buckets
        .iter()
        .map(|b| (b.counts.succeeded, b.counts.skipped))
        .collect();
    assert_eq!(totals.iter().map(|t| t.0).sum::<u64>(), 470);
    assert_eq!(totals.iter().map(|t| t.1).sum::<u64>(), 10);

    // Zoomed in below a tile per bucket: the even split, counted exactly.
    let zoom = e
        .backfill_strip(T, id, None, (Some(MON + 90 * H), Some(MON + 130 * H)), 8)
        .unwrap();
    assert_eq!(
        zoom.buckets
            .iter()
            .map(|b| (b.start, b.end))
            .collect::<Vec<_>>(),
        (0..8)
            .map(|i| (MON + (90 + 5 * i) * H, MON + (95 + 5 * i) * H))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        shape(&zoom),
        vec![
            (0, 0, 5, 0),
            (0, 0, 5, 0),
            (0, 0, 0, 5),
            (0, 0, 0, 5),
            (0, 0, 5, 0),
            (0, 0, 5, 0),
            (0, 0, 5, 0),
            (0, 0, 5, 0),
        ]
    );
    assert_eq!(
        zoom.buckets.iter().map(|b| b.counts).collect::<Vec<_>>(),
        listed(&e, id, &zoom)
    );
}
