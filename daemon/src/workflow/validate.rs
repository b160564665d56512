//! Raw definition → [`WorkflowDef`], checking everything that can be checked
//! before anything is stored.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::raw::{RawRepair, RawTask, RawWorkflow};
use super::{
    Backoff, FailureStrategy, OutputCheckPolicy, PluginRef, RetryPolicy, TaskDef, UpstreamDep,
    WorkflowDef,
};
use crate::gap::{RepairMode, RepairPolicy};
use crate::schedule::{self, Schedule, ScheduleError, MAX_SHIFT};

pub const MAX_NAME: usize = 64;
pub const MAX_TASKS: usize = 500;
pub const MAX_RETRIES: u32 = 100;
pub const DEFAULT_MAX_ACTIVE_RUNS: u32 = 16;

/// What validation needs to know about everything else the tenant has.
pub trait Catalog {
    /// Whether `plugin` resolves to an uploaded plugin.
    fn has_plugin(&self, plugin: &PluginRef) -> bool;
    /// The upstream workflows of workflow `name`, or `None` if it does not
    /// exist.
    fn upstreams(&self, name: &str) -> Option<Vec<String>>;
    /// Whether the tenant has connection `name`. Catalogs that know of no
    /// connections (tests of other rules) say no.
    fn has_connection(&self, _name: &str) -> bool {
        false
    }
}

/// Most connections one workflow may name.
pub const MAX_CONNECTIONS: usize = 32;

/// Why a definition was rejected. Nothing is stored when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("invalid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("tasks form a cycle: {0}")]
    TaskCycle(String),
    #[error("workflow dependencies form a cycle: {0}")]
    WorkflowCycle(String),
}

fn field(field: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// Names appear in keys, URLs and metric labels: 1-64 of `A-Z a-z 0-9 _ - .`,
/// starting with a letter or digit.
pub fn check_name(what: &str, name: &str) -> Result<(), DefinitionError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(field(
            what,
            format!("{name:?} must be 1 to {MAX_NAME} characters long"),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        return Err(field(
            what,
            format!(
                "{name:?} may only contain A-Z a-z 0-9 _ - . and must start with a letter or digit"
            ),
        ));
    }
    Ok(())
}

fn duration(what: String, s: &str) -> Result<Duration, DefinitionError> {
    let d = humantime::parse_duration(s).map_err(|e| {
        field(
            what.clone(),
            format!("{s:?} is not a duration like 30s or 5m ({e})"),
        )
    })?;
    if d.is_zero() {
        return Err(field(what, "must be longer than zero"));
    }
    Ok(d)
}

pub fn parse_plugin_ref(s: &str) -> Result<PluginRef, String> {
    if let Some(hex) = s.strip_prefix("sha256:") {
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(PluginRef::Digest(s.to_ascii_lowercase()));
        }
        return Err(format!(
            "{s:?}: a digest is sha256: followed by 64 hex digits"
        ));
    }
    let (name, version) = match s.split_once('@') {
        Some((n, v)) => {
            let v: u32 = v
                .parse()
                .map_err(|_| format!("{s:?}: the version after @ must be a number"))?;
            (n, Some(v))
        }
        None => (s, None),
    };
    check_name("plugin", name).map_err(|e| e.to_string())?;
    Ok(match version {
        Some(v) => PluginRef::Version(name.to_owned(), v),
        None => PluginRef::Latest(name.to_owned()),
    })
}

