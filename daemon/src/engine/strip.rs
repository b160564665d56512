//! A backfill's state strip: its windows of one workflow counted by state
//! in near-equal time buckets, plus the windows not yet started. This is
//! what a console draws for a backfill of any size; the store aggregates,
//! so no window list ever leaves it.

use serde::Serialize;

use super::{Engine, EngineError};
use crate::backfill::{request_error, Selection};
use crate::store::StateCounts;

/// Most buckets one request may ask for (a wide screen's pixels).
pub const MAX_BUCKETS: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct Strip {
    pub workflow: String,
    /// The time range `[from, to)` of window starts, split evenly; when
    /// buckets are wider than the store's tiles, inner edges move to the
    /// nearest tile boundary (each bucket says where it really starts and
    /// ends).
    pub from: i64,
    pub to: i64,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    pub start: i64,
    pub end: i64,
    #[serde(flatten)]
    pub counts: StateCounts,
    /// Windows of the backfill in this bucket that have not started yet:
    /// exact for date lists and downstream stages, estimated from the
    /// window length for a range.
    pub pending: u64,
}

/// Which windows a backfill covers for one workflow, as far as the strip
/// needs to know.
enum Expected {
    /// Exact window starts, ascending.
    List(Vec<i64>),
    /// Windows of length `len` from `start`, until `end`.
    Every { start: i64, end: i64, len: i64 },
}

impl Expected {
    fn range(&self) -> Option<(i64, i64)> {
        match self {
            Expected::List(w) => Some((*w.first()?, w.last()?.saturating_add(1))),
            Expected::Every { start, end, .. } => Some((*start, *end)),
        }
    }

    /// How many of the windows start in `[from, to)`.
    fn count(&self, from: i64, to: i64) -> u64 {
        match self {
            Expected::List(w) => {
                (w.partition_point(|&t| t < to) - w.partition_point(|&t| t < from)) as u64
            }
            Expected::Every { start, end, len } => {
                let (lo, hi) = (from.max(*start), to.min(*end));
                if lo >= hi {
                    return 0;
                }
                // Window k starts at start + k*len: count k in [lo, hi).
                let first = (lo - start + len - 1) / len;
                let past = (hi - start + len - 1) / len;
                (past - first).max(0) as u64
            }
        }
    }
}

impl Engine {
    /// The state strip of backfill `id` for `workflow` (default: the
    /// workflow it was started on; a downstream one once its stage exists)
    /// over `[from, to)` (default: the backfill's whole range).
    pub fn backfill_strip(
        &self,
        tenant: &str,
        id: u64,
        workflow: Option<&str>,
        range: (Option<i64>, Option<i64>),
        buckets: usize,
    ) -> Result<Strip, EngineError> {
        let record = self
            .backfill(tenant, id)?
            .ok_or(EngineError::BackfillNotFound(id))?;
        let workflow = workflow.unwrap_or(&record.request.workflow).to_owned();
        let expected = if workflow == record.request.workflow {
            // The version the backfill runs, not today's head: its schedule
            // made the windows.
            let def = self.inner.load_version(tenant, &workflow, record.version)?;
            match record.request.validate(&def)?.selection {
                Selection::Windows(w) => Expected::List(w),
                Selection::Range { start, end } => Expected::Every {
                    start,
                    end,
                    len: def
                        .schedule
                        .windows(start, end)
                        .next()
                        .map_or(1, |w| w.duration_ms().max(1)),
                },
            }
        } else {
            let stage = record
                .stages
                .iter()
                .find(|s| s.workflow == workflow)
                .ok_or_else(|| {
                    request_error(
                        "workflow",
                        format!(
                            "{workflow:?} is not (yet) a workflow of backfill {id}; its downstream stages appear as the stages before them finish"
                        ),
                    )
                })?;
            Expected::List(stage.windows.clone())
        };
        let (default_from, default_to) = expected.range().unwrap_or((0, 1));
        let (from, to) = (
            range.0.unwrap_or(default_from),
            range.1.unwrap_or(default_to),
        );
        if from >= to {
            return Err(request_error("to", "must be after from").into());
        }
        let tile = self
            .inner
            .store
            .backfill_tile_width(tenant, id, &workflow)?;
        let edges = edges(from, to, buckets.clamp(1, MAX_BUCKETS), tile);
        let counts = self
            .inner
            .store
            .backfill_window_counts(tenant, id, &workflow, &edges)?;
        let buckets = counts
            .into_iter()
            .enumerate()
            .map(|(i, counts)| {
                let (start, end) = (edges[i], edges[i + 1]);
                Bucket {
                    start,
                    end,
                    counts,
                    pending: expected.count(start, end).saturating_sub(counts.total()),
                }
            })
            .collect();
        Ok(Strip {
            workflow,
            from,
            to,
            buckets,
        })
    }
}

