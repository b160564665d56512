//! Backfill records and what happened to each of their windows.

use serde::{Deserialize, Serialize};

use super::keys;
use super::sled_store::{backend, SledStore};
use super::StoreError;
use crate::backfill::{Cursor, RawBackfillRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillState {
    Running,
    Paused,
    /// Every window ended and none failed.
    Succeeded,
    /// Every window ended and some failed, or `max_failed_windows` stopped it.
    Failed,
    Cancelled,
}

impl BackfillState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BackfillState::Succeeded | BackfillState::Failed | BackfillState::Cancelled
        )
    }
}

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

pub(super) const BACKFILL: u8 = b'B';
pub(super) const BACKFILL_WINDOW: u8 = b'V';

pub(super) fn backfill_key(tenant: &str, id: u64) -> Vec<u8> {
    keys::u64_key(keys::tenant_prefix(BACKFILL, tenant), id)
}

pub(super) fn window_key(tenant: &str, w: &BackfillWindow) -> Vec<u8> {
    let mut k = keys::u64_key(keys::tenant_prefix(BACKFILL_WINDOW, tenant), w.backfill);
    keys::push_name(&mut k, &w.workflow);
    k.extend_from_slice(&keys::instant(w.window_start));
    k
}

fn dec<T: serde::de::DeserializeOwned>(op: &'static str, raw: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(&keys::decode_value(op, raw)?).map_err(|e| StoreError::Corrupt {
        op,
        detail: e.to_string(),
    })
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
    pub fn add(&mut self, state: WindowState) {
        let n = match state {
            WindowState::Running => &mut self.running,
            WindowState::Succeeded => &mut self.succeeded,
            WindowState::Failed => &mut self.failed,
            WindowState::Skipped => &mut self.skipped,
            WindowState::Cancelled => &mut self.cancelled,
        };
        *n += 1;
    }

    pub fn total(&self) -> u64 {
        self.running + self.succeeded + self.failed + self.skipped + self.cancelled
    }
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
    /// The windows of `workflow` in a backfill counted by state in the time
    /// buckets `[edges[i], edges[i + 1])` of their starts (`edges`
    /// ascending): an aggregate, so a state strip of a million windows
    /// never ships them.
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
            Some(v) => dec(OP, &v).map(Some),
        }
    }

    fn backfills(&self, tenant: &str) -> Result<Vec<BackfillRecord>, StoreError> {
        const OP: &str = "listing backfills";
        self.state
            .scan_prefix(keys::tenant_prefix(BACKFILL, tenant))
            .map(|i| dec(OP, &i.map_err(backend(OP))?.1))
            .collect()
    }

    fn backfills_active(&self) -> Result<Vec<BackfillRecord>, StoreError> {
        const OP: &str = "listing backfills";
        let mut out = Vec::new();
        for item in self.state.scan_prefix([BACKFILL]) {
            let b: BackfillRecord = dec(OP, &item.map_err(backend(OP))?.1)?;
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
            out.push(dec(OP, &v)?);
        }
        Ok(out)
    }

    fn backfill_window_counts(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
        edges: &[i64],
    ) -> Result<Vec<StateCounts>, StoreError> {
        const OP: &str = "counting backfill windows";
        // Only the state is decoded; the reason text is skipped.
        #[derive(Deserialize)]
        struct StateOnly {
            state: WindowState,
        }
        let mut out = vec![StateCounts::default(); edges.len().saturating_sub(1)];
        let (Some(&from), Some(&to)) = (edges.first(), edges.last()) else {
            return Ok(out);
        };
        if from >= to {
            return Ok(out);
        }
        let mut prefix = keys::u64_key(keys::tenant_prefix(BACKFILL_WINDOW, tenant), id);
        keys::push_name(&mut prefix, workflow);
        let key = |t: i64| keys::instant_key(prefix.clone(), t);
        for item in self.state.range(key(from)..key(to)) {
            let (k, v) = item.map_err(backend(OP))?;
            let start = keys::decode_instant(&k[prefix.len()..]).ok_or(StoreError::Corrupt {
                op: OP,
                detail: "short backfill window key".into(),
            })?;
            let w: StateOnly = dec(OP, &v)?;
            // The last edge at or before `start` opens its bucket.
            let i = edges.partition_point(|&e| e <= start).saturating_sub(1);
            if let Some(c) = out.get_mut(i) {
                c.add(w.state);
            }
        }
        Ok(out)
    }
}
