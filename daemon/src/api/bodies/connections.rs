//! Connections: what a tenant sends (settings and secrets) and what it gets
//! back (settings, and for each secret only its field and fingerprint).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_enum;
use crate::connection::RawConnection;
use crate::store::ConnectionRecord;

api_enum! {
    /// `http` (an HTTP API under `base_url`; the host adds the credential),
    /// `s3` (an S3-compatible bucket), `gcs` (a Google Cloud Storage
    /// bucket), `azure` (an Azure Blob Storage container) — the host signs
    /// their requests — or `fs` (a directory under the daemon's data dir).
    ConnectionKind = crate::connection::ConnectionKind { Http, S3, Gcs, Azure, Fs }
}

/// A new connection. Settings by kind: `http`: `base_url` (required),
/// `auth` (`none`, `bearer`, `basic`, `header`), `username` (basic),
/// `header` (header name); secrets `token`, `password`, `value`. `s3`:
/// `bucket`, `access_key_id` (required), `endpoint`, `region`, `prefix`;
/// secret `secret_access_key`. `gcs`: `bucket` (required), `endpoint` (an
/// emulator's base URL), `prefix`; secret `service_account_key` (the JSON
/// key file). `azure`: `account`, `container` (required), `endpoint`
/// (e.g. Azurite's `http://127.0.0.1:10000/ACCOUNT`), `prefix`; secret
/// `access_key`. `fs`: `path` (relative, no `..`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub name: String,
    pub kind: ConnectionKind,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Sealed at rest and never returned: responses show fingerprints.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl From<NewConnection> for RawConnection {
    fn from(c: NewConnection) -> Self {
        RawConnection {
            name: c.name,
            kind: crate::connection::ConnectionKind::from(c.kind)
                .as_str()
                .to_owned(),
            config: c.config,
            secrets: c.secrets,
        }
    }
}

/// New secret values (fields not given keep theirs) and, optionally, new
/// settings (replacing all of them).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateConnection {
    #[serde(default)]
    pub config: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// A secret field as shown: its name and a keyed fingerprint that changes
/// when the value does, never the value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretInfo {
    pub field: String,
    pub fingerprint: String,
}

/// A connection as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Connection {
    pub name: String,
    pub kind: ConnectionKind,
    pub config: BTreeMap<String, String>,
    pub secrets: Vec<SecretInfo>,
    /// 1 when created; each rotation adds one.
    pub revision: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl From<ConnectionRecord> for Connection {
    fn from(r: ConnectionRecord) -> Self {
        Connection {
            name: r.name,
            kind: r.kind.into(),
            config: r.config,
            secrets: r
                .secrets
                .into_iter()
                .map(|(field, s)| SecretInfo {
                    field,
                    fingerprint: s.fingerprint,
                })
                .collect(),
            revision: r.revision,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
        }
    }
}

/// A tenant's connections, by name (a tenant has few: one page).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<Connection>,
    /// Always null: the list is never paged.
    pub next: Option<String>,
}
