//! The downstream windows a repair implies: workflows that depend on the
//! repaired windows, directly or transitively, across schedules of any grain.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::CascadeScope;
use crate::schedule::Window;
use crate::workflow::WorkflowDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Downstream {
    /// Only the selected workflow.
    #[default]
    None,
    /// Plus the workflows that depend on it.
    Direct,
    /// Plus everything downstream of those, level by level.
    Transitive,
}

/// The windows of one downstream workflow to re-run, at one depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeStep {
    pub workflow: String,
    /// 1 for direct dependents, 2 for theirs, ...
    pub depth: usize,
    pub windows: Vec<Window>,
}

/// Most windows the cascade adds per workflow.
const MAX_CASCADE_WINDOWS: usize = 1_000_000;

/// The downstream windows of `repaired` windows of `root`, in dependency
/// order (each workflow after every workflow it depends on in this plan).
/// `defs` are the tenant's current definitions; workflows `scope` leaves
/// out are not added, and the cascade does not pass through them.
pub fn cascade(
    defs: &[&WorkflowDef],
    root: &str,
    repaired: &[Window],
    mode: Downstream,
    scope: &CascadeScope,
) -> Vec<CascadeStep> {
    if mode == Downstream::None || repaired.is_empty() {
        return Vec::new();
    }
    let max_depth = if mode == Downstream::Direct {
        1
    } else {
        usize::MAX
    };
    // Affected windows per workflow, and the depth at which each workflow is
    // reached by its longest path (so it runs after all its upstreams).
    let mut affected: BTreeMap<String, BTreeSet<Window>> = BTreeMap::new();
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    affected.insert(root.to_owned(), repaired.iter().copied().collect());
    depth.insert(root.to_owned(), 0);
    let mut frontier = vec![root.to_owned()];
    let mut level = 0;
    while !frontier.is_empty() && level < max_depth {
        level += 1;
        let mut next = Vec::new();
        for up in &frontier {
            let up_windows: Vec<Window> = affected
                .get(up)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for d in defs
                .iter()
                .filter(|d| d.name != *up && d.name != root && scope.allows(&d.name))
            {
                for dep in d.upstream.iter().filter(|u| u.workflow == *up) {
                    let hit = downstream_windows(d, dep.offset, &up_windows);
                    if hit.is_empty() {
                        continue;
                    }
                    affected.entry(d.name.clone()).or_default().extend(hit);
                    depth.insert(d.name.clone(), level);
                    if !next.contains(&d.name) {
                        next.push(d.name.clone());
                    }
                }
            }
        }
        frontier = next;
    }
    let mut steps: Vec<CascadeStep> = affected
        .into_iter()
        .filter(|(name, _)| name != root)
        .map(|(workflow, ws)| CascadeStep {
            depth: depth[&workflow],
            windows: ws.into_iter().collect(),
            workflow,
        })
        .collect();
    steps.sort_by(|a, b| a.depth.cmp(&b.depth).then(a.workflow.cmp(&b.workflow)));
    steps
}

/// Windows `d` of `def` whose upstream span (`d` shifted by `offset`)
/// overlaps any of `up` (sorted).
fn downstream_windows(def: &WorkflowDef, offset: i64, up: &[Window]) -> BTreeSet<Window> {
    let mut hit = BTreeSet::new();
    let s = &def.schedule;
    for u in up {
        // The window whose shifted span contains u.start, then onwards while
        // the shifted span still starts before u.end.
        let Some(span) = s.window_containing(u.start) else {
            continue;
        };
        // Validation bounds offsets; checked anyway so a stored definition
        // from before that bound cannot overflow here.
        let mut next = offset.checked_neg().and_then(|o| s.shift(span, o));
        while let Some(d) = next {
            let Some(shifted) = s.shift(d, offset) else {
                break;
            };
            if shifted.start >= u.end || hit.len() >= MAX_CASCADE_WINDOWS {
                break;
            }
            if shifted.overlaps(u) && d.start >= def.start {
                hit.insert(d);
            }
            next = s.shift(d, 1);
        }
    }
    hit
}