impl RawWorkflow {
    /// Validates this definition against the tenant's other workflows and
    /// plugins.
    pub fn validate(&self, catalog: &dyn Catalog) -> Result<WorkflowDef, DefinitionError> {
        check_name("name", &self.name)?;
        let s = &self.schedule;
        let schedule = Schedule::parse(&s.cron, &s.timezone).map_err(|e| match e {
            ScheduleError::TimeZone(_) => field("schedule.timezone", e.to_string()),
            _ => field("schedule.cron", e.to_string()),
        })?;
        let start = schedule::parse_instant_or_date(&s.start, schedule.tz())
            .map_err(|m| field("schedule.start", m))?;
        // The first window starts at the first tick at or after `start`.
        let start = if schedule.is_tick(start) {
            start
        } else {
            schedule
                .next_tick(start)
                .ok_or_else(|| field("schedule.start", "no window starts after it"))?
        };
        let end = match &s.end {
            None => None,
            Some(e) => {
                let end = schedule::parse_instant_or_date(e, schedule.tz())
                    .map_err(|m| field("schedule.end", m))?;
                if end <= start {
                    return Err(field("schedule.end", "must be after schedule.start"));
                }
                Some(end)
            }
        };
        let max_active_runs = self.max_active_runs.unwrap_or(DEFAULT_MAX_ACTIVE_RUNS);
        if !(1..=10_000).contains(&max_active_runs) {
            return Err(field("max_active_runs", "must be between 1 and 10000"));
        }
        let failure_strategy = match self.failure_strategy.as_deref() {
            None | Some("stop") => FailureStrategy::Stop,
            Some("continue") => FailureStrategy::Continue,
            Some(other) => {
                return Err(field(
                    "failure_strategy",
                    format!("{other:?} is not one of \"stop\", \"continue\""),
                ))
            }
        };
        let connections = self.connections(catalog)?;
        let output_check = self.output_check()?;
        let repair = self.repair()?;
        let tasks = self.tasks(catalog)?;
        let upstream = self.upstream(catalog)?;
        Ok(WorkflowDef {
            name: self.name.clone(),
            description: self.description.clone(),
            schedule,
            start,
            end,
            catchup: self.catchup.unwrap_or(true),
            max_active_runs,
            paused: self.paused,
            failure_strategy,
            tasks,
            upstream,
            connections,
            output_check,
            repair,
        })
    }

    /// `repair`: the mode, and how far back the detector looks (at least
    /// one hour, at most a year).
    fn repair(&self) -> Result<RepairPolicy, DefinitionError> {
        let (mode, lookback, at) = match &self.repair {
            None => return Ok(RepairPolicy::default()),
            Some(RawRepair::Mode(m)) => (m.as_str(), None, "repair"),
            Some(RawRepair::Table { mode, lookback }) => {
                (mode.as_str(), lookback.as_deref(), "repair.mode")
            }
        };
        let mode = match mode {
            "off" => RepairMode::Off,
            "propose" => RepairMode::Propose,
            "auto" => RepairMode::Auto,
            other => {
                return Err(field(
                    at,
                    format!("{other:?} is not one of \"off\", \"propose\", \"auto\""),
                ))
            }
        };
        let lookback_ms = match lookback {
            None => crate::gap::DEFAULT_LOOKBACK_MS,
            Some(l) => {
                let d = duration("repair.lookback".into(), l)?;
                if d < Duration::from_secs(3_600) || d > Duration::from_secs(366 * 86_400) {
                    return Err(field(
                        "repair.lookback",
                        format!("{l:?} must be between 1h and 366d"),
                    ));
                }
                d.as_millis() as i64
            }
        };
        Ok(RepairPolicy { mode, lookback_ms })
    }

    /// `[checks] outputs`: a check of object-storage outputs needs a
    /// connection to hold them.
    fn output_check(&self) -> Result<OutputCheckPolicy, DefinitionError> {
        let raw = self.checks.as_ref().and_then(|c| c.outputs.as_deref());
        let policy = match raw {
            None | Some("off") => OutputCheckPolicy::Off,
            Some("after_window") => OutputCheckPolicy::AfterWindow,
            Some(other) => {
                return Err(field(
                    "checks.outputs",
                    format!("{other:?} is not one of \"off\", \"after_window\""),
                ))
            }
        };
        if policy != OutputCheckPolicy::Off && self.connections.is_empty() {
            return Err(field(
                "checks.outputs",
                "checks object-storage outputs, but the workflow names no connection to write them to (connections = [...])",
            ));
        }
        Ok(policy)
    }

