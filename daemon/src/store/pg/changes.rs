//! `StateStore::apply` on PostgreSQL: one transaction per [`Changes`],
//! committed (and so durable) before it returns.
//!
//! Records are encoded on the caller's thread into a [`Plan`] the future
//! owns; the transaction then only writes, reading just what a write
//! depends on (a window's previous state, a partition's old size), with
//! those rows locked.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::Transaction;

use super::statements::Cached;
use futures_util::future::try_join_all;

use super::super::records::{Changes, WindowRecord};
use super::super::{keys, BackfillWindow, OutputRecord, StagedOutputs, StoreError};
use super::data::{encode_outputs, write_partitions, PartitionWrite};
use super::{pg_err, pool_err, PgStore};
use crate::run::Run;

const OP: &str = "recording a state change";

struct RunRow {
    tenant: String,
    id: i64,
    workflow: String,
    window_start: i64,
    event: bool,
    active: bool,
    record: Vec<u8>,
    /// The window index entry; `None` for event runs, which are not a
    /// window's run and so never hide or block one.
    window: Option<Vec<u8>>,
}

/// Everything one `apply` writes, owned and encoded.
struct Plan {
    runs: Vec<RunRow>,
    cursors: Vec<(String, String, i64)>,
    /// `(tenant, run, task, attempt, record)`.
    attempts: Vec<(String, i64, String, i64, Vec<u8>)>,
    /// `(tenant, id, active, record)`.
    backfills: Vec<(String, i64, bool, Vec<u8>)>,
    backfill_windows: Vec<(String, BackfillWindow)>,
    idempotency: Vec<(String, String, String, i64)>,
    object_outputs: Vec<(String, OutputRecord)>,
    /// `(tenant, partition, partitions written)`.
    partitions: Vec<(String, i64, Vec<PartitionWrite>)>,
}

fn run_row(run: &Run) -> RunRow {
    let event = run.trigger == crate::executor::Trigger::Event;
    RunRow {
        tenant: run.tenant.clone(),
        id: run.id as i64,
        workflow: run.workflow.clone(),
        window_start: run.window_start,
        event,
        active: !run.state.is_terminal(),
        record: keys::encode_json(run),
        window: (!event).then(|| {
            keys::encode_json(&WindowRecord {
                run_id: run.id,
                state: run.state,
            })
        }),
    }
}

fn plan(changes: &Changes) -> Plan {
    // A run can be in one change twice (changes kept from a failed write
    // merged with newer ones): its last state is the one that counts.
    let mut last: HashMap<(&str, u64), usize> = HashMap::new();
    for (i, run) in changes.runs.iter().enumerate() {
        last.insert((run.tenant.as_str(), run.id), i);
    }
    let mut runs: Vec<RunRow> = changes
        .runs
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(&(r.tenant.as_str(), r.id)) == Some(i))
        .map(|(_, r)| run_row(r))
        .collect();
    // Runs that end first: the one-active-run-per-window index is checked
    // row by row, and a window's old run may end in the batch that creates
    // its next one.
    runs.sort_by_key(|r| r.active);
    // Several attempts of one window may write the same partition of a
    // dataset in one change: the later commit replaces it and the usage
    // counts it once, as in the sled store.
    let mut merged: BTreeMap<(&str, i64), StagedOutputs> = BTreeMap::new();
    for (tenant, partition, outputs) in &changes.outputs {
        merged
            .entry((tenant.as_str(), *partition))
            .or_default()
            .replace_datasets(outputs.clone());
    }
    Plan {
        runs,
        cursors: changes.cursors.clone(),
        attempts: changes
            .attempts
            .iter()
            .map(|(t, a)| {
                (
                    t.clone(),
                    a.run_id as i64,
                    a.task.clone(),
                    i64::from(a.attempt),
                    keys::encode_json(a),
                )
            })
            .collect(),
        backfills: changes
            .backfills
            .iter()
            .map(|b| {
                (
                    b.tenant.clone(),
                    b.id as i64,
                    !b.state.is_terminal(),
                    keys::encode_json(b),
                )
            })
            .collect(),
        backfill_windows: changes.backfill_windows.clone(),
        idempotency: changes
            .idempotency
            .iter()
            .map(|(t, w, k, id)| (t.clone(), w.clone(), k.clone(), *id as i64))
            .collect(),
        object_outputs: changes.object_outputs.clone(),
        partitions: merged
            .into_iter()
            .map(|((t, p), o)| (t.to_owned(), p, encode_outputs(t, p, &o)))
            .collect(),
    }
}

