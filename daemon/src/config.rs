//! The daemon's configuration: a TOML file, overridden by environment
//! variables, overridden by flags (clap merges those two), validated at
//! start-up with messages that name the bad key.
//!
//! ```toml
//! data = "/var/lib/tidemark"
//! listen = "0.0.0.0:7878"
//! max_attempts = 16
//! grace = "30s"
//! backfill_admission_limit = 10000
//! [log]
//! format = "json"          # or "text"
//! filter = "info,tidemark=debug"
//! [quotas]                 # defaults of every tenant
//! concurrent_attempts = 8
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::quota::{Overrides, Quotas};

/// The file, every key optional.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub plugins: Option<PathBuf>,
    pub workflows: Option<PathBuf>,
    pub tenant: Option<String>,
    pub max_attempts: Option<usize>,
    pub grace: Option<String>,
    pub admin_token: Option<String>,
    pub backfill_admission_limit: Option<usize>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub quotas: Overrides,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// A `RUST_LOG`-style filter; `RUST_LOG` overrides it.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub plugins: Option<PathBuf>,
    pub workflows: Option<PathBuf>,
    pub tenant: String,
    pub max_attempts: usize,
    #[serde(with = "humantime_serde_compat")]
    pub grace: Duration,
    #[serde(skip)]
    pub admin_token: Option<String>,
    pub backfill_admission_limit: usize,
    pub log_format: LogFormat,
    pub log_filter: Option<String>,
    pub quotas: Quotas,
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// toml's message names the key and the line.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }
}

/// Merges `file` under `over` (what flags and environment gave, in the
/// same shape) and validates everything; `default_data` is used when
/// neither names a data directory.
pub fn resolve(
    file: FileConfig,
    over: FileConfig,
    default_data: PathBuf,
) -> Result<Config, ConfigError> {
    let listen_text = over
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let listen = listen_text.parse().map_err(|e| {
        invalid(
            "listen",
            format!("{listen_text:?} is not an address like 127.0.0.1:7878 ({e})"),
        )
    })?;
    let grace_text = over.grace.or(file.grace).unwrap_or_else(|| "30s".into());
    let grace = humantime::parse_duration(&grace_text).map_err(|e| {
        invalid(
            "grace",
            format!("{grace_text:?} is not a duration like 30s ({e})"),
        )
    })?;
    let max_attempts = over.max_attempts.or(file.max_attempts).unwrap_or(8);
    if max_attempts == 0 {
        return Err(invalid("max_attempts", "must be at least 1"));
    }
    let backfill_admission_limit = over
        .backfill_admission_limit
        .or(file.backfill_admission_limit)
        .unwrap_or(10_000);
    if backfill_admission_limit == 0 {
        return Err(invalid("backfill_admission_limit", "must be at least 1"));
    }
    let tenant = over
        .tenant
        .or(file.tenant)
        .unwrap_or_else(|| "default".into());
    crate::workflow::check_name("tenant", &tenant).map_err(|e| invalid("tenant", e.to_string()))?;
    let log_format = match over
        .log
        .format
        .or(file.log.format)
        .as_deref()
        .unwrap_or("text")
    {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log.format",
                format!("{other:?} is not one of text, json"),
            ))
        }
    };
    let log_filter = over.log.filter.or(file.log.filter);
    if let Some(f) = &log_filter {
        tracing_subscriber::EnvFilter::try_new(f)
            .map_err(|e| invalid("log.filter", format!("{f:?}: {e}")))?;
    }
    let quotas = Quotas::default().with(&file.quotas).map_err(|e| match e {
        crate::quota::QuotaError::Invalid { quota, reason } => {
            invalid(&format!("quotas.{quota}"), reason)
        }
        other => invalid("quotas", other.to_string()),
    })?;
    Ok(Config {
        data: over.data.or(file.data).unwrap_or(default_data),
        listen,
        plugins: over.plugins.or(file.plugins),
        workflows: over.workflows.or(file.workflows),
        tenant,
        max_attempts,
        grace,
        admin_token: over.admin_token.or(file.admin_token),
        backfill_admission_limit,
        log_format,
        log_filter,
        quotas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, String> {
        let file = FileConfig::parse(text)?;
        resolve(file, FileConfig::default(), "d".into()).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_file_and_overlay_in_that_order() {
        let c = check("").unwrap();
        assert_eq!(
            (c.listen.port(), c.max_attempts, c.grace),
            (7878, 8, Duration::from_secs(30))
        );
        let file = FileConfig::parse(
            "max_attempts = 4\nlisten = \"0.0.0.0:9000\"\n[quotas]\nweight = 3\n",
        )
        .unwrap();
        let over = FileConfig {
            max_attempts: Some(16),
            ..FileConfig::default()
        };
        let c = resolve(file, over, "d".into()).unwrap();
        assert_eq!(
            (c.max_attempts, c.listen.port(), c.quotas.weight),
            (16, 9000, 3)
        );
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let err = check("listn = \"x\"").unwrap_err();
        assert!(err.contains("unknown field `listn`"), "{err}");
        assert_eq!(
            check("grace = \"soon\"").unwrap_err(),
            "grace: \"soon\" is not a duration like 30s (expected number at 0)"
        );
        assert!(check("listen = \"nowhere\"")
            .unwrap_err()
            .starts_with("listen: \"nowhere\" is not an address"));
        assert_eq!(
            check("max_attempts = 0").unwrap_err(),
            "max_attempts: must be at least 1"
        );
        assert_eq!(
            check("[log]\nformat = \"xml\"").unwrap_err(),
            "log.format: \"xml\" is not one of text, json"
        );
        assert_eq!(
            check("[quotas]\nweight = 0").unwrap_err(),
            "quotas.weight: must be at least 1"
        );
        assert!(check("[quotas]\ngpus = 1")
            .unwrap_err()
            .starts_with("quotas.gpus: no such quota"));
        assert!(check("max_attempts = \"many\"")
            .unwrap_err()
            .contains("max_attempts"));
    }
}
