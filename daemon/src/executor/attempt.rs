//! What one attempt produces: its outcome or error kind, its log and its
//! staged outputs.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::StagedOutputs;

/// Why an attempt failed. Each limit breach has its own kind so operators and
/// retry policies can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttemptError {
    /// The attempt burned its fuel; raise `fuel` or make the task cheaper.
    #[error("fuel exhausted: the attempt used all {limit} units of fuel")]
    FuelExhausted { limit: u64 },
    /// The attempt ran past its wall-clock timeout.
    #[error("deadline exceeded: the attempt ran longer than {timeout_ms} ms")]
    DeadlineExceeded { timeout_ms: u64 },
    /// The guest tried to grow linear memory past the cap.
    #[error("memory limit exceeded: the attempt tried to use more than {limit} bytes of memory")]
    MemoryLimit { limit: usize },
    /// The guest wrote more log (log lines, stdout, stderr) than allowed.
    #[error("log limit exceeded: the attempt wrote more than {limit} bytes of log")]
    LogLimit { limit: usize },
    /// The guest staged more dataset bytes than allowed.
    #[error("output limit exceeded: the attempt staged more than {limit} bytes of dataset writes")]
    OutputLimit { limit: usize },
    /// The guest staged more object-storage bytes than allowed.
    #[error("output limit exceeded: the attempt staged more than {limit} bytes of objects")]
    ObjectLimit { limit: u64 },
    /// The guest trapped: a panic, stack overflow, `unreachable`, ...
    #[error("guest trap: {message}")]
    Trap { message: String },
    /// The task returned an error.
    #[error("task error ({}): {message}", if *.retryable { "retryable" } else { "fatal" })]
    Task { retryable: bool, message: String },
    /// The host failed (e.g. the store could not be read); retry later.
    #[error("host error: {message}")]
    Host { message: String },
    /// A cancel request with `interrupt` stopped the guest; its staged
    /// writes were dropped, its checkpoints stand.
    #[error("cancelled: the attempt was interrupted by a cancel request")]
    Cancelled,
    /// Committing the attempt's writes would pass a tenant quota (stored
    /// dataset bytes); nothing was written.
    #[error("quota exceeded: {message}")]
    Quota { quota: String, message: String },
}

/// The kind of an [`AttemptError`], without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    FuelExhausted,
    DeadlineExceeded,
    MemoryLimit,
    LogLimit,
    OutputLimit,
    Trap,
    Task,
    Host,
    Cancelled,
    Quota,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::FuelExhausted => "fuel exhausted",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::MemoryLimit => "memory limit exceeded",
            ErrorKind::LogLimit => "log limit exceeded",
            ErrorKind::OutputLimit => "output limit exceeded",
            ErrorKind::Trap => "guest trap",
            ErrorKind::Task => "task error",
            ErrorKind::Host => "host error",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Quota => "quota exceeded",
        }
    }
}

impl ErrorKind {
    /// The snake_case name (as serialized), for metric labels.
    pub fn as_label(self) -> &'static str {
        match self {
            ErrorKind::FuelExhausted => "fuel_exhausted",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::LogLimit => "log_limit",
            ErrorKind::OutputLimit => "output_limit",
            ErrorKind::Trap => "trap",
            ErrorKind::Task => "task",
            ErrorKind::Host => "host",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Quota => "quota",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AttemptError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AttemptError::FuelExhausted { .. } => ErrorKind::FuelExhausted,
            AttemptError::DeadlineExceeded { .. } => ErrorKind::DeadlineExceeded,
            AttemptError::MemoryLimit { .. } => ErrorKind::MemoryLimit,
            AttemptError::LogLimit { .. } => ErrorKind::LogLimit,
            AttemptError::OutputLimit { .. } | AttemptError::ObjectLimit { .. } => {
                ErrorKind::OutputLimit
            }
            AttemptError::Trap { .. } => ErrorKind::Trap,
            AttemptError::Task { .. } => ErrorKind::Task,
            AttemptError::Host { .. } => ErrorKind::Host,
            AttemptError::Cancelled => ErrorKind::Cancelled,
            AttemptError::Quota { .. } => ErrorKind::Quota,
        }
    }

    /// Whether a retry may help. Only a task's own fatal error rules it out:
    /// a trap or limit breach may pass once the task resumes from its
    /// checkpoint, and the retry policy bounds how often that is tried.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            AttemptError::Task {
                retryable: false,
                ..
            } | AttemptError::Cancelled
                | AttemptError::Quota { .. }
        )
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Stdout,
    Stderr,
}

impl LogSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Trace => "trace",
            LogSource::Debug => "debug",
            LogSource::Info => "info",
            LogSource::Warn => "warn",
            LogSource::Error => "error",
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
        }
    }
}

/// One line of an attempt's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the attempt started.
    pub at_ms: u64,
    pub source: LogSource,
    pub message: String,
}

/// Everything one attempt produced.
#[derive(Debug)]
pub struct AttemptReport {
    /// The task's summary line, or why the attempt failed.
    pub result: Result<String, AttemptError>,
    pub log: Vec<LogLine>,
    /// Dataset writes to commit if (and only if) the attempt succeeded. Empty
    /// after a failure.
    pub outputs: StagedOutputs,
    /// Fuel burned; `None` when the deadline interrupted the guest, where the
    /// meter is not reliable.
    pub fuel_consumed: Option<u64>,
    /// Peak linear memory, bytes.
    pub memory_peak: usize,
    pub elapsed: Duration,
    /// Every outbound HTTP request, in the order the guest sent them.
    pub http: Vec<super::HttpRequestRecord>,
    /// Objects the attempt staged, whatever its outcome: the engine
    /// commits them on success and deletes them otherwise.
    pub objects: super::blob::StagedObjects,
    /// Dataset partitions the attempt read, each once, with the version it
    /// saw, whatever its outcome.
    pub reads: Vec<crate::run::DatasetRead>,
    /// Distinct partitions read past `MAX_READS`, not named.
    pub reads_omitted: u64,
    /// The digest of the component that ran; `None` if none was loaded.
    pub plugin_digest: Option<String>,
}

impl AttemptReport {
    pub fn succeeded(&self) -> bool {
        self.result.is_ok()
    }
}
