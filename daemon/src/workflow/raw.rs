//! The input shape of a definition, shared by TOML and JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::DefinitionError;

/// A workflow definition as written. Unknown fields are errors, so a typo
/// never silently drops a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub schedule: RawSchedule,
    #[serde(default)]
    pub catchup: Option<bool>,
    #[serde(default)]
    pub max_active_runs: Option<u32>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub failure_strategy: Option<String>,
    pub tasks: Vec<RawTask>,
    #[serde(default)]
    pub upstream: Vec<RawUpstream>,
    /// Connections of its tenant that its tasks may use, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// Checks the engine runs by itself on the workflow's windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<RawChecks>,
    /// What the gap detector may do with the windows it finds:
    /// `repair = "auto"`, or a table with `mode` and `lookback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<RawRepair>,
}

/// `repair`: a mode (`off`, `propose`, `auto`), or `{ mode, lookback }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawRepair {
    Mode(String),
    Table {
        mode: String,
        /// How far back the detector looks, e.g. `"30d"` (default 7 days).
        #[serde(default)]
        lookback: Option<String>,
    },
}

/// `[checks]`: what the engine verifies by itself once a window is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChecks {
    /// `off` (default) or `after_window`: once a window's run has ended,
    /// re-read every object-storage output it published and compare it
    /// with what was committed.
    #[serde(default)]
    pub outputs: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub cron: String,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub name: String,
    pub plugin: String,
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub retry_delay: Option<String>,
    /// `fixed` (default) or `exponential`.
    #[serde(default)]
    pub retry_backoff: Option<String>,
    #[serde(default)]
    pub retry_max_delay: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub fuel: Option<u64>,
    #[serde(default)]
    pub memory: Option<String>,
    /// Hosts the task may call over HTTP, `scheme://host[:port]` patterns
    /// (see `egress`); each must be within the tenant's egress allowlist.
    /// Empty: no outbound HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

/// Param values may be written as strings, numbers or booleans; tasks
/// receive them as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl ParamValue {
    pub fn to_param(&self) -> String {
        match self {
            ParamValue::Str(s) => s.clone(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => f.to_string(),
            ParamValue::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub workflow: String,
    #[serde(default)]
    pub offset: i64,
}

impl RawWorkflow {
    pub fn from_toml(text: &str) -> Result<Self, DefinitionError> {
        toml::from_str(text).map_err(|e| DefinitionError::Syntax {
            format: "TOML",
            message: e.to_string(),
        })
    }

    pub fn from_json(text: &[u8]) -> Result<Self, DefinitionError> {
        serde_json::from_slice(text).map_err(|e| DefinitionError::Syntax {
            format: "JSON",
            message: e.to_string(),
        })
    }
}
