//! The daemon's configuration: a TOML file, overridden by environment
//! variables, overridden by flags (clap merges those two), validated at
//! start-up with messages that name the bad key.
//!
//! ```toml
//! data = "/var/lib/tidemark"
//! # store = "postgres://tidemark@db:5432/tidemark"   # default: embedded, in `data`
//! listen = "0.0.0.0:7878"
//! max_attempts = 32
//! grace = "30s"
//! backfill_admission_limit = 10000
//! [log]
//! format = "json"          # or "text"
//! filter = "info,tidemark=debug"
//! [quotas]                 # defaults of every tenant
//! concurrent_attempts = 32
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::quota::{Overrides, Quotas};

/// Attempts running at once when nothing says otherwise. Most attempts
/// wait on I/O (HTTP, object storage) or are tiny, and attempts that finish
/// together share one store commit, so more of them in flight is cheaper
/// per attempt; the tenant quotas still bound each tenant.
pub const DEFAULT_MAX_ATTEMPTS: usize = 32;

/// The file, every key optional.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    /// A `postgres://` connection string; unset, the embedded sled store
    /// in the data directory.
    pub store: Option<String>,
    pub listen: Option<String>,
    pub plugins: Option<PathBuf>,
    pub workflows: Option<PathBuf>,
    pub tenant: Option<String>,
    pub max_attempts: Option<usize>,
    pub grace: Option<String>,
    pub admin_token: Option<String>,
    pub backfill_admission_limit: Option<usize>,
    /// Address-space limit of the process compiling a plugin, e.g. "4GiB".
    pub compile_memory: Option<String>,
    /// Time limit of compiling a plugin, e.g. "60s".
    pub compile_timeout: Option<String>,
    /// This daemon's name among the nodes sharing a PostgreSQL store
    /// (default: host name and process id).
    pub node_id: Option<String>,
    /// The URL other nodes forward API requests to (default: http:// and
    /// the listen address).
    pub advertise: Option<String>,
    /// How long the engine lease lasts without renewal, e.g. "5s": the
    /// longest a dead node holds its work.
    pub lease: Option<String>,
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
    pub store: StoreLocation,
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
    #[serde(serialize_with = "bytes_text")]
    pub compile_memory: u64,
    #[serde(with = "humantime_serde_compat")]
    pub compile_timeout: Duration,
    pub log_format: LogFormat,
    pub log_filter: Option<String>,
    pub quotas: Quotas,
    pub node_id: String,
    /// `None`: http:// and the address the daemon is listening on.
    pub advertise: Option<String>,
    #[serde(with = "humantime_serde_compat")]
    pub lease: Duration,
}

/// Where the daemon keeps its state. Shown (printed configuration, `Debug`)
/// only with the connection string's password redacted.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// sled, in `DATA/state`.
    Embedded,
    /// PostgreSQL at this connection string (checked, not yet connected).
    Postgres(String),
}

impl StoreLocation {
    /// For messages and printed configuration: never the password.
    pub fn display(&self) -> String {
        match self {
            StoreLocation::Embedded => "embedded".into(),
            StoreLocation::Postgres(url) => crate::store::redact_url(url),
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Serialize for StoreLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}

/// Reads the `store` setting: unset is the embedded store, anything else
/// must be a PostgreSQL connection string that parses.
fn store_location(text: Option<String>) -> Result<StoreLocation, ConfigError> {
    let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(StoreLocation::Embedded);
    };
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(invalid(
            "store",
            format!(
                "{} is not a postgres:// URL like postgres://user@host:5432/db \
                 (leave it unset for the embedded store in the data directory)",
                crate::store::redact_url(&text)
            ),
        ));
    }
    crate::store::check_url(&text).map_err(|e| invalid("store", e.to_string()))?;
    Ok(StoreLocation::Postgres(text))
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

fn bytes_text<S: serde::Serializer>(b: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&bytesize::ByteSize::b(*b).display().iec().to_string())
}

/// The smallest compile_memory: below it even a tiny component cannot
/// compile (the binary and the compiler's threads need address space).
const MIN_COMPILE_MEMORY: u64 = 256 << 20;

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

    /// toml's message names the key and the line, and shows the line, but
    /// never a secret's value (see [`redact`]).
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| redact(text, &e).trim_end().to_owned())
    }
}

/// Keys whose values may be secrets: `admin_token`, and misspellings of
/// it, which toml reports as unknown keys while quoting their line.
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    // `store` may be a connection string with a password in it.
    ["tok", "admin", "secret", "pass", "store"]
        .iter()
        .any(|s| key.contains(s))
}

