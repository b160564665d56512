use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::bindings;
use crate::{Error, Result};

pub use bindings::tidemark::task::types::TriggerKind as Trigger;

/// The window `[start, end)` a run is responsible for, in UTC milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The workflow's IANA time zone.
    pub timezone: String,
}

impl Window {
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    pub fn contains(&self, instant_ms: i64) -> bool {
        self.start_ms <= instant_ms && instant_ms < self.end_ms
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}) {}", self.start_ms, self.end_ms, self.timezone)
    }
}

/// Everything the task knows about this attempt.
#[derive(Debug, Clone)]
pub struct Context {
    raw: bindings::Context,
    window: Window,
}

impl Context {
    pub(crate) fn from_raw(raw: bindings::Context) -> Self {
        let window = Window {
            start_ms: raw.window.start,
            end_ms: raw.window.end,
            timezone: raw.window.timezone.clone(),
        };
        Context { raw, window }
    }

    pub fn tenant(&self) -> &str {
        &self.raw.tenant
    }
    pub fn workflow(&self) -> &str {
        &self.raw.workflow
    }
    pub fn task(&self) -> &str {
        &self.raw.task
    }
    pub fn run_id(&self) -> &str {
        &self.raw.run_id
    }
    /// 1 for the first attempt, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.raw.attempt
    }
    pub fn trigger(&self) -> Trigger {
        self.raw.trigger
    }
    pub fn window(&self) -> &Window {
        &self.window
    }
    /// The HTTP trigger's body for event runs; empty otherwise.
    pub fn payload(&self) -> &[u8] {
        &self.raw.payload
    }

    /// Decodes the event payload as JSON.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.raw.payload)
            .map_err(|e| Error::fatal(format!("event payload is not the expected JSON: {e}")))
    }

    /// All parameters, in definition order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw value of parameter `name`, if set.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.raw
            .params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parameter `name` parsed as `T`, or `default` when it is not set. A
    /// value that does not parse is a fatal error naming the parameter.
    pub fn param_or<T>(&self, name: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.param_parsed(name)?.unwrap_or(default))
    }

    /// Parameter `name` parsed as `T`; a missing or malformed value is a
    /// fatal error naming the parameter.
    pub fn require_param<T>(&self, name: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.param_parsed(name)?
            .ok_or_else(|| Error::fatal(format!("parameter `{name}` is required")))
    }

    /// Parameter `name` parsed as `T`, or `None` when it is not set; a
    /// malformed value is a fatal error naming the parameter.
    pub fn param_opt<T>(&self, name: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.param_parsed(name)
    }

    fn param_parsed<T>(&self, name: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.param(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|e| Error::fatal(format!("parameter `{name}` = {raw:?}: {e}"))),
        }
    }
}

/// What a successful attempt reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub summary: String,
}

impl Outcome {
    pub fn summary(summary: impl Into<String>) -> Self {
        Outcome {
            summary: summary.into(),
        }
    }

    pub(crate) fn into_raw(self) -> bindings::Outcome {
        bindings::Outcome {
            summary: self.summary,
        }
    }
}