/// `n` near-equal buckets of `[from, to)` as `n + 1` ascending edges (fewer
/// when the range has fewer instants than buckets). When every bucket is at
/// least a tile wide, the inner edges are rounded to the nearest multiple
/// of `tile`, so the store sums whole tiles and reads windows only for the
/// partial tiles at `from` and `to`. Rounding moves an edge by at most half
/// a tile, so the edges stay strictly inside `(from, to)` and ascending,
/// and there are still exactly `n` buckets.
fn edges(from: i64, to: i64, n: usize, tile: Option<i64>) -> Vec<i64> {
    let span = to as i128 - from as i128;
    let n = n.max(1) as i128;
    let snap = tile.filter(|&w| w > 0 && span >= n * w as i128);
    let mut edges: Vec<i64> = (0..=n)
        .map(|i| {
            let e = from as i128 + span * i / n;
            match snap {
                Some(w) if i > 0 && i < n => {
                    let w = w as i128;
                    (e + w / 2).div_euclid(w) * w
                }
                _ => e,
            }
        })
        .map(|e| e as i64)
        .collect();
    // Narrow ranges: fewer windows than buckets make empty buckets.
    edges.dedup();
    edges
}

#[cfg(test)]
mod tests {
    use super::{edges, Expected};

    #[test]
    fn edges_snap_to_tiles_only_when_buckets_are_wider() {
        // Unaligned range, 4 buckets of 2.5 tiles of 100.
        let e = edges(1_030, 2_030, 4, Some(100));
        assert_eq!(e, vec![1_030, 1_300, 1_500, 1_800, 2_030]);
        // Exactly one tile per bucket still snaps.
        assert_eq!(
            edges(-250, 150, 4, Some(100)),
            vec![-250, -100, 0, 100, 150]
        );
        // Narrower buckets (and no tiles) keep the even split.
        assert_eq!(edges(0, 399, 4, Some(100)), vec![0, 99, 199, 299, 399]);
        assert_eq!(edges(0, 400, 4, None), vec![0, 100, 200, 300, 400]);
        // Fewer instants than buckets: no empty bucket.
        assert_eq!(edges(5, 8, 10, Some(1)), vec![5, 6, 7, 8]);
        assert_eq!(edges(5, 8, 10, None), vec![5, 6, 7, 8]);
        // Any range and count: n ascending buckets from `from` to `to`.
        for (from, to, n, w) in [
            (1_262_304_000_123, 1_322_304_000_000, 200, 4_194_304),
            (-7, 1_000_003, 33, 1 << 14),
            (0, 1 << 20, 64, 1 << 14),
        ] {
            let e = edges(from, to, n, Some(w));
            assert_eq!((e.len(), e[0], e[n]), (n + 1, from, to));
            assert!(e.windows(2).all(|p| p[0] < p[1]), "{e:?}");
            assert!(e[1..n].iter().all(|x| x % w == 0), "{e:?}");
        }
    }

    #[test]
    fn expected_windows_count_exactly_per_bucket() {
        let every = Expected::Every {
            start: 100,
            end: 200,
            len: 10,
        };
        assert_eq!(every.count(0, 1000), 10);
        assert_eq!(every.count(100, 110), 1);
        assert_eq!(every.count(101, 110), 0);
        assert_eq!(every.count(105, 125), 2);
        assert_eq!(every.count(190, 500), 1);
        let list = Expected::List(vec![1, 5, 9]);
        assert_eq!((list.count(0, 5), list.count(5, 10)), (1, 2));
        assert_eq!(list.range(), Some((1, 10)));
    }
}
