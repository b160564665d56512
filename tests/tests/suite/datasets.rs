//! Dataset writes are staged: invisible until the attempt succeeds, then all
//! visible at once, and a re-run replaces the window's partition.

use tidemark::executor::ErrorKind;
use tidemark::store::TaskData;
use tidemark_tests::plugins::*;

use crate::*;

fn count(data: &SledStore, dataset: &str, window: i64) -> usize {
    data.dataset_scan("acme", dataset, window..window + 1, "", None, 100_000)
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_attempt_leaves_nothing_visible() {
    let data = store();
    // Writes 100 rows, then returns an error.
    let r = run_and_commit(
        ETL_EXTRACT,
        &invocation("extract", DAY, &[("fail_after_write", "true")]),
        data.clone(),
    )
    .await;
    assert_eq!(r.result.unwrap_err().kind(), ErrorKind::Task);
    assert!(r.outputs.is_empty());
    assert_eq!(count(&data, "events", DAY), 0);
    // Writes until it traps on the output limit.
    let r = run(
        CHATTY,
        &invocation("chatty", DAY, &[("mode", "output")]),
        &limits(),
        data.clone(),
    )
    .await;
    assert_eq!(r.result.unwrap_err().kind(), ErrorKind::OutputLimit);
    assert_eq!(count(&data, "chatty", DAY), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn success_makes_every_write_visible() {
    let data = store();
    let r = run(
        ETL_EXTRACT,
        &invocation("extract", DAY, &[("events", "300")]),
        &limits(),
        data.clone(),
    )
    .await;
    assert!(r.succeeded());
    assert_eq!(r.outputs.len(), 300);
    assert_eq!(count(&data, "events", DAY), 0, "staged, not yet committed");
    data.dataset_commit("acme", DAY, &r.outputs).unwrap();
    assert_eq!(count(&data, "events", DAY), 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_replaces_the_partition() {
    let data = store();
    let big = run_and_commit(
        ETL_EXTRACT,
        &invocation("extract", DAY, &[("events", "200")]),
        data.clone(),
    )
    .await;
    assert!(big.succeeded());
    let next = run_and_commit(
        ETL_EXTRACT,
        &invocation("extract", DAY + HOUR, &[("events", "7")]),
        data.clone(),
    )
    .await;
    assert!(next.succeeded());
    let small = run_and_commit(
        ETL_EXTRACT,
        &invocation("extract", DAY, &[("events", "50")]),
        data.clone(),
    )
    .await;
    assert!(small.succeeded());
    assert_eq!(
        count(&data, "events", DAY),
        50,
        "no rows left over from the first run"
    );
    assert_eq!(
        count(&data, "events", DAY + HOUR),
        7,
        "other windows untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_do_not_see_each_others_data() {
    let data = store();
    let r = run_and_commit(ETL_EXTRACT, &invocation("extract", DAY, &[]), data.clone()).await;
    assert!(r.succeeded());
    let mut other = invocation("transform", DAY, &[]);
    other.tenant = "globex".into();
    let r = run(ETL_TRANSFORM, &other, &limits(), data.clone()).await;
    let err = r.result.unwrap_err();
    assert!(err.to_string().contains("no input"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_dataset_names_are_errors_not_traps() {
    let data = store();
    let r = run(
        ETL_EXTRACT,
        &invocation("extract", DAY, &[("dataset", "bad name!")]),
        &limits(),
        data,
    )
    .await;
    let err = r.result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Task, "{err}");
    assert!(!err.retryable());
    assert!(err.to_string().contains("bad name!"), "{err}");
}
