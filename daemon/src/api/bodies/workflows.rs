//! Workflow definitions, summaries and versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::runs::RunState;
use crate::workflow::{
    ParamValue as RawParam, RawChecks, RawRepair, RawSchedule, RawTask, RawUpstream, RawWorkflow,
};

/// A task parameter: a string, number or boolean (tasks receive strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

// Hand-written: derived, the untagged variants would be a `oneOf` that an
// integer matches twice (integer and number), so no integer would validate.
impl utoipa::PartialSchema for ParamValue {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::String,
                Type::Number,
                Type::Boolean,
            ]))
            .description(Some(
                "A string, number or boolean; the task receives it as a string",
            ))
            .into()
    }
}

impl ToSchema for ParamValue {}

impl From<RawParam> for ParamValue {
    fn from(p: RawParam) -> Self {
        match p {
            RawParam::Str(s) => ParamValue::Str(s),
            RawParam::Int(i) => ParamValue::Int(i),
            RawParam::Float(f) => ParamValue::Float(f),
            RawParam::Bool(b) => ParamValue::Bool(b),
        }
    }
}

/// When a workflow's windows are: cron ticks in a time zone from `start`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// 5, 6 or 7 fields, or `@hourly`, `@daily`, ...
    pub cron: String,
    /// An IANA zone (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// An RFC 3339 instant, or a date (midnight in `timezone`).
    pub start: String,
    #[serde(default)]
    pub end: Option<String>,
}

fn utc() -> String {
    "UTC".into()
}

/// One task of a workflow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    /// `NAME` (newest version) or `NAME@VERSION`.
    pub plugin: String,
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    /// A duration such as `30s`.
    #[serde(default)]
    pub retry_delay: Option<String>,
    /// `fixed` (default) or `exponential`.
    #[serde(default)]
    pub retry_backoff: Option<String>,
    #[serde(default)]
    pub retry_max_delay: Option<String>,
    /// A duration such as `5m`.
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub fuel: Option<u64>,
    /// A size such as `128MiB`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Hosts the task may call over HTTP (`scheme://host[:port]`
    /// patterns), each within the tenant's egress allowlist; none: no
    /// outbound HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

/// An upstream dependency: window W needs the windows of `workflow` that
/// overlap W shifted by `offset` windows to have succeeded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub workflow: String,
    #[serde(default)]
    pub offset: i64,
}

/// Checks the engine runs by itself on a workflow's windows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// `off` (default) or `after_window`: once a window's run has ended,
    /// every object-storage output it published is re-read and compared
    /// with what was committed; the result is kept with the output
    /// (`check` in `GET /workflows/{name}/outputs` and `GET /runs/{id}`).
    #[serde(default)]
    pub outputs: Option<String>,
}

/// A workflow definition, as applied (JSON here; TOML has the same keys).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub schedule: Schedule,
    /// Run the windows missed while the daemon was down or the workflow
    /// paused (default true).
    #[serde(default)]
    pub catchup: Option<bool>,
    #[serde(default)]
    pub max_active_runs: Option<u32>,
    #[serde(default)]
    pub paused: bool,
    /// `stop` (default: a failed task cancels the rest) or `continue`.
    #[serde(default)]
    pub failure_strategy: Option<String>,
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub upstream: Vec<Upstream>,
    /// Connections of the tenant that its tasks may use, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
}

/// What the gap detector may do with the gaps it finds in the workflow's
/// windows (missing, failed, or stale because an input was committed
/// again): `off` (default: report on request), `propose` (create the
/// repair backfill paused, for approval) or `auto` (create and run it).
/// As a table, `lookback` (a duration such as `30d`, default `7d`) is how
/// far back it looks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Repair {
    Mode(String),
    Table {
        mode: String,
        #[serde(default)]
        lookback: Option<String>,
    },
}

impl From<RawWorkflow> for WorkflowDefinition {
    fn from(w: RawWorkflow) -> Self {
        // Destructured, so a new field of the definition does not compile
        // until the API shows it.
        let RawWorkflow {
            name,
            description,
            schedule,
            catchup,
            max_active_runs,
            paused,
            failure_strategy,
            tasks,
            upstream,
            connections,
            checks,
            repair,
        } = w;
        let RawSchedule {
            cron,
            timezone,
            start,
            end,
        } = schedule;
        WorkflowDefinition {
            name,
            description,
            schedule: Schedule {
                cron,
                timezone,
                start,
                end,
            },
            catchup,
            max_active_runs,
            paused,
            failure_strategy,
            tasks: tasks.into_iter().map(task).collect(),
            upstream: upstream
                .into_iter()
                .map(|RawUpstream { workflow, offset }| Upstream { workflow, offset })
                .collect(),
            connections,
            checks: checks.map(|RawChecks { outputs }| Checks { outputs }),
            repair: repair.map(|r| match r {
                RawRepair::Mode(m) => Repair::Mode(m),
                RawRepair::Table { mode, lookback } => Repair::Table { mode, lookback },
            }),
        }
    }
}

