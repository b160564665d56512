//! `tidemark task run` and `tidemark plugin check`: one plugin, one attempt,
//! no daemon. What `spin up` is to a Spin app, this is to a task.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::executor::{
    AttemptReport, Executor, ExecutorConfig, ExecutorError, Invocation, Limits, Plugin,
    PluginError, Trigger,
};
use crate::store::{SledStore, StoreError, TaskData};

/// A validated `task run` request.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub plugin: PathBuf,
    pub invocation: Invocation,
    pub limits: Limits,
    /// Where datasets and checkpoints live; `None` keeps them in memory.
    pub data_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

/// Why the harness could not run the attempt at all (as opposed to an
/// attempt that ran and failed, which is an [`AttemptReport`]).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid task plugin: {source}")]
    Plugin {
        path: String,
        #[source]
        source: PluginError,
    },
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    #[error("data directory: {0}")]
    Store(#[from] StoreError),
    #[error("committing the attempt's outputs: {0}")]
    Commit(#[source] StoreError),
    #[error("the plugin loader thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Bad `task run` arguments; each names the argument.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgError {
    #[error("--window {value:?}: expected a date like 2024-03-01 ({reason})")]
    WindowDate { value: String, reason: String },
    #[error(
        "--{flag} {value:?}: expected an RFC 3339 instant like 2024-03-01T00:00:00Z ({reason})"
    )]
    Instant {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("--window-start and --window-end must be given together")]
    HalfWindow,
    #[error("the window must end after it starts ({start} >= {end})")]
    EmptyWindow { start: String, end: String },
    #[error("--tz {0:?}: not an IANA time zone name (e.g. Europe/Berlin)")]
    TimeZone(String),
    #[error("--param {0:?}: expected KEY=VALUE")]
    Param(String),
    #[error("--memory {value:?}: {reason}")]
    Memory { value: String, reason: String },
    #[error("--timeout {value:?}: {reason}")]
    Timeout { value: String, reason: String },
    #[error("--allow-host: {0}")]
    AllowHost(#[from] crate::egress::PatternError),
}

pub fn parse_tz(s: &str) -> Result<Tz, ArgError> {
    s.parse::<Tz>()
        .map_err(|_| ArgError::TimeZone(s.to_owned()))
}

/// The day `date` in `tz`: from local midnight to the next local midnight
/// (23 or 25 hours long on daylight-saving days).
pub fn day_window(date: &str, tz: Tz) -> Result<(i64, i64), ArgError> {
    let bad = |reason: String| ArgError::WindowDate {
        value: date.to_owned(),
        reason,
    };
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|e| bad(e.to_string()))?;
    let next = day
        .succ_opt()
        .ok_or_else(|| bad("date out of range".into()))?;
    let start =
        crate::schedule::local_midnight(day, tz).ok_or_else(|| bad("date out of range".into()))?;
    let end =
        crate::schedule::local_midnight(next, tz).ok_or_else(|| bad("date out of range".into()))?;
    Ok((start, end))
}

pub fn parse_instant(flag: &'static str, s: &str) -> Result<i64, ArgError> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc).timestamp_millis())
        .map_err(|e| ArgError::Instant {
            flag,
            value: s.to_owned(),
            reason: e.to_string(),
        })
}

pub fn parse_param(s: &str) -> Result<(String, String), ArgError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(ArgError::Param(s.to_owned())),
    }
}

pub fn parse_memory(s: &str) -> Result<usize, ArgError> {
    let size: bytesize::ByteSize = s.parse().map_err(|e: String| ArgError::Memory {
        value: s.to_owned(),
        reason: format!("expected a size like 64MiB ({e})"),
    })?;
    usize::try_from(size.as_u64()).map_err(|e| ArgError::Memory {
        value: s.to_owned(),
        reason: e.to_string(),
    })
}

pub fn parse_timeout(s: &str) -> Result<Duration, ArgError> {
    let d = humantime::parse_duration(s).map_err(|e| ArgError::Timeout {
        value: s.to_owned(),
        reason: format!("expected a duration like 5s or 500ms ({e})"),
    })?;
    if d.is_zero() {
        return Err(ArgError::Timeout {
            value: s.to_owned(),
            reason: "must be longer than zero".into(),
        });
    }
    Ok(d)
}