// Each table's rows go in one statement (`UNNEST` of one array per
// column), not one statement per row: a persist carries dozens of runs and
// attempts, and each statement is a round trip.
// `ON CONFLICT DO UPDATE` may touch a row once per statement, so each batch
// holds one row per key.
async fn write_runs(tx: &Transaction<'_>, runs: &[RunRow]) -> Result<(), StoreError> {
    if runs.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = runs.iter().map(|r| r.tenant.as_str()).collect();
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let workflows: Vec<&str> = runs.iter().map(|r| r.workflow.as_str()).collect();
    let starts: Vec<i64> = runs.iter().map(|r| r.window_start).collect();
    let events: Vec<bool> = runs.iter().map(|r| r.event).collect();
    let active: Vec<bool> = runs.iter().map(|r| r.active).collect();
    let records: Vec<&[u8]> = runs.iter().map(|r| r.record.as_slice()).collect();
    tx.execute_cached(
        "INSERT INTO runs (tenant, id, workflow, window_start, event, active, record) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], \
                              $5::bool[], $6::bool[], $7::bytea[]) \
         ON CONFLICT (tenant, id) DO UPDATE SET workflow = EXCLUDED.workflow, \
         window_start = EXCLUDED.window_start, event = EXCLUDED.event, \
         active = EXCLUDED.active, record = EXCLUDED.record",
        &[
            &tenants, &ids, &workflows, &starts, &events, &active, &records,
        ],
    )
    .await
    .map_err(pg_err(OP))?;
    // The index holds a window's newest run: of this batch's runs of one
    // window the newest, and an older run's change (a late end of a run
    // that was replaced) leaves a newer stored one alone.
    let mut newest: BTreeMap<(&str, &str, i64), (i64, &[u8])> = BTreeMap::new();
    for r in runs {
        if let Some(window) = &r.window {
            let entry = newest
                .entry((&r.tenant, &r.workflow, r.window_start))
                .or_insert((r.id, window));
            if r.id >= entry.0 {
                *entry = (r.id, window);
            }
        }
    }
    if newest.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = newest.keys().map(|k| k.0).collect();
    let workflows: Vec<&str> = newest.keys().map(|k| k.1).collect();
    let starts: Vec<i64> = newest.keys().map(|k| k.2).collect();
    let ids: Vec<i64> = newest.values().map(|v| v.0).collect();
    let records: Vec<&[u8]> = newest.values().map(|v| v.1).collect();
    tx.execute_cached(
        "INSERT INTO windows (tenant, workflow, start_ms, run_id, record) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (tenant, workflow, start_ms) DO UPDATE \
         SET run_id = EXCLUDED.run_id, record = EXCLUDED.record \
         WHERE windows.run_id <= EXCLUDED.run_id",
        &[&tenants, &workflows, &starts, &ids, &records],
    )
    .await
    .map_err(pg_err(OP))?;
    Ok(())
}

