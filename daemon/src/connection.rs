//! Connections: named, per-tenant descriptions of an external system a task
//! may use (an HTTP API, an S3 bucket, a directory), with their secrets.
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
    /// A directory under the daemon's data dir.
    Fs,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Http => "http",
            ConnectionKind::S3 => "s3",
            ConnectionKind::Fs => "fs",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ConnectionError> {
        match s {
            "http" => Ok(ConnectionKind::Http),
            "s3" => Ok(ConnectionKind::S3),
            "fs" => Ok(ConnectionKind::Fs),
            other => Err(ConnectionError::field(
                "kind",
                format!("unknown connection kind {other:?}; expected http, s3 or fs"),
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
            ConnectionKind::Fs => &[("path", true)],
        }
    }

    /// Secret fields a connection of this kind may have.
    fn secret_fields(self) -> &'static [&'static str] {
        match self {
            ConnectionKind::Http => &["token", "password", "value"],
            ConnectionKind::S3 => &["secret_access_key"],
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
            ConnectionKind::Fs => check_relative("config.path", get("path").unwrap_or_default())?,
        }
        Ok(())
    }
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
mod tests {
    use super::*;

    fn raw(kind: &str, config: &[(&str, &str)], secrets: &[(&str, &str)]) -> RawConnection {
        RawConnection {
            name: "c".into(),
            kind: kind.into(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn connections_are_validated_per_kind_naming_the_field() {
        let ok = raw(
            "http",
            &[
                ("base_url", "https://api.example.com/v1"),
                ("auth", "bearer"),
            ],
            &[("token", "t0k3n")],
        );
        assert_eq!(ok.validate().unwrap().kind, ConnectionKind::Http);
        let cases: &[(RawConnection, &str)] = &[
            (raw("ftp", &[], &[]), "kind"),
            (raw("http", &[], &[]), "config.base_url"),
            (
                raw("http", &[("base_url", "api.example.com")], &[]),
                "config.base_url",
            ),
            (
                raw("http", &[("base_url", "https://u:p@h")], &[]),
                "config.base_url",
            ),
            (
                raw(
                    "http",
                    &[("base_url", "https://h"), ("auth", "bearer")],
                    &[],
                ),
                "secrets.token",
            ),
            (
                raw("http", &[("base_url", "https://h"), ("token", "x")], &[]),
                "config.token",
            ),
            (
                raw("http", &[("base_url", "https://h")], &[("pin", "1")]),
                "secrets.pin",
            ),
            (
                raw("s3", &[("bucket", "b")], &[("secret_access_key", "k")]),
                "config.access_key_id",
            ),
            (
                raw("s3", &[("bucket", "b"), ("access_key_id", "a")], &[]),
                "secrets.secret_access_key",
            ),
            (
                raw(
                    "http",
                    &[
                        ("base_url", "https://h"),
                        ("auth", "header"),
                        ("header", "Host"),
                    ],
                    &[("value", "v")],
                ),
                "config.header",
            ),
            (
                raw(
                    "http",
                    &[
                        ("base_url", "https://h"),
                        ("auth", "header"),
                        ("header", "a b"),
                    ],
                    &[("value", "v")],
                ),
                "config.header",
            ),
            (raw("fs", &[("path", "../up")], &[]), "config.path"),
            (raw("fs", &[("path", "/abs")], &[]), "config.path"),
        ];
        for (c, field) in cases {
            let e = c.validate().unwrap_err();
            assert_eq!(&e.field, field, "{c:?}: {e}");
        }
        // An error never repeats a secret's value.
        let e = raw("http", &[("base_url", "https://h")], &[("pin", "hunter2")])
            .validate()
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let spec = ok.validate().unwrap();
        assert!(!format!("{spec:?}").contains("t0k3n"));
    }
}
