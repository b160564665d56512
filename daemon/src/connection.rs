//! Connections: named, per-tenant descriptions of an external system a task
//! may use (an HTTP API, an S3, GCS or Azure Blob bucket, a directory),
//! with their secrets.
//!
//! This module is pure: a [`RawConnection`] (what a user sends) is
//! validated per [`ConnectionKind`] into plain settings and secret fields.
//! Sealing the secrets is the engine's job ([`crate::secrets`]); the store
//! keeps only sealed values and fingerprints, and nothing returns a secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workflow::check_name;

/// What kind of system a connection reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// An HTTP API under `base_url`; the host adds its credential.
    Http,
    /// An S3-compatible bucket; the host signs requests.
    S3,
    /// A Google Cloud Storage bucket, with a service-account key.
    Gcs,
    /// An Azure Blob Storage container, with the account's access key.
    Azure,
    /// A directory under the daemon's data dir.
    Fs,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Http => "http",
            ConnectionKind::S3 => "s3",
            ConnectionKind::Gcs => "gcs",
            ConnectionKind::Azure => "azure",
            ConnectionKind::Fs => "fs",
        }
    }

    /// Whether tasks use it as a container (`blobstore`).
    pub fn is_object_store(self) -> bool {
        self != ConnectionKind::Http
    }

    /// The secret field the host opens to sign object-store requests.
    pub fn signing_secret(self) -> Option<&'static str> {
        match self {
            ConnectionKind::S3 => Some("secret_access_key"),
            ConnectionKind::Gcs => Some("service_account_key"),
            ConnectionKind::Azure => Some("access_key"),
            ConnectionKind::Http | ConnectionKind::Fs => None,
        }
    }

    pub fn parse(s: &str) -> Result<Self, ConnectionError> {
        match s {
            "http" => Ok(ConnectionKind::Http),
            "s3" => Ok(ConnectionKind::S3),
            "gcs" => Ok(ConnectionKind::Gcs),
            "azure" => Ok(ConnectionKind::Azure),
            "fs" => Ok(ConnectionKind::Fs),
            other => Err(ConnectionError::field(
                "kind",
                format!("unknown connection kind {other:?}; expected http, s3, gcs, azure or fs"),
            )),
        }
    }

    /// Settings a connection of this kind may have: (name, required).
    fn settings(self) -> &'static [(&'static str, bool)] {
        match self {
            ConnectionKind::Http => &[
                ("base_url", true),
                ("auth", false),
                ("username", false),
                ("header", false),
            ],
            ConnectionKind::S3 => &[
                ("bucket", true),
                ("access_key_id", true),
                ("endpoint", false),
                ("region", false),
                ("prefix", false),
            ],
            ConnectionKind::Gcs => &[("bucket", true), ("endpoint", false), ("prefix", false)],
            ConnectionKind::Azure => &[
                ("account", true),
                ("container", true),
                ("endpoint", false),
                ("prefix", false),
            ],
            ConnectionKind::Fs => &[("path", true)],
        }
    }

    /// Secret fields a connection of this kind may have.
    fn secret_fields(self) -> &'static [&'static str] {
        match self {
            ConnectionKind::Http => &["token", "password", "value"],
            ConnectionKind::S3 => &["secret_access_key"],
            ConnectionKind::Gcs => &["service_account_key"],
            ConnectionKind::Azure => &["access_key"],
            ConnectionKind::Fs => &[],
        }
    }
}

/// A connection as a user writes it (API body, CLI flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    pub name: String,
    pub kind: String,
    /// Plain settings (URLs, bucket, user names): shown back as they are.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secret fields (tokens, passwords, keys): sealed, never shown back.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// A validated connection, secrets still in the clear (in memory only).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSpec {
    pub name: String,
    pub kind: ConnectionKind,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line, not even through `{:?}`.
        f.debug_struct("ConnectionSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a connection was refused; names the field, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConnectionError {
    pub field: String,
    pub message: String,
}

impl ConnectionError {
    fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectionError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Longest setting or secret value accepted.
const MAX_VALUE: usize = 4096;

impl RawConnection {
    pub fn validate(&self) -> Result<ConnectionSpec, ConnectionError> {
        self.validate_keeping(&[])
    }

