//! Backfill records and what happened to each of their windows, with
//! per-tile counts of window states so a state strip of a million windows
//! reads thousands of small records instead of every window.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::keys;
use super::sled_store::{backend, SledStore};
use super::StoreError;
use crate::backfill::{Cursor, RawBackfillRequest};

pub use crate::backfill::BackfillState;

/// A backfill as stored: the request (re-validated on load), its cursor and
/// its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillRecord {
    pub id: u64,
    pub tenant: String,
    pub request: RawBackfillRequest,
    /// The workflow version its runs use.
    pub version: u32,
    pub state: BackfillState,
    pub cursor: Cursor,
    /// Windows materialized so far, by [`WindowState`].
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub ended_ms: Option<i64>,
    /// Why no new windows start right now, if so.
    #[serde(default)]
    pub throttled: Option<String>,
    /// 0 while running the selected workflow's windows; `n` while running
    /// `stages[n - 1]` of the downstream cascade. `cursor` is the current
    /// stage's.
    #[serde(default)]
    pub stage: usize,
    /// Downstream stages, added as the stages before them finish.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Windows of the selected workflow: exact for a date list, estimated
    /// from the first window's length for a range (O(1), whatever its size).
    #[serde(default)]
    pub estimated_total: Option<u64>,
    /// What the plan was estimated to cost when it was created (absent in
    /// records written before estimates existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<crate::backfill::estimate::Estimate>,
    /// What it has spent so far, to compare with the estimate and its
    /// budget.
    #[serde(default)]
    pub actual: crate::backfill::Actual,
    /// Why it is paused: on request, or the budget it would pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// A resume after a budget pause lifted the budget.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub budget_lifted: bool,
    /// Who created it; its runs say so too. `unrecorded` in records
    /// written before provenance.
    #[serde(default)]
    pub requested_by: crate::run::Requester,
    /// Set when it repairs gaps the detector found: its reason per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<crate::gap::RepairOrigin>,
}

/// One workflow's windows in a backfill's downstream cascade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub workflow: String,
    pub version: u32,
    /// Window starts, ascending.
    pub windows: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl WindowState {
    pub fn parse(s: &str) -> Option<WindowState> {
        [
            WindowState::Running,
            WindowState::Succeeded,
            WindowState::Failed,
            WindowState::Skipped,
            WindowState::Cancelled,
        ]
        .into_iter()
        .find(|w| {
            serde_json::to_value(w)
                .ok()
                .and_then(|v| v.as_str().map(|x| x == s))
                .unwrap_or(false)
        })
    }
}

/// One window of a backfill: what happened to it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillWindow {
    pub backfill: u64,
    pub workflow: String,
    pub window_start: i64,
    pub window_end: i64,
    pub state: WindowState,
    pub run_id: Option<u64>,
    /// Why it ran or was skipped, or the error it failed with.
    pub reason: String,
}

use super::keys::{BACKFILL, BACKFILL_TILE, BACKFILL_TILE_WIDTH, BACKFILL_WINDOW};

/// A tile holds at least this many windows of the first window's length:
/// few enough that a bucket narrower than a tile scans a bounded number of
/// windows, many enough that the whole range of a million windows is a
/// read of under 16,000 tiles.
const WINDOWS_PER_TILE: u64 = 64;
/// Widest tile: keeps tile arithmetic far from `i64` overflow.
const MAX_TILE_WIDTH: u64 = 1 << 60;

pub(super) fn backfill_key(tenant: &str, id: u64) -> Vec<u8> {
    keys::u64_key(keys::tenant_prefix(BACKFILL, tenant), id)
}

fn window_key(tenant: &str, w: &BackfillWindow) -> Vec<u8> {
    keys::instant_key(
        series_key(BACKFILL_WINDOW, tenant, w.backfill, &w.workflow),
        w.window_start,
    )
}

/// `kind tenant 0 id workflow 0`: one (backfill, workflow) series.
fn series_key(kind: u8, tenant: &str, id: u64, workflow: &str) -> Vec<u8> {
    let mut k = keys::u64_key(keys::tenant_prefix(kind, tenant), id);
    keys::push_name(&mut k, workflow);
    k
}

/// The smallest power of two at least [`WINDOWS_PER_TILE`] windows of
/// `window_len` ms: at most twice the minimum, and `i64::MIN` is a multiple
/// of it, so tile boundaries below any instant never overflow.
pub(super) fn tile_width(window_len: i64) -> i64 {
    let min = (window_len.max(1) as u64).saturating_mul(WINDOWS_PER_TILE);
    min.checked_next_power_of_two()
        .unwrap_or(MAX_TILE_WIDTH)
        .min(MAX_TILE_WIDTH) as i64
}

