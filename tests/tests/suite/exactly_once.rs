//! The ETL example's exactly-once check on PostgreSQL, shared by the
//! suite's cluster tests and the `cluster_faults` binary.

use tidemark::store::{PgStore, StateStore, TaskData};

/// Exactly one committed success per task of every window of the ETL
/// example's hourly windows `[start, start + windows h)` in database `db`,
/// and every window's events partition written whole (500 rows) once.
pub fn check_etl_exactly_once(db: &str, start: i64, windows: i64) {
    let store = PgStore::open(db).unwrap();
    let found = store
        .windows(
            "default",
            "etl",
            start,
            start + windows * 3_600_000,
            100_000,
        )
        .unwrap();
    assert_eq!(found.len() as i64, windows);
    for (s, w) in &found {
        let run = store.run_get("default", w.run_id).unwrap().expect("run");
        assert_eq!(run.state.as_str(), "succeeded", "window {s}: {run:?}");
        let attempts = store.attempts("default", w.run_id).unwrap();
        for task in ["extract", "transform", "load"] {
            let ok = attempts
                .iter()
                .filter(|a| a.task == task && a.error_kind.is_none())
                .count();
            assert_eq!(ok, 1, "window {s}, task {task}: {attempts:?}");
        }
        let events = store
            .dataset_scan("default", "events", *s..*s + 1, "", None, 10_000)
            .unwrap();
        assert_eq!(events.len(), 500, "window {s}");
    }
}
