//! Cascade scope per launch: which downstream workflows a backfill's
//! cascade may add, beyond its mode (`direct`, `transitive`). An `include`
//! list keeps only the named workflows, an `exclude` list drops the named
//! ones; a workflow left out also stops the cascade through it, so the
//! plan shows exactly what runs.

use std::collections::{BTreeSet, HashSet};

use super::request::{err, RequestError};
use super::Downstream;
use crate::workflow::WorkflowDef;

pub const FIELD_INCLUDE: &str = "downstream_include";
pub const FIELD_EXCLUDE: &str = "downstream_exclude";

/// Which downstream workflows a cascade may add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CascadeScope {
    /// Only these, when given.
    include: Option<BTreeSet<String>>,
    exclude: BTreeSet<String>,
}

impl CascadeScope {
    /// Every downstream workflow the mode reaches.
    pub fn all() -> Self {
        Self::default()
    }

    /// The lists as sent, checked on their own (the workflows themselves
    /// are checked at creation, [`CascadeScope::check`]): lists need a
    /// cascade, a workflow may not be in both, and the selected workflow is
    /// not downstream of itself.
    pub fn parse(
        mode: Downstream,
        root: &str,
        include: &[String],
        exclude: &[String],
    ) -> Result<Self, RequestError> {
        let named = [(FIELD_INCLUDE, include), (FIELD_EXCLUDE, exclude)];
        for (field, list) in named {
            if list.is_empty() {
                continue;
            }
            if mode == Downstream::None {
                return Err(err(
                    field,
                    "needs a cascade: set downstream to direct or transitive",
                ));
            }
            if let Some(w) = list.iter().find(|w| *w == root) {
                return Err(err(
                    field,
                    format!("{w:?} is the selected workflow, not a downstream one"),
                ));
            }
        }
        let exclude: BTreeSet<String> = exclude.iter().cloned().collect();
        if let Some(w) = include.iter().find(|w| exclude.contains(*w)) {
            return Err(err(
                FIELD_EXCLUDE,
                format!("{w:?} is also in {FIELD_INCLUDE}"),
            ));
        }
        Ok(CascadeScope {
            include: (!include.is_empty()).then(|| include.iter().cloned().collect()),
            exclude,
        })
    }

    /// Whether the cascade may add `workflow`.
    pub fn allows(&self, workflow: &str) -> bool {
        !self.exclude.contains(workflow)
            && self.include.as_ref().is_none_or(|i| i.contains(workflow))
    }

    /// Refuses names that are not the tenant's workflows (`defs`), or not
    /// downstream of `root` under `mode`: a list that names nothing the
    /// cascade could reach is a mistake, not a no-op.
    pub fn check(
        &self,
        defs: &[&WorkflowDef],
        root: &str,
        mode: Downstream,
    ) -> Result<(), RequestError> {
        let reachable = downstream_of(defs, root, mode, &|_| true);
        let scoped = downstream_of(defs, root, mode, &|w| self.allows(w));
        let lists = [
            (
                FIELD_INCLUDE,
                self.include.iter().flatten().collect::<Vec<_>>(),
            ),
            (FIELD_EXCLUDE, self.exclude.iter().collect()),
        ];
        for (field, names) in lists {
            for w in names {
                if !defs.iter().any(|d| d.name == *w) {
                    return Err(err(field, format!("workflow {w:?} does not exist")));
                }
                if !reachable.contains(w.as_str()) {
                    let how = match mode {
                        Downstream::Direct => "directly ",
                        _ => "",
                    };
                    return Err(err(
                        field,
                        format!("workflow {w:?} is not {how}downstream of {root:?}"),
                    ));
                }
                if field == FIELD_INCLUDE && !scoped.contains(w.as_str()) {
                    return Err(err(
                        field,
                        format!(
                            "workflow {w:?} is downstream of {root:?} only through workflows this scope leaves out; include them too"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Workflows downstream of `root` that `allowed` admits: its direct
/// dependents, or under `transitive` everything reachable through them.
fn downstream_of<'a>(
    defs: &[&'a WorkflowDef],
    root: &str,
    mode: Downstream,
    allowed: &dyn Fn(&str) -> bool,
) -> HashSet<&'a str> {
    let mut seen: HashSet<&str> = HashSet::new();
    if mode == Downstream::None {
        return seen;
    }
    let mut frontier = vec![root.to_owned()];
    while let Some(up) = frontier.pop() {
        for d in defs {
            if d.name != root
                && !seen.contains(d.name.as_str())
                && allowed(&d.name)
                && d.upstream.iter().any(|u| u.workflow == up)
            {
                seen.insert(d.name.as_str());
                if mode == Downstream::Transitive {
                    frontier.push(d.name.clone());
                }
            }
        }
    }
    seen
}