/// The last multiple of `width` at or before `t`.
pub(super) fn tile_floor(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

/// The first multiple of `width` at or after `t` (saturating at the top).
fn tile_ceil(t: i64, width: i64) -> i64 {
    let f = tile_floor(t, width);
    if f == t {
        t
    } else {
        f.saturating_add(width)
    }
}

/// How many windows are in each state (one time bucket of a backfill's
/// state strip).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
}

impl StateCounts {
    fn slot(&mut self, state: WindowState) -> &mut u64 {
        match state {
            WindowState::Running => &mut self.running,
            WindowState::Succeeded => &mut self.succeeded,
            WindowState::Failed => &mut self.failed,
            WindowState::Skipped => &mut self.skipped,
            WindowState::Cancelled => &mut self.cancelled,
        }
    }

    pub fn add(&mut self, state: WindowState) {
        *self.slot(state) += 1;
    }

    /// Takes back one window that left `state`.
    pub(super) fn remove(&mut self, state: WindowState) {
        // Never below zero: a tile only loses windows it counted.
        let n = self.slot(state);
        *n = n.saturating_sub(1);
    }

    pub(super) fn merge(&mut self, other: &StateCounts) {
        self.running += other.running;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.cancelled += other.cancelled;
    }

    pub fn total(&self) -> u64 {
        self.running + self.succeeded + self.failed + self.skipped + self.cancelled
    }

    /// Fixed-width binary: tiles are read by the thousand per strip.
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        for n in [
            self.running,
            self.succeeded,
            self.failed,
            self.skipped,
            self.cancelled,
        ] {
            v.extend_from_slice(&n.to_be_bytes());
        }
        keys::encode_value(&v)
    }

    fn decode(op: &'static str, raw: &[u8]) -> Result<StateCounts, StoreError> {
        let bytes = keys::decode_value(op, raw)?;
        if bytes.len() != 40 {
            return Err(StoreError::Corrupt {
                op,
                detail: format!("tile counts of {} bytes, not 40", bytes.len()),
            });
        }
        let n = |i: usize| u64::from_be_bytes(bytes[i * 8..][..8].try_into().unwrap_or_default());
        Ok(StateCounts {
            running: n(0),
            succeeded: n(1),
            failed: n(2),
            skipped: n(3),
            cancelled: n(4),
        })
    }
}

/// A stored window with only its state decoded (the reason text can be
/// long).
#[derive(Deserialize)]
struct StateOnly {
    state: WindowState,
}

/// Reading backfills; they are written through `StateStore::apply`.
pub trait BackfillStore: Send + Sync {
    fn backfill_get(&self, tenant: &str, id: u64) -> Result<Option<BackfillRecord>, StoreError>;
    fn backfills(&self, tenant: &str) -> Result<Vec<BackfillRecord>, StoreError>;
    /// Every backfill that has not ended, of every tenant.
    fn backfills_active(&self) -> Result<Vec<BackfillRecord>, StoreError>;
    /// Windows of a backfill in (workflow, time) order, after `after`.
    fn backfill_windows(
        &self,
        tenant: &str,
        id: u64,
        after: Option<(&str, i64)>,
        limit: usize,
    ) -> Result<Vec<BackfillWindow>, StoreError>;
    /// The width of the tiles `workflow`'s windows in a backfill are
    /// counted in, if they are. Buckets whose edges fall on multiples of it
    /// are counted from tiles alone; parts of buckets narrower than a tile
    /// are counted window by window.
    fn backfill_tile_width(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
    ) -> Result<Option<i64>, StoreError>;
    /// The windows of `workflow` in a backfill counted by state in the time
    /// buckets `[edges[i], edges[i + 1])` of their starts (`edges`
    /// ascending): an aggregate, so a state strip of a million windows
    /// never ships them. Exact for any edges.
    fn backfill_window_counts(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
        edges: &[i64],
    ) -> Result<Vec<StateCounts>, StoreError>;
}

impl BackfillStore for SledStore {
    fn backfill_get(&self, tenant: &str, id: u64) -> Result<Option<BackfillRecord>, StoreError> {
        const OP: &str = "reading a backfill";
        match self
            .state
            .get(backfill_key(tenant, id))
            .map_err(backend(OP))?
        {
            None => Ok(None),
            Some(v) => keys::decode_json(OP, &v).map(Some),
        }
    }

    fn backfills(&self, tenant: &str) -> Result<Vec<BackfillRecord>, StoreError> {
        const OP: &str = "listing backfills";
        self.state
            .scan_prefix(keys::tenant_prefix(BACKFILL, tenant))
            .map(|i| keys::decode_json(OP, &i.map_err(backend(OP))?.1))
            .collect()
    }

