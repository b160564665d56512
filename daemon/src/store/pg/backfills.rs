//! Backfills, their windows and the per-tile state counts of each
//! (backfill, workflow) series, kept as the sled store keeps them: a
//! window and its tile's counts change in the same transaction.

use std::collections::HashMap;

use deadpool_postgres::Transaction;

use super::statements::Cached;
use futures_util::future::try_join_all;

use super::super::backfills::{bucket_of, tile_floor, tile_width, CountPlan};
use super::super::{
    keys, BackfillRecord, BackfillStore, BackfillWindow, StateCounts, StoreError, WindowState,
};
use super::{column, pg_err, pool_err, record, PgStore};

fn state_name(s: WindowState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_state(op: &'static str, s: &str) -> Result<WindowState, StoreError> {
    WindowState::parse(s).ok_or_else(|| StoreError::Corrupt {
        op,
        detail: format!("unknown backfill window state {s:?}"),
    })
}

/// One series: `(tenant, backfill, workflow)`.
type Series = (String, i64, String);

/// Writes `windows` (in the order they happened) and moves their tiles'
/// counts from each window's previous state to its new one. The previous
/// states and counts are read with their rows locked; the maps carry what
/// earlier windows of the same batch changed. Reads of one kind, and then
/// the writes, are sent together (tokio-postgres pipelines them in the
/// order given): a round trip per kind, not one per window.
pub(super) async fn write_windows(
    tx: &Transaction<'_>,
    op: &'static str,
    windows: &[(String, BackfillWindow)],
) -> Result<(), StoreError> {
    if windows.is_empty() {
        return Ok(());
    }
    let series_of = |tenant: &str, w: &BackfillWindow| -> Series {
        (tenant.to_owned(), w.backfill as i64, w.workflow.clone())
    };
    let mut firsts: Vec<(Series, i64)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (tenant, w) in windows {
        let key = (series_of(tenant, w), w.window_start);
        if seen.insert(key.clone()) {
            firsts.push(key);
        }
    }
    let rows = try_join_all(firsts.iter().map(|((t, b, wf), start)| async move {
        tx.query_opt_cached(
            "SELECT state FROM backfill_windows WHERE tenant = $1 AND backfill = $2 \
             AND workflow = $3 AND window_start = $4 FOR UPDATE",
            &[t, b, wf, start],
        )
        .await
    }))
    .await
    .map_err(pg_err(op))?;
    let mut stored: HashMap<(Series, i64), WindowState> = HashMap::new();
    for (key, row) in firsts.into_iter().zip(rows) {
        if let Some(r) = row {
            stored.insert(key, parse_state(op, column(op, &r, 0)?)?);
        }
    }
    let mut states: HashMap<(Series, i64), WindowState> = HashMap::new();
    let mut widths: HashMap<Series, Option<i64>> = HashMap::new();
    // `(tile, state before, state after)` of each window, in order.
    let mut moves: Vec<((Series, i64), Option<WindowState>, WindowState)> = Vec::new();
    for (tenant, w) in windows {
        let series = series_of(tenant, w);
        let key = (series.clone(), w.window_start);
        let before = match states.insert(key.clone(), w.state) {
            Some(s) => Some(s),
            None => stored.get(&key).copied(),
        };
        let width = match widths.get(&series) {
            Some(width) => *width,
            None => {
                let width = series_width(tx, op, &series, w, before.is_some()).await?;
                widths.insert(series.clone(), width);
                width
            }
        };
        let Some(width) = width else { continue };
        moves.push(((series, tile_floor(w.window_start, width)), before, w.state));
    }
    let mut tile_keys: Vec<(Series, i64)> = Vec::new();
    for (tile, _, _) in &moves {
        if !tile_keys.contains(tile) {
            tile_keys.push(tile.clone());
        }
    }
    let rows = try_join_all(tile_keys.iter().map(|((t, b, wf), start)| async move {
        tx.query_opt_cached(
            "SELECT running, succeeded, failed, skipped, cancelled FROM backfill_tiles \
             WHERE tenant = $1 AND backfill = $2 AND workflow = $3 AND tile_start = $4 \
             FOR UPDATE",
            &[t, b, wf, start],
        )
        .await
    }))
    .await
    .map_err(pg_err(op))?;
    let mut tiles: HashMap<(Series, i64), StateCounts> = HashMap::new();
    for (key, row) in tile_keys.iter().zip(rows) {
        let counts = match row {
            Some(r) => counts_of(op, &r, 0)?,
            None => StateCounts::default(),
        };
        tiles.insert(key.clone(), counts);
    }
    for (tile, before, after) in moves {
        if let Some(counts) = tiles.get_mut(&tile) {
            if let Some(s) = before {
                counts.remove(s);
            }
            counts.add(after);
        }
    }
    let records: Vec<Vec<u8>> = windows.iter().map(|(_, w)| keys::encode_json(w)).collect();
    let series: Vec<Series> = windows.iter().map(|(t, w)| series_of(t, w)).collect();
    let window_writes = windows.iter().zip(&series).zip(&records).map(|((( _, w), (t, b, wf)), record)| async move {
        tx.execute_cached(
            "INSERT INTO backfill_windows (tenant, backfill, workflow, window_start, state, record) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant, backfill, workflow, window_start) \
             DO UPDATE SET state = EXCLUDED.state, record = EXCLUDED.record",
            &[t, b, wf, &w.window_start, &state_name(w.state), record],
        )
        .await
    });
    let counts: Vec<((Series, i64), [i64; 5])> = tile_keys
        .into_iter()
        .map(|k| {
            let c = tiles.get(&k).copied().unwrap_or_default();
            let n = |x: u64| x as i64;
            (
                k,
                [
                    n(c.running),
                    n(c.succeeded),
                    n(c.failed),
                    n(c.skipped),
                    n(c.cancelled),
                ],
            )
        })
        .collect();
    let tile_writes = counts.iter().map(|(((t, b, wf), start), c)| async move {
        tx.execute_cached(
            "INSERT INTO backfill_tiles (tenant, backfill, workflow, tile_start, running, \
             succeeded, failed, skipped, cancelled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant, backfill, workflow, tile_start) DO UPDATE SET \
             running = EXCLUDED.running, succeeded = EXCLUDED.succeeded, \
             failed = EXCLUDED.failed, skipped = EXCLUDED.skipped, cancelled = EXCLUDED.cancelled",
            &[t, b, wf, start, &c[0], &c[1], &c[2], &c[3], &c[4]],
        )
        .await
    });
    let (_, _) =
        futures_util::future::try_join(try_join_all(window_writes), try_join_all(tile_writes))
            .await
            .map_err(pg_err(op))?;
    Ok(())
}

/// The tile width of `series`, set now if it is new. A series that has
/// windows but no width predates tiles (a store converted from one that
/// did): counting only its new windows would be wrong, so it stays untiled.
async fn series_width(
    tx: &Transaction<'_>,
    op: &'static str,
    series: &Series,
    w: &BackfillWindow,
    window_existed: bool,
) -> Result<Option<i64>, StoreError> {
    let (t, b, wf) = (&series.0, &series.1, &series.2);
    let row = tx
        .query_opt_cached(
            "SELECT width FROM backfill_tile_widths \
             WHERE tenant = $1 AND backfill = $2 AND workflow = $3",
            &[t, b, wf],
        )
        .await
        .map_err(pg_err(op))?;
    if let Some(r) = row {
        return Ok(Some(column(op, &r, 0)?));
    }
    // The window just written is one of them: another one, or this one
    // stored before, means the series is older than its width.
    let others: i64 = column(
        op,
        &tx.query_one_cached(
            "SELECT count(*) FROM backfill_windows WHERE tenant = $1 AND backfill = $2 \
             AND workflow = $3 AND window_start <> $4",
            &[t, b, wf, &w.window_start],
        )
        .await
        .map_err(pg_err(op))?,
        0,
    )?;
    if others > 0 || window_existed {
        return Ok(None);
    }
    let width = tile_width(w.window_end.saturating_sub(w.window_start));
    tx.execute_cached(
        "INSERT INTO backfill_tile_widths (tenant, backfill, workflow, width) \
         VALUES ($1, $2, $3, $4)",
        &[t, b, wf, &width],
    )
    .await
    .map_err(pg_err(op))?;
    Ok(Some(width))
}

fn counts_of(
    op: &'static str,
    row: &tokio_postgres::Row,
    from: usize,
) -> Result<StateCounts, StoreError> {
    let n = |i: usize| column::<i64>(op, row, from + i).map(|x| x.max(0) as u64);
    Ok(StateCounts {
        running: n(0)?,
        succeeded: n(1)?,
        failed: n(2)?,
        skipped: n(3)?,
        cancelled: n(4)?,
    })
}

impl BackfillStore for PgStore {
    fn backfill_get(&self, tenant: &str, id: u64) -> Result<Option<BackfillRecord>, StoreError> {
        const OP: &str = "reading a backfill";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT record FROM backfills WHERE tenant = $1 AND id = $2",
                    &[&tenant, &(id as i64)],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| record(OP, &r, 0)).transpose()
        })
    }

    fn backfills(&self, tenant: &str) -> Result<Vec<BackfillRecord>, StoreError> {
        const OP: &str = "listing backfills";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT record FROM backfills WHERE tenant = $1 ORDER BY id",
                    &[&tenant],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn backfills_active(&self) -> Result<Vec<BackfillRecord>, StoreError> {
        const OP: &str = "listing backfills";
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT record FROM backfills WHERE active ORDER BY tenant, id",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn backfill_windows(
        &self,
        tenant: &str,
        id: u64,
        after: Option<(&str, i64)>,
        limit: usize,
    ) -> Result<Vec<BackfillWindow>, StoreError> {
        const OP: &str = "listing backfill windows";
        let tenant = tenant.to_owned();
        let after = after.map(|(wf, t)| (wf.to_owned(), t));
        let limit = limit.min(i64::MAX as usize) as i64;
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let id = id as i64;
            let rows = match &after {
                None => {
                    client
                        .query_cached(
                            "SELECT record FROM backfill_windows \
                             WHERE tenant = $1 AND backfill = $2 \
                             ORDER BY workflow, window_start LIMIT $3",
                            &[&tenant, &id, &limit],
                        )
                        .await
                }
                Some((wf, t)) => {
                    // Strictly after `(wf, t)`, in (workflow, time) order.
                    client
                        .query_cached(
                            "SELECT record FROM backfill_windows \
                             WHERE tenant = $1 AND backfill = $2 \
                             AND (workflow, window_start) > ($3, $4) \
                             ORDER BY workflow, window_start LIMIT $5",
                            &[&tenant, &id, wf, t, &limit],
                        )
                        .await
                }
            }
            .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn backfill_tile_width(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
    ) -> Result<Option<i64>, StoreError> {
        const OP: &str = "reading a backfill's tile width";
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT width FROM backfill_tile_widths \
                     WHERE tenant = $1 AND backfill = $2 AND workflow = $3",
                    &[&tenant, &(id as i64), &workflow],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| column(OP, &r, 0)).transpose()
        })
    }

    fn backfill_window_counts(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
        edges: &[i64],
    ) -> Result<Vec<StateCounts>, StoreError> {
        const OP: &str = "counting backfill windows";
        let width = self.backfill_tile_width(tenant, id, workflow)?;
        let (tenant, workflow, edges) = (tenant.to_owned(), workflow.to_owned(), edges.to_vec());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let mut out = vec![StateCounts::default(); edges.len().saturating_sub(1)];
            let CountPlan { tiled, scans } = CountPlan::new(&edges, width);
            let id = id as i64;
            if let Some((lo, hi)) = CountPlan::tile_span(&tiled) {
                let rows = client
                    .query_cached(
                        "SELECT tile_start, running, succeeded, failed, skipped, cancelled \
                         FROM backfill_tiles WHERE tenant = $1 AND backfill = $2 \
                         AND workflow = $3 AND tile_start >= $4 AND tile_start < $5",
                        &[&tenant, &id, &workflow, &lo, &hi],
                    )
                    .await
                    .map_err(pg_err(OP))?;
                for row in &rows {
                    let start: i64 = column(OP, row, 0)?;
                    let Some(i) = bucket_of(&edges, start) else {
                        continue;
                    };
                    // A tile only partly in its bucket is scanned instead.
                    if tiled.get(i).is_some_and(|t| t.0 <= start && start < t.1) {
                        out[i].merge(&counts_of(OP, row, 1)?);
                    }
                }
            }
            for (lo, hi) in scans {
                let rows = client
                    .query_cached(
                        "SELECT window_start, state FROM backfill_windows \
                         WHERE tenant = $1 AND backfill = $2 AND workflow = $3 \
                         AND window_start >= $4 AND window_start < $5",
                        &[&tenant, &id, &workflow, &lo, &hi],
                    )
                    .await
                    .map_err(pg_err(OP))?;
                for row in &rows {
                    let start: i64 = column(OP, row, 0)?;
                    let state = parse_state(OP, column(OP, row, 1)?)?;
                    if let Some(c) = bucket_of(&edges, start).and_then(|i| out.get_mut(i)) {
                        c.add(state);
                    }
                }
            }
            Ok(out)
        })
    }
}