    /// The connections its tasks may use: each must exist for the tenant.
    fn connections(&self, catalog: &dyn Catalog) -> Result<Vec<String>, DefinitionError> {
        if self.connections.len() > MAX_CONNECTIONS {
            return Err(field(
                "connections",
                format!("at most {MAX_CONNECTIONS} connections may be named"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            let at = format!("connections[{i}]");
            check_name(&at, c)?;
            if !seen.insert(c.as_str()) {
                return Err(field(at, format!("{c:?} is named twice")));
            }
            if !catalog.has_connection(c) {
                return Err(field(
                    at,
                    format!("the tenant has no connection {c:?}; create it first (tidemark connection create)"),
                ));
            }
        }
        Ok(self.connections.clone())
    }

    fn tasks(&self, catalog: &dyn Catalog) -> Result<Vec<TaskDef>, DefinitionError> {
        if self.tasks.is_empty() {
            return Err(field("tasks", "a workflow needs at least one task"));
        }
        if self.tasks.len() > MAX_TASKS {
            return Err(field(
                "tasks",
                format!(
                    "{} tasks; at most {MAX_TASKS} are allowed",
                    self.tasks.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in self.tasks.iter().enumerate() {
            check_name(&format!("tasks[{i}].name"), &t.name)?;
            if !seen.insert(t.name.as_str()) {
                return Err(field(
                    format!("tasks[{i}].name"),
                    format!("duplicate task name {:?}", t.name),
                ));
            }
        }
        let mut defs = Vec::with_capacity(self.tasks.len());
        for (i, t) in self.tasks.iter().enumerate() {
            defs.push(task(i, t, &seen, catalog)?);
        }
        topo_sort(defs)
    }

    fn upstream(&self, catalog: &dyn Catalog) -> Result<Vec<UpstreamDep>, DefinitionError> {
        let mut deps = Vec::new();
        for (i, u) in self.upstream.iter().enumerate() {
            let at = format!("upstream[{i}].workflow");
            check_name(&at, &u.workflow)?;
            if u.workflow == self.name {
                // "My own previous window succeeded" is a valid rule; the
                // same or a later window of itself can never be satisfied.
                if u.offset >= 0 {
                    return Err(DefinitionError::WorkflowCycle(format!(
                        "{} depends on its own window at offset {} (only negative offsets are allowed for itself)",
                        self.name, u.offset
                    )));
                }
            } else if catalog.upstreams(&u.workflow).is_none() {
                return Err(field(at, format!("unknown workflow {:?}", u.workflow)));
            }
            // Compared as a magnitude without `abs()`, which overflows for
            // i64::MIN (and wrapped to a negative number in release builds,
            // so that offset passed).
            if u.offset.unsigned_abs() > MAX_SHIFT {
                return Err(field(
                    format!("upstream[{i}].offset"),
                    format!(
                        "{} is out of range: must be between -{MAX_SHIFT} and {MAX_SHIFT}",
                        u.offset
                    ),
                ));
            }
            deps.push(UpstreamDep {
                workflow: u.workflow.clone(),
                offset: u.offset,
            });
        }
        // A path from any upstream back to this workflow closes a cycle.
        for d in deps.iter().filter(|d| d.workflow != self.name) {
            let mut path = vec![self.name.clone(), d.workflow.clone()];
            if reaches(catalog, &self.name, &mut path, &mut HashSet::new()) {
                return Err(DefinitionError::WorkflowCycle(path.join(" -> ")));
            }
        }
        Ok(deps)
    }
}

/// Depth-first search along upstream edges from the last node of `path`.
fn reaches(
    catalog: &dyn Catalog,
    target: &str,
    path: &mut Vec<String>,
    seen: &mut HashSet<String>,
) -> bool {
    let Some(cur) = path.last().cloned() else {
        return false;
    };
    if !seen.insert(cur.clone()) {
        return false;
    }
    for next in catalog.upstreams(&cur).unwrap_or_default() {
        if next == cur {
            continue;
        }
        path.push(next.clone());
        if next == target || reaches(catalog, target, path, seen) {
            return true;
        }
        path.pop();
    }
    false
}

fn task(
    i: usize,
    t: &RawTask,
    names: &HashSet<&str>,
    catalog: &dyn Catalog,
) -> Result<TaskDef, DefinitionError> {
    let at = |f: &str| format!("tasks[{i}].{f}");
    let plugin = parse_plugin_ref(&t.plugin).map_err(|m| field(at("plugin"), m))?;
    if !catalog.has_plugin(&plugin) {
        return Err(field(
            at("plugin"),
            format!("unknown plugin {plugin}: push it first"),
        ));
    }
    let mut deps = Vec::new();
    for d in &t.depends_on {
        if d == &t.name {
            return Err(DefinitionError::TaskCycle(format!("{0} -> {0}", t.name)));
        }
        if !names.contains(d.as_str()) {
            return Err(field(at("depends_on"), format!("unknown task {d:?}")));
        }
        if deps.contains(d) {
            return Err(field(at("depends_on"), format!("{d:?} is listed twice")));
        }
        deps.push(d.clone());
    }
    let retries = t.retries.unwrap_or(0);
    if retries > MAX_RETRIES {
        return Err(field(at("retries"), format!("at most {MAX_RETRIES}")));
    }
    let delay = match &t.retry_delay {
        Some(d) => duration(at("retry_delay"), d)?,
        None => Duration::from_secs(10),
    };
    let backoff = match t.retry_backoff.as_deref() {
        None | Some("fixed") => Backoff::Fixed(delay),
        Some("exponential") => Backoff::Exponential {
            initial: delay,
            max: match &t.retry_max_delay {
                Some(d) => duration(at("retry_max_delay"), d)?,
                None => Duration::from_secs(3600),
            },
        },
        Some(other) => {
            return Err(field(
                at("retry_backoff"),
                format!("{other:?} is not one of \"fixed\", \"exponential\""),
            ))
        }
    };
    let timeout = t
        .timeout
        .as_ref()
        .map(|s| duration(at("timeout"), s))
        .transpose()?;
    if t.fuel == Some(0) {
        return Err(field(at("fuel"), "must be more than zero"));
    }
    let memory = match &t.memory {
        None => None,
        Some(m) => {
            let size: bytesize::ByteSize = m.parse().map_err(|e| {
                field(
                    at("memory"),
                    format!("{m:?} is not a size like 64MiB ({e})"),
                )
            })?;
            if size.as_u64() < 1 << 20 {
                return Err(field(at("memory"), "must be at least 1MiB"));
            }
            Some(size.as_u64() as usize)
        }
    };
    let mut allowed_hosts = Vec::with_capacity(t.allowed_hosts.len());
    for (j, p) in t.allowed_hosts.iter().enumerate() {
        let pattern = crate::egress::HostPattern::parse(p)
            .map_err(|e| field(at(&format!("allowed_hosts[{j}]")), e.to_string()))?;
        allowed_hosts.push(pattern);
    }
    let params: BTreeMap<&String, String> =
        t.params.iter().map(|(k, v)| (k, v.to_param())).collect();
    Ok(TaskDef {
        name: t.name.clone(),
        plugin,
        params: params.into_iter().map(|(k, v)| (k.clone(), v)).collect(),
        depends_on: deps,
        retry: RetryPolicy { retries, backoff },
        timeout,
        fuel: t.fuel,
        memory,
        allowed_hosts: crate::egress::Allowlist::from_patterns(allowed_hosts),
    })
}

/// Kahn's algorithm, keeping definition order among independent tasks; a
/// leftover means a cycle, reported as a path.
fn topo_sort(tasks: Vec<TaskDef>) -> Result<Vec<TaskDef>, DefinitionError> {
    let mut done: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(tasks.len());
    let mut rest = tasks;
    while !rest.is_empty() {
        let before = rest.len();
        let (ready, blocked): (Vec<TaskDef>, Vec<TaskDef>) = rest
            .into_iter()
            .partition(|t| t.depends_on.iter().all(|d| done.contains(d)));
        if ready.is_empty() {
            return Err(DefinitionError::TaskCycle(cycle_path(&blocked)));
        }
        for t in ready {
            done.insert(t.name.clone());
            out.push(t);
        }
        rest = blocked;
        debug_assert!(rest.len() < before);
    }
    Ok(out)
}

fn cycle_path(blocked: &[TaskDef]) -> String {
    // Every blocked task waits on another blocked task: walk until a repeat.
    let mut path: Vec<&str> = vec![&blocked[0].name];
    loop {
        let cur = blocked
            .iter()
            .find(|t| t.name == *path.last().unwrap_or(&""))
            .expect("blocked task");
        let next = cur
            .depends_on
            .iter()
            .find(|d| blocked.iter().any(|b| &b.name == *d))
            .expect("a blocked task depends on a blocked task");
        if let Some(pos) = path.iter().position(|p| p == next) {
            let mut cycle: Vec<&str> = path[pos..].to_vec();
            cycle.push(next);
            return cycle.join(" -> ");
        }
        path.push(next);
    }
}