    fn backfills_active(&self) -> Result<Vec<BackfillRecord>, StoreError> {
        const OP: &str = "listing backfills";
        let mut out = Vec::new();
        for item in self.state.scan_prefix([BACKFILL]) {
            let b: BackfillRecord = keys::decode_json(OP, &item.map_err(backend(OP))?.1)?;
            if !b.state.is_terminal() {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn backfill_windows(
        &self,
        tenant: &str,
        id: u64,
        after: Option<(&str, i64)>,
        limit: usize,
    ) -> Result<Vec<BackfillWindow>, StoreError> {
        const OP: &str = "listing backfill windows";
        let prefix = keys::u64_key(keys::tenant_prefix(BACKFILL_WINDOW, tenant), id);
        let start = match after {
            Some((wf, t)) => {
                let mut k = prefix.clone();
                keys::push_name(&mut k, wf);
                k.extend_from_slice(&keys::instant(t));
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.state.range(start..) {
            let (k, v) = item.map_err(backend(OP))?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push(keys::decode_json(OP, &v)?);
        }
        Ok(out)
    }

    fn backfill_tile_width(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.tile_width_get(
            "reading a backfill's tile width",
            &series_key(BACKFILL_TILE_WIDTH, tenant, id, workflow),
        )
    }

    fn backfill_window_counts(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
        edges: &[i64],
    ) -> Result<Vec<StateCounts>, StoreError> {
        const OP: &str = "counting backfill windows";
        let mut out = vec![StateCounts::default(); edges.len().saturating_sub(1)];
        let width = self.backfill_tile_width(tenant, id, workflow)?;
        let CountPlan { tiled, scans } = CountPlan::new(edges, width);
        let bucket = |t: i64| bucket_of(edges, t);
        if let Some((lo, hi)) = CountPlan::tile_span(&tiled) {
            let prefix = series_key(BACKFILL_TILE, tenant, id, workflow);
            let key = |t: i64| keys::instant_key(prefix.clone(), t);
            for item in self.state.range(key(lo)..key(hi)) {
                let (k, v) = item.map_err(backend(OP))?;
                let start = instant_after(OP, &k, prefix.len())?;
                let Some(i) = bucket(start) else { continue };
                // A tile only partly in its bucket was scanned instead.
                if tiled.get(i).is_some_and(|t| t.0 <= start && start < t.1) {
                    out[i].merge(&StateCounts::decode(OP, &v)?);
                }
            }
        }
        let prefix = series_key(BACKFILL_WINDOW, tenant, id, workflow);
        let key = |t: i64| keys::instant_key(prefix.clone(), t);
        for (lo, hi) in scans {
            for item in self.state.range(key(lo)..key(hi)) {
                let (k, v) = item.map_err(backend(OP))?;
                let start = instant_after(OP, &k, prefix.len())?;
                let w: StateOnly = keys::decode_json(OP, &v)?;
                if let Some(c) = bucket(start).and_then(|i| out.get_mut(i)) {
                    c.add(w.state);
                }
            }
        }
        Ok(out)
    }
}

/// How a state strip is counted: per bucket, the whole tiles in it (maybe
/// none) come from tile records, and the rest of it is scanned window by
/// window. Both backends count this way.
pub(super) struct CountPlan {
    /// Per bucket, the span `[a, b)` counted from tiles (empty if `a == b`).
    pub tiled: Vec<(i64, i64)>,
    /// Spans of window starts to scan, adjacent ones merged.
    pub scans: Vec<(i64, i64)>,
}

impl CountPlan {
    pub(super) fn new(edges: &[i64], width: Option<i64>) -> CountPlan {
        let mut tiled: Vec<(i64, i64)> = Vec::with_capacity(edges.len());
        let mut scans: Vec<(i64, i64)> = Vec::new();
        let mut scan = |lo: i64, hi: i64| match scans.last_mut() {
            _ if lo >= hi => {}
            Some(last) if last.1 == lo => last.1 = hi,
            _ => scans.push((lo, hi)),
        };
        for pair in edges.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            match width.map(|w| (tile_ceil(a, w), tile_floor(b, w))) {
                Some((ta, tb)) if ta < tb => {
                    scan(a, ta);
                    scan(tb, b);
                    tiled.push((ta, tb));
                }
                _ => {
                    scan(a, b);
                    tiled.push((b, b));
                }
            }
        }
        CountPlan { tiled, scans }
    }

    /// The range of tile starts to read, if any bucket has whole tiles.
    pub(super) fn tile_span(tiled: &[(i64, i64)]) -> Option<(i64, i64)> {
        let lo = tiled.iter().filter(|(a, b)| a < b).map(|t| t.0).min()?;
        let hi = tiled.iter().filter(|(a, b)| a < b).map(|t| t.1).max()?;
        Some((lo, hi))
    }
}

/// The bucket `[edges[i], edges[i + 1])` that holds `t`, if one does.
pub(super) fn bucket_of(edges: &[i64], t: i64) -> Option<usize> {
    edges.partition_point(|&e| e <= t).checked_sub(1)
}

/// The instant that follows the `prefix_len` bytes of a series key.
fn instant_after(op: &'static str, key: &[u8], prefix_len: usize) -> Result<i64, StoreError> {
    key.get(prefix_len..)
        .and_then(keys::decode_instant)
        .ok_or(StoreError::Corrupt {
            op,
            detail: "backfill series key without an instant".into(),
        })
}

impl SledStore {
    fn tile_width_get(&self, op: &'static str, key: &[u8]) -> Result<Option<i64>, StoreError> {
        match self.state.get(key).map_err(backend(op))? {
            None => Ok(None),
            Some(v) => {
                let bytes = keys::decode_value(op, &v)?;
                // Tile arithmetic relies on a positive power of two.
                match <[u8; 8]>::try_from(&bytes[..]).map(i64::from_be_bytes) {
                    Ok(w) if w > 0 && w.count_ones() == 1 => Ok(Some(w)),
                    _ => Err(StoreError::Corrupt {
                        op,
                        detail: format!("tile width {bytes:02x?} is not a power of two"),
                    }),
                }
            }
        }
    }

    /// Stages `windows` (in the order they happened) into `batch`, with the
    /// tile counts of their series moved from each window's previous state
    /// to its new one. Only `apply` writes windows and tiles, one batch at
    /// a time, so reading the current counts and writing new ones is safe;
    /// the maps carry what earlier windows of the same batch changed, as a
    /// window or a tile may appear more than once.
    pub(super) fn stage_backfill_windows(
        &self,
        batch: &mut sled::Batch,
        windows: &[(String, BackfillWindow)],
    ) -> Result<(), StoreError> {
        const OP: &str = "recording backfill windows";
        let mut states: HashMap<Vec<u8>, WindowState> = HashMap::new();
        let mut widths: HashMap<Vec<u8>, Option<i64>> = HashMap::new();
        let mut tiles: HashMap<Vec<u8>, StateCounts> = HashMap::new();
        for (tenant, w) in windows {
            let wkey = window_key(tenant, w);
            let before = match states.insert(wkey.clone(), w.state) {
                Some(s) => Some(s),
                None => match self.state.get(&wkey).map_err(backend(OP))? {
                    Some(v) => Some(keys::decode_json::<StateOnly>(OP, &v)?.state),
                    None => None,
                },
            };
            batch.insert(wkey, keys::encode_json(w));
            let width_key = series_key(BACKFILL_TILE_WIDTH, tenant, w.backfill, &w.workflow);
            let width = match widths.entry(width_key) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    let width = match self.tile_width_get(OP, e.key())? {
                        Some(width) => Some(width),
                        // A series with windows but no width predates tiles:
                        // counting only its new windows would be wrong.
                        None if self.series_has_windows(OP, tenant, w)? => None,
                        None => {
                            let width = tile_width(w.window_end.saturating_sub(w.window_start));
                            batch.insert(e.key().clone(), keys::encode_value(&width.to_be_bytes()));
                            Some(width)
                        }
                    };
                    *e.insert(width)
                }
            };
            let Some(width) = width else { continue };
            let tile = keys::instant_key(
                series_key(BACKFILL_TILE, tenant, w.backfill, &w.workflow),
                tile_floor(w.window_start, width),
            );
            let counts = match tiles.entry(tile) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let current = match self.state.get(e.key()).map_err(backend(OP))? {
                        Some(v) => StateCounts::decode(OP, &v)?,
                        None => StateCounts::default(),
                    };
                    e.insert(current)
                }
            };
            if let Some(s) = before {
                counts.remove(s);
            }
            counts.add(w.state);
        }
        for (k, counts) in tiles {
            batch.insert(k, counts.encode());
        }
        Ok(())
    }

    /// Whether `w`'s series already has stored windows (this batch's not
    /// included).
    fn series_has_windows(
        &self,
        op: &'static str,
        tenant: &str,
        w: &BackfillWindow,
    ) -> Result<bool, StoreError> {
        let prefix = series_key(BACKFILL_WINDOW, tenant, w.backfill, &w.workflow);
        match self.state.scan_prefix(prefix).next() {
            None => Ok(false),
            Some(item) => item.map(|_| true).map_err(backend(op)),
        }
    }
}