    /// [`validate`](Self::validate) for a rotation: the secrets named in
    /// `kept` are the stored ones, present by name only (their values were
    /// checked when they were set).
    pub fn validate_keeping(&self, kept: &[&str]) -> Result<ConnectionSpec, ConnectionError> {
        check_name("name", &self.name)
            .map_err(|e| ConnectionError::field("name", e.to_string()))?;
        let kind = ConnectionKind::parse(&self.kind)?;
        let allowed = kind.settings();
        for (k, v) in &self.config {
            if kind.secret_fields().contains(&k.as_str()) {
                return Err(ConnectionError::field(
                    format!("config.{k}"),
                    format!("{k} is a secret: send it under `secrets`, where it is sealed"),
                ));
            }
            if !allowed.iter().any(|(name, _)| name == k) {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                return Err(ConnectionError::field(
                    format!("config.{k}"),
                    format!(
                        "unknown setting of a {} connection; expected one of {names:?}",
                        kind.as_str()
                    ),
                ));
            }
            if v.len() > MAX_VALUE {
                return Err(ConnectionError::field(
                    format!("config.{k}"),
                    format!("longer than {MAX_VALUE} bytes"),
                ));
            }
        }
        for (name, required) in allowed {
            if *required && self.config.get(*name).is_none_or(|v| v.is_empty()) {
                return Err(ConnectionError::field(
                    format!("config.{name}"),
                    format!("required for a {} connection", kind.as_str()),
                ));
            }
        }
        for (k, v) in &self.secrets {
            if !kind.secret_fields().contains(&k.as_str()) {
                return Err(ConnectionError::field(
                    format!("secrets.{k}"),
                    format!(
                        "unknown secret of a {} connection; expected one of {:?}",
                        kind.as_str(),
                        kind.secret_fields()
                    ),
                ));
            }
            if v.is_empty() || v.len() > MAX_VALUE {
                return Err(ConnectionError::field(
                    format!("secrets.{k}"),
                    format!("must be 1 to {MAX_VALUE} bytes"),
                ));
            }
            if !kept.contains(&k.as_str()) {
                check_secret_value(kind, k, v)?;
            }
        }
        let spec = ConnectionSpec {
            name: self.name.clone(),
            kind,
            config: self.config.clone(),
            secrets: self.secrets.clone(),
        };
        spec.check_kind()?;
        Ok(spec)
    }
}

impl ConnectionSpec {
    /// Rules between fields of one kind.
    pub fn check_kind(&self) -> Result<(), ConnectionError> {
        let get = |k: &str| self.config.get(k).map(String::as_str);
        let has_secret = |k: &str| self.secrets.contains_key(k);
        match self.kind {
            ConnectionKind::Http => {
                check_url("config.base_url", get("base_url").unwrap_or_default())?;
                let needs: &[(&str, bool)] = match get("auth").unwrap_or("none") {
                    "none" => &[],
                    "bearer" => &[("token", true)],
                    "basic" => &[("username", false), ("password", true)],
                    "header" => &[("header", false), ("value", true)],
                    other => {
                        return Err(ConnectionError::field(
                            "config.auth",
                            format!("{other:?}: expected none, bearer, basic or header"),
                        ))
                    }
                };
                for (field, secret) in needs {
                    let present = if *secret {
                        has_secret(field)
                    } else {
                        get(field).is_some()
                    };
                    if !present {
                        let place = if *secret { "secrets" } else { "config" };
                        return Err(ConnectionError::field(
                            format!("{place}.{field}"),
                            format!("required with auth = {:?}", get("auth").unwrap_or("none")),
                        ));
                    }
                }
                if let Some(h) = get("header").filter(|_| get("auth") == Some("header")) {
                    crate::egress::check_header_name(h)
                        .map_err(|m| ConnectionError::field("config.header", m))?;
                }
            }
            ConnectionKind::S3 => {
                if let Some(e) = get("endpoint") {
                    check_url("config.endpoint", e)?;
                }
                if !has_secret("secret_access_key") {
                    return Err(ConnectionError::field(
                        "secrets.secret_access_key",
                        "required for an s3 connection",
                    ));
                }
                if let Some(p) = get("prefix") {
                    check_relative("config.prefix", p)?;
                }
            }
            ConnectionKind::Gcs | ConnectionKind::Azure => {
                if let Some(e) = get("endpoint") {
                    check_url("config.endpoint", e)?;
                }
                if let Some(p) = get("prefix") {
                    check_relative("config.prefix", p)?;
                }
                let secret = self.kind.signing_secret().unwrap_or_default();
                if !has_secret(secret) {
                    return Err(ConnectionError::field(
                        format!("secrets.{secret}"),
                        format!("required for a {} connection", self.kind.as_str()),
                    ));
                }
                if self.kind == ConnectionKind::Azure {
                    check_azure_names(
                        get("account").unwrap_or_default(),
                        get("container").unwrap_or_default(),
                    )?;
                } else {
                    check_bucket("config.bucket", get("bucket").unwrap_or_default())?;
                }
            }
            ConnectionKind::Fs => check_relative("config.path", get("path").unwrap_or_default())?,
        }
        Ok(())
    }
}

/// Checks what can be checked of a secret's value without using it. The
/// messages describe the expected shape and never quote the value.
fn check_secret_value(
    kind: ConnectionKind,
    field: &str,
    value: &str,
) -> Result<(), ConnectionError> {
    let bad = |message: &str| Err(ConnectionError::field(format!("secrets.{field}"), message));
    match (kind, field) {
        (ConnectionKind::Gcs, "service_account_key") => {
            // Only whether it parses: a parse error's text may quote it.
            let Ok(serde_json::Value::Object(key)) = serde_json::from_str(value) else {
                return bad("must be a service-account key file (a JSON object)");
            };
            let text = |k: &str| key.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            // `disable_oauth` is for emulators, which take no credentials.
            let emulator = key.get("disable_oauth").and_then(|v| v.as_bool()) == Some(true);
            if !emulator
                && (text("client_email").is_empty()
                    || !text("private_key").starts_with("-----BEGIN"))
            {
                return bad(
                    "must be a service-account key file (JSON with client_email and a PEM private_key)",
                );
            }
        }
        (ConnectionKind::Azure, "access_key") => {
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_or(true, |k| k.is_empty())
            {
                return bad("must be the storage account's access key (base64)");
            }
        }
        _ => {}
    }
    Ok(())
}

/// GCS bucket names: 3-63 of `a-z 0-9 - _ .`, starting and ending with a
/// letter or digit.
fn check_bucket(field: &str, name: &str) -> Result<(), ConnectionError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(ConnectionError::field(
            field,
            format!("{name:?} is not a bucket name (3-63 of a-z 0-9 - _ .)"),
        ));
    }
    Ok(())
}