/// `(tenant, run, task, attempt, record)` rows, the last of each key.
async fn write_attempts(
    tx: &Transaction<'_>,
    attempts: &[(String, i64, String, i64, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut last: BTreeMap<(&str, i64, &str, i64), &[u8]> = BTreeMap::new();
    for (tenant, run, task, attempt, record) in attempts {
        last.insert((tenant, *run, task, *attempt), record);
    }
    if last.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = last.keys().map(|k| k.0).collect();
    let runs: Vec<i64> = last.keys().map(|k| k.1).collect();
    let tasks: Vec<&str> = last.keys().map(|k| k.2).collect();
    let numbers: Vec<i64> = last.keys().map(|k| k.3).collect();
    let records: Vec<&[u8]> = last.values().copied().collect();
    tx.execute_cached(
        "INSERT INTO attempts (tenant, run_id, task, attempt, record) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (tenant, run_id, task, attempt) DO UPDATE SET record = EXCLUDED.record",
        &[&tenants, &runs, &tasks, &numbers, &records],
    )
    .await
    .map_err(pg_err(OP))?;
    Ok(())
}

/// Writes `plan`. The tables are written by independent chains of
/// statements that run interleaved: tokio-postgres pipelines whatever is
/// in flight, so a persist costs a few round trips instead of one per
/// statement. The chains touch different tables, so their order does not
/// matter; dataset usage, which depends on the partitions' old sizes, goes
/// last.
async fn write_plan(tx: &Transaction<'_>, plan: &Plan) -> Result<(), StoreError> {
    let cursors = async {
        try_join_all(
            plan.cursors
                .iter()
                .map(|(tenant, workflow, start)| async move {
                    tx.execute_cached(
                        "INSERT INTO cursors (tenant, workflow, start_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, workflow) DO UPDATE SET start_ms = EXCLUDED.start_ms",
                        &[tenant, workflow, start],
                    )
                    .await
                }),
        )
        .await
        .map(drop)
        .map_err(pg_err(OP))
    };
    let backfills = async {
        try_join_all(
            plan.backfills
                .iter()
                .map(|(tenant, id, active, record)| async move {
                    tx.execute_cached(
                "INSERT INTO backfills (tenant, id, active, record) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, id) DO UPDATE \
                 SET active = EXCLUDED.active, record = EXCLUDED.record",
                &[tenant, id, active, record],
            )
            .await
                }),
        )
        .await
        .map(drop)
        .map_err(pg_err(OP))
    };
    let idempotency = async {
        // The key is the primary key: one run per key, whatever writes it.
        try_join_all(
            plan.idempotency
                .iter()
                .map(|(tenant, workflow, key, run)| async move {
                    tx.execute_cached(
                "INSERT INTO idempotency (tenant, workflow, key, run_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, workflow, key) DO UPDATE SET run_id = EXCLUDED.run_id",
                &[tenant, workflow, key, run],
            )
            .await
                }),
        )
        .await
        .map(drop)
        .map_err(pg_err(OP))
    };
    let (runs, cursors, attempts, backfills, windows, idempotency, outputs, usage) = tokio::join!(
        write_runs(tx, &plan.runs),
        cursors,
        write_attempts(tx, &plan.attempts),
        backfills,
        super::backfills::write_windows(tx, OP, &plan.backfill_windows),
        idempotency,
        super::outputs::write_outputs(tx, OP, &plan.object_outputs),
        write_partitions(tx, OP, &plan.partitions),
    );
    let (partitions, usage) = match usage {
        Ok(usage) => (Ok(()), usage),
        Err(e) => (Err(e), BTreeMap::new()),
    };
    first_cause([
        runs,
        cursors,
        attempts,
        backfills,
        windows,
        idempotency,
        outputs,
        partitions,
    ])?;
    try_join_all(usage.iter().map(|(tenant, delta)| async move {
        tx.execute_cached(
            "INSERT INTO usage (tenant, dataset_bytes) VALUES ($1, GREATEST($2::int8, 0)) \
             ON CONFLICT (tenant) DO UPDATE \
             SET dataset_bytes = GREATEST(usage.dataset_bytes + $2::int8, 0)",
            &[tenant, delta],
        )
        .await
    }))
    .await
    .map_err(pg_err(OP))?;
    Ok(())
}

/// The error that failed the transaction, of the chains' results: once one
/// statement fails, every later one fails only because the transaction is
/// aborted, and one of those may have finished first in another chain.
fn first_cause(results: [Result<(), StoreError>; 8]) -> Result<(), StoreError> {
    let mut first = None;
    for r in results {
        let Err(e) = r else { continue };
        if !e.is_aborted_transaction() {
            return Err(e);
        }
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

impl PgStore {
    pub(super) fn apply_changes(&self, changes: &Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let plan = plan(changes);
        self.run(OP, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(OP))?;
            let tx = client.transaction().await.map_err(pg_err(OP))?;
            write_plan(&tx, &plan).await?;
            // Dropping an uncommitted transaction rolls it back: a failed
            // write leaves nothing, and the engine retries all of it.
            tx.commit().await.map_err(pg_err(OP))
        })
    }
}