/// For each line of `text`: whether it holds (part of) a secret's value:
/// the line assigning a secret key and, for multi-line strings, the lines
/// after it up to the next assignment or table.
fn secret_lines(text: &str) -> Vec<bool> {
    let mut in_secret = false;
    text.lines()
        .map(|line| {
            let t = line.trim_start();
            let key = t.split_once('=').map(|(k, _)| k).filter(|k| {
                k.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c))
            });
            if t.starts_with('[') {
                in_secret = false;
            } else if let Some(k) = key {
                in_secret = is_secret_key(k);
            }
            in_secret
        })
        .collect()
}

/// toml's message without secret values: it quotes the offending line
/// (`3 | admin_token = abc`) and, for a bad value, the value itself
/// (`invalid type: integer `123``), so a malformed `admin_token` would be
/// echoed by `tidemark config check` and into logs.
fn redact(text: &str, e: &toml::de::Error) -> String {
    let secret = secret_lines(text);
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count();
    if let Some(span) = e.span() {
        let line = line_of(span.start);
        if secret.get(line) == Some(&true) {
            return format!(
                "TOML parse error at line {}: the value of a secret key is malformed (not shown); \
                 write it as a quoted string, e.g. admin_token = \"...\"",
                line + 1
            );
        }
    }
    // Other errors: blank any quoted secret line ("N | source").
    e.to_string()
        .lines()
        .map(|l| {
            let Some((number, source)) = l.split_once(" | ") else {
                return l.to_owned();
            };
            let n = number.trim().parse::<usize>().ok();
            if !n.is_some_and(|n| n >= 1 && secret.get(n - 1) == Some(&true)) {
                return l.to_owned();
            }
            match source.split_once('=') {
                Some((k, _)) if is_secret_key(k) => format!("{number} | {k}= <redacted>"),
                _ => format!("{number} | <redacted>"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    let max_attempts = over
        .max_attempts
        .or(file.max_attempts)
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
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
    let memory_text = over
        .compile_memory
        .or(file.compile_memory)
        .unwrap_or_else(|| "4GiB".into());
    let compile_memory = memory_text
        .parse::<bytesize::ByteSize>()
        .map_err(|e| {
            invalid(
                "compile_memory",
                format!("{memory_text:?} is not a size like 4GiB ({e})"),
            )
        })?
        .as_u64();
    if compile_memory < MIN_COMPILE_MEMORY {
        return Err(invalid(
            "compile_memory",
            format!(
                "must be at least {}",
                bytesize::ByteSize::b(MIN_COMPILE_MEMORY).display().iec()
            ),
        ));
    }
    let timeout_text = over
        .compile_timeout
        .or(file.compile_timeout)
        .unwrap_or_else(|| "120s".into());
    let compile_timeout = humantime::parse_duration(&timeout_text).map_err(|e| {
        invalid(
            "compile_timeout",
            format!("{timeout_text:?} is not a duration like 60s ({e})"),
        )
    })?;
    if compile_timeout.is_zero() {
        return Err(invalid("compile_timeout", "must be more than 0s"));
    }
    // Blank means "not configured" (the token file is used), as before.
    let admin_token = over
        .admin_token
        .or(file.admin_token)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    if let Some(t) = &admin_token {
        crate::tenancy::check_admin_token(t).map_err(|m| invalid("admin_token", m))?;
    }
    let store = store_location(over.store.or(file.store))?;
    let node_id = over
        .node_id
        .or(file.node_id)
        .unwrap_or_else(default_node_id);
    crate::store::check_node_id(&node_id).map_err(|m| invalid("node_id", m))?;
    let advertise = match over.advertise.or(file.advertise) {
        Some(a) => {
            let ok = (a.starts_with("http://") || a.starts_with("https://"))
                && a.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
            if !ok {
                return Err(invalid(
                    "advertise",
                    format!("{a:?} is not a URL like http://10.0.0.5:7878"),
                ));
            }
            Some(a.trim_end_matches('/').to_owned())
        }
        None => None,
    };
    let lease_text = over.lease.or(file.lease).unwrap_or_else(|| "5s".into());
    let lease = humantime::parse_duration(&lease_text).map_err(|e| {
        invalid(
            "lease",
            format!("{lease_text:?} is not a duration like 5s ({e})"),
        )
    })?;
    if lease < Duration::from_secs(1) || lease > Duration::from_secs(300) {
        return Err(invalid("lease", "must be between 1s and 5m"));
    }
    Ok(Config {
        data: over.data.or(file.data).unwrap_or(default_data),
        store,
        listen,
        plugins: over.plugins.or(file.plugins),
        workflows: over.workflows.or(file.workflows),
        tenant,
        max_attempts,
        grace,
        admin_token,
        backfill_admission_limit,
        compile_memory,
        compile_timeout,
        log_format,
        log_filter,
        quotas,
        node_id,
        advertise,
        lease,
    })
}

/// Host name and process id: unique among daemons that run at once, and
/// readable in `tidemark nodes`.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                .take(40)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, String> {
        let file = FileConfig::parse(text)?;
        resolve(file, FileConfig::default(), "d".into()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_store_is_a_postgres_url_never_shown_with_its_password() {
        assert_eq!(check("").unwrap().store, StoreLocation::Embedded);
        let c = check("store = \"postgres://tide:hunter2@db:5432/t\"").unwrap();
        assert!(matches!(&c.store, StoreLocation::Postgres(u) if u.contains("hunter2")));
        assert!(!format!("{c:?}").contains("hunter2"));
        let shown = toml::to_string(&c).unwrap();
        assert!(shown.contains("postgres://tide:***@db:5432/t"), "{shown}");
        assert!(!shown.contains("hunter2"));
        for bad in [
            "store = \"mysql://tide:hunter2@db/t\"",
            "store = \"postgres://tide:hunter2@db:port/t\"",
            // Unquoted: toml quotes the line in its error, redacted.
            "store = postgres://tide:hunter2@db/t",
        ] {
            let err = check(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("store") || err.contains("secret key"), "{err}");
        }
    }

    #[test]
    fn defaults_file_and_overlay_in_that_order() {
        let c = check("").unwrap();
        assert_eq!(
            (c.listen.port(), c.max_attempts, c.grace),
            (7878, DEFAULT_MAX_ATTEMPTS, Duration::from_secs(30))
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

    #[test]
    fn compile_limits_are_sizes_and_durations() {
        let c = check("").unwrap();
        assert_eq!(
            (c.compile_memory, c.compile_timeout),
            (4 << 30, Duration::from_secs(120))
        );
        let c = check("compile_memory = \"512MiB\"\ncompile_timeout = \"2m\"").unwrap();
        assert_eq!(
            (c.compile_memory, c.compile_timeout),
            (512 << 20, Duration::from_secs(120))
        );
        assert!(check("compile_memory = \"lots\"")
            .unwrap_err()
            .starts_with("compile_memory: \"lots\" is not a size"));
        assert_eq!(
            check("compile_memory = \"1MiB\"").unwrap_err(),
            "compile_memory: must be at least 256.0 MiB"
        );
        assert_eq!(
            check("compile_timeout = \"0s\"").unwrap_err(),
            "compile_timeout: must be more than 0s"
        );
    }

    /// Issue #13: a one-character admin token was accepted.
    #[test]
    fn short_admin_tokens_are_refused_without_echoing_them() {
        let e = check("admin_token = \"x\"").unwrap_err();
        assert_eq!(
            e,
            "admin_token: must be at least 16 characters long; leave it out to have one generated"
        );
        let e = check("admin_token = \"fifteen-chars-x\"").unwrap_err();
        assert!(e.starts_with("admin_token: must be at least 16"), "{e}");
        assert!(!e.contains("fifteen"), "{e}");
        let e = check("admin_token = \"sixteen chars ok\"").unwrap_err();
        assert_eq!(e, "admin_token: must not contain whitespace");
        let c = check("admin_token = \"  sixteen-chars-ok  \"").unwrap();
        assert_eq!(c.admin_token.as_deref(), Some("sixteen-chars-ok"));
        // Blank is "not configured": the token file is used.
        assert_eq!(check("admin_token = \" \"").unwrap().admin_token, None);
        let over = FileConfig {
            admin_token: Some("short".into()),
            ..FileConfig::default()
        };
        let e = resolve(FileConfig::default(), over, "d".into()).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("admin_token: must be at least 16"));
    }

    /// Issue #13: `config check` echoed a malformed admin_token in toml's
    /// error snippet.
    #[test]
    fn config_errors_never_show_secret_values() {
        for text in [
            "listen = \"127.0.0.1:1\"\nadmin_token = s3cr3t-v4lue-0123456789\n",
            "admin_token = 1234567890123456789\n",
            "admin_token = \"s3cr3t-v4lue-0123456789\n",
            "admin_token = [\"s3cr3t-v4lue-0123456789\"]\n",
            "admin_tokn = \"s3cr3t-v4lue-0123456789\"\n",
            "admin_token = \"s3cr3t-v4lue-0123456789\"\nlistn = 1\n",
            "admin_token = \"\"\"\ns3cr3t-v4lue-0123456789\n\"\"\"\nlistn = 1\n",
        ] {
            let e = check(text).unwrap_err();
            for secret in ["s3cr3t", "1234567890123456789"] {
                assert!(!e.contains(secret), "{text:?} shows the secret: {e}");
            }
            assert!(e.contains("line"), "{text:?}: {e}");
        }
        // Other keys keep toml's full message with its snippet.
        let e = check("max_attempts = \"many\"").unwrap_err();
        assert!(e.contains("| max_attempts = \"many\""), "{e}");
    }
}