fn task(t: RawTask) -> Task {
    let RawTask {
        name,
        plugin,
        params,
        depends_on,
        retries,
        retry_delay,
        retry_backoff,
        retry_max_delay,
        timeout,
        fuel,
        memory,
        allowed_hosts,
    } = t;
    Task {
        name,
        plugin,
        params: params.into_iter().map(|(k, v)| (k, v.into())).collect(),
        depends_on,
        retries,
        retry_delay,
        retry_backoff,
        retry_max_delay,
        timeout,
        fuel,
        memory,
        allowed_hosts,
    }
}

/// One workflow in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkflowSummary {
    pub name: String,
    pub version: u32,
    pub cron: String,
    pub timezone: String,
    pub paused: bool,
    /// How many tasks it has.
    pub tasks: u64,
    /// Names of the workflows it depends on.
    pub upstream: Vec<String>,
    /// The newest window that has a run, and that run's state.
    #[schema(required = true)]
    pub last_window_start_ms: Option<i64>,
    #[schema(required = true)]
    pub last_window_state: Option<RunState>,
    /// When the next window closes and becomes due (`null` when paused or
    /// past the end).
    #[schema(required = true)]
    pub next_due_ms: Option<i64>,
}

impl From<crate::engine::WorkflowSummary> for WorkflowSummary {
    fn from(w: crate::engine::WorkflowSummary) -> Self {
        WorkflowSummary {
            name: w.name,
            version: w.version,
            cron: w.cron,
            timezone: w.timezone,
            paused: w.paused,
            tasks: w.tasks as u64,
            upstream: w.upstream,
            last_window_start_ms: w.last_window_start,
            last_window_state: w.last_window_state.map(Into::into),
            next_due_ms: w.next_due,
        }
    }
}

/// A page of workflows, by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowSummary>,
    /// The `after` of the next page (a name), `null` on the last.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// The version an apply stored (or the current one if nothing changed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Applied {
    pub name: String,
    pub version: u32,
}

/// One version of a workflow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkflowVersion {
    pub name: String,
    pub version: u32,
    pub created_ms: i64,
    pub definition: WorkflowDefinition,
}

impl From<crate::store::StoredWorkflow> for WorkflowVersion {
    fn from(w: crate::store::StoredWorkflow) -> Self {
        WorkflowVersion {
            name: w.name,
            version: w.version,
            created_ms: w.created_ms,
            definition: w.raw.into(),
        }
    }
}

/// A page of a workflow's versions, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkflowVersions {
    pub name: String,
    pub versions: Vec<WorkflowVersion>,
    /// The `after` of the next page (a version), `null` on the last.
    #[schema(required = true)]
    pub next: Option<u32>,
}

/// A workflow's pause state after a pause or unpause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseState {
    pub name: String,
    /// The version with this pause state.
    pub version: u32,
    pub paused: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's definition reads and writes the same JSON as the
    /// definition the engine parses (one format, two types).
    #[test]
    fn definition_json_is_the_raw_workflows() {
        let text = r#"{"name":"w","description":"d","schedule":{"cron":"@daily","timezone":"Europe/Berlin","start":"2024-01-01","end":null},
            "catchup":false,"max_active_runs":2,"paused":true,"failure_strategy":"stop",
            "tasks":[{"name":"t","plugin":"p@1","params":{"a":"x","b":1,"c":1.5,"d":true},"depends_on":[],
              "retries":1,"retry_delay":"1s","retry_backoff":"fixed","retry_max_delay":"1m","timeout":"5m","fuel":10,"memory":"1MiB"}],
            "upstream":[{"workflow":"u","offset":-1}],"connections":["lake"],"checks":{"outputs":"after_window"},
            "repair":{"mode":"propose","lookback":"30d"}}"#;
        let raw = RawWorkflow::from_json(text.as_bytes()).unwrap();
        let api: WorkflowDefinition = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_value(WorkflowDefinition::from(raw.clone())).unwrap(),
            serde_json::to_value(&raw).unwrap()
        );
        assert_eq!(
            serde_json::to_value(api).unwrap(),
            serde_json::to_value(&raw).unwrap()
        );
    }
}