/// Azure storage account (3-24 of `a-z 0-9`) and container names (3-63 of
/// `a-z 0-9 -`, no leading, trailing or double `-`).
fn check_azure_names(account: &str, container: &str) -> Result<(), ConnectionError> {
    let lower_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !(3..=24).contains(&account.len()) || !account.chars().all(lower_digit) {
        return Err(ConnectionError::field(
            "config.account",
            format!("{account:?} is not a storage account name (3-24 of a-z 0-9)"),
        ));
    }
    let ok = (3..=63).contains(&container.len())
        && container.chars().all(|c| lower_digit(c) || c == '-')
        && !container.starts_with('-')
        && !container.ends_with('-')
        && !container.contains("--");
    if !ok {
        return Err(ConnectionError::field(
            "config.container",
            format!("{container:?} is not a container name (3-63 of a-z 0-9 -)"),
        ));
    }
    Ok(())
}

fn check_url(field: &str, url: &str) -> Result<(), ConnectionError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            ConnectionError::field(
                field,
                format!("{url:?} must start with http:// or https://"),
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || host.contains(char::is_whitespace) {
        return Err(ConnectionError::field(
            field,
            format!("{url:?} needs a host (and no user info: credentials go under `secrets`)"),
        ));
    }
    Ok(())
}

/// A path or key prefix the connection cannot leave: relative, no `..`.
pub fn check_relative(field: &str, path: &str) -> Result<(), ConnectionError> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path.split('/').any(|part| part == "..")
    {
        return Err(ConnectionError::field(
            field,
            format!("{path:?} must be a relative path without `..`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