/// Validates a plugin file against the task world.
pub fn check_plugin(path: &Path, cache_dir: Option<PathBuf>) -> Result<Arc<Plugin>, HarnessError> {
    let wasm = read(path)?;
    let executor = Executor::new(ExecutorConfig {
        cache_dir,
        max_instances: Some(4),
    })?;
    executor.load(&wasm).map_err(|source| HarnessError::Plugin {
        path: path.display().to_string(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, HarnessError> {
    std::fs::read(path).map_err(|source| HarnessError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Runs one attempt and, if it succeeded, commits its outputs.
pub async fn run_task(spec: &RunSpec) -> Result<AttemptReport, HarnessError> {
    let wasm = read(&spec.plugin)?;
    let executor = Arc::new(Executor::new(ExecutorConfig {
        cache_dir: spec.cache_dir.clone(),
        max_instances: Some(4),
    })?);
    let loader = executor.clone();
    let plugin = tokio::task::spawn_blocking(move || loader.load(&wasm))
        .await?
        .map_err(|source| HarnessError::Plugin {
            path: spec.plugin.display().to_string(),
            source,
        })?;
    let store: Arc<dyn TaskData> = match &spec.data_dir {
        Some(dir) => Arc::new(SledStore::open(dir)?),
        None => Arc::new(SledStore::temporary()?),
    };
    let report = executor
        .run(&plugin, &spec.invocation, &spec.limits, store.clone())
        .await;
    if report.succeeded() && !report.outputs.is_empty() {
        store
            .dataset_commit(
                &spec.invocation.tenant,
                spec.invocation.window_start_ms,
                &report.outputs,
            )
            .map_err(HarnessError::Commit)?;
    }
    Ok(report)
}

/// The machine-readable form of a report (`--output json`).
#[derive(Debug, Serialize)]
pub struct ReportJson<'a> {
    pub status: &'static str,
    pub summary: Option<&'a str>,
    pub error: Option<ErrorJson>,
    pub fuel_consumed: Option<u64>,
    pub memory_peak: usize,
    pub elapsed_ms: f64,
    pub log: &'a [crate::executor::LogLine],
    pub outputs: Vec<OutputJson<'a>>,
    /// Outbound HTTP requests (`--allow-host`).
    pub http: &'a [crate::executor::HttpRequestRecord],
}

#[derive(Debug, Serialize)]
pub struct ErrorJson {
    pub kind: crate::executor::ErrorKind,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Serialize)]
pub struct OutputJson<'a> {
    pub dataset: &'a str,
    pub key: &'a str,
    pub value: String,
}

impl<'a> ReportJson<'a> {
    pub fn new(r: &'a AttemptReport) -> Self {
        ReportJson {
            status: if r.succeeded() { "succeeded" } else { "failed" },
            summary: r.result.as_ref().ok().map(String::as_str),
            error: r.result.as_ref().err().map(|e| ErrorJson {
                kind: e.kind(),
                message: e.to_string(),
                retryable: e.retryable(),
            }),
            fuel_consumed: r.fuel_consumed,
            memory_peak: r.memory_peak,
            elapsed_ms: r.elapsed.as_secs_f64() * 1000.0,
            log: &r.log,
            http: &r.http,
            outputs: r
                .outputs
                .iter()
                .map(|(dataset, key, value)| OutputJson {
                    dataset,
                    key,
                    value: String::from_utf8_lossy(value).into_owned(),
                })
                .collect(),
        }
    }
}

/// Default trigger for local runs.
pub const DEFAULT_TRIGGER: Trigger = Trigger::Manual;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_windows_follow_daylight_saving() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let (s, e) = day_window("2024-03-31", berlin).unwrap();
        assert_eq!(e - s, 23 * 3_600_000);
        assert_eq!(s, parse_instant("w", "2024-03-30T23:00:00Z").unwrap());
        let (s, e) = day_window("2024-10-27", berlin).unwrap();
        assert_eq!(e - s, 25 * 3_600_000);
        let (s, e) = day_window("2024-03-01", chrono_tz::UTC).unwrap();
        assert_eq!((s, e - s), (1_709_251_200_000, 24 * 3_600_000));
    }

    #[test]
    fn bad_arguments_name_the_problem() {
        assert!(matches!(
            day_window("2024-13-01", chrono_tz::UTC),
            Err(ArgError::WindowDate { .. })
        ));
        assert_eq!(
            parse_tz("Mars/Base").unwrap_err(),
            ArgError::TimeZone("Mars/Base".into())
        );
        assert_eq!(
            parse_param("novalue").unwrap_err(),
            ArgError::Param("novalue".into())
        );
        assert_eq!(parse_param("k=v=w").unwrap(), ("k".into(), "v=w".into()));
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        assert!(parse_memory("lots")
            .unwrap_err()
            .to_string()
            .contains("--memory"));
        assert_eq!(parse_timeout("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_instant("window-start", "yesterday")
            .unwrap_err()
            .to_string()
            .contains("--window-start"));
    }
}
