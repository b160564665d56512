//! A tenant's connections as the API sees them: created with their secrets
//! sealed, listed and shown without them, rotated without a new workflow
//! version, deleted unless a workflow names them.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{Engine, EngineError, Inner};
use crate::connection::{ConnectionError, ConnectionKind, ConnectionSpec, RawConnection};
use crate::egress::{Auth, Credential, Credentials};
use crate::store::{ConnectionRecord, SealedSecret};

/// Why a connection operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionOpError {
    #[error("invalid connection: {0}")]
    Invalid(#[from] ConnectionError),
    #[error("connection {0:?} already exists; rotate its secrets or delete it first")]
    Exists(String),
    #[error("connection {0:?} not found")]
    NotFound(String),
    #[error("connection {0:?} changed meanwhile; try again")]
    Conflict(String),
    #[error("connection {name:?} is used by workflows {workflows:?}; change them first")]
    InUse {
        name: String,
        workflows: Vec<String>,
    },
    #[error(
        "connection {name:?} signs the notifications of targets {targets:?}; delete those targets first"
    )]
    SignsTargets { name: String, targets: Vec<String> },
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

impl Engine {
    fn seal_all(
        &self,
        tenant: &str,
        name: &str,
        secrets: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, SealedSecret>, ConnectionOpError> {
        let key = &self.inner.sealing_key;
        let b64 = base64::engine::general_purpose::STANDARD;
        secrets
            .iter()
            .map(|(field, value)| {
                let owner = secret_owner(tenant, name, field);
                Ok((
                    field.clone(),
                    SealedSecret {
                        sealed: b64.encode(key.seal(&owner, value.as_bytes())?),
                        fingerprint: key.fingerprint(value.as_bytes()),
                    },
                ))
            })
            .collect()
    }

    /// Validates a connection, seals its secrets and stores it.
    pub fn create_connection(
        &self,
        tenant: &str,
        raw: &RawConnection,
    ) -> Result<ConnectionRecord, EngineError> {
        let spec = raw.validate().map_err(ConnectionOpError::from)?;
        let now = self.inner.clock.now_ms();
        let record = ConnectionRecord {
            name: spec.name.clone(),
            kind: spec.kind,
            config: spec.config.clone(),
            secrets: self.seal_all(tenant, &spec.name, &spec.secrets)?,
            revision: 1,
            created_ms: now,
            updated_ms: now,
        };
        if !self.inner.store.connection_create(tenant, &record)? {
            return Err(ConnectionOpError::Exists(spec.name).into());
        }
        tracing::info!(
            tenant,
            connection = record.name,
            kind = record.kind.as_str(),
            "connection created"
        );
        Ok(record)
    }

    pub fn connections(&self, tenant: &str) -> Result<Vec<ConnectionRecord>, EngineError> {
        Ok(self.inner.store.connection_list(tenant)?)
    }

    pub fn connection(&self, tenant: &str, name: &str) -> Result<ConnectionRecord, EngineError> {
        self.inner
            .store
            .connection_get(tenant, name)?
            .ok_or_else(|| ConnectionOpError::NotFound(name.to_owned()).into())
    }

    /// Replaces the given secret fields (others stay) and, if given, the
    /// settings. Workflows that name the connection use the new values from
    /// their next attempt on, without a new version.
    pub fn rotate_connection(
        &self,
        tenant: &str,
        name: &str,
        config: Option<BTreeMap<String, String>>,
        secrets: BTreeMap<String, String>,
    ) -> Result<ConnectionRecord, EngineError> {
        let current = self.connection(tenant, name)?;
        if secrets.is_empty() && config.is_none() {
            return Err(ConnectionOpError::Invalid(ConnectionError {
                field: "secrets".into(),
                message: "give at least one secret (or the settings) to rotate".into(),
            })
            .into());
        }
        // Validate the result as a whole: the secrets kept are known by
        // name only, which is all the rules between fields need.
        let mut check = RawConnection {
            name: name.to_owned(),
            kind: current.kind.as_str().to_owned(),
            config: config.clone().unwrap_or_else(|| current.config.clone()),
            secrets: current
                .secrets
                .keys()
                .map(|k| (k.clone(), "kept".to_owned()))
                .collect(),
        };
        check.secrets.extend(secrets.clone());
        let kept: Vec<&str> = current
            .secrets
            .keys()
            .filter(|k| !secrets.contains_key(*k))
            .map(String::as_str)
            .collect();
        let spec: ConnectionSpec = check
            .validate_keeping(&kept)
            .map_err(ConnectionOpError::from)?;
        let mut record = current.clone();
        record.config = spec.config;
        record
            .secrets
            .extend(self.seal_all(tenant, name, &secrets)?);
        record.revision = current.revision + 1;
        record.updated_ms = self.inner.clock.now_ms();
        if !self.inner.store.connection_update(tenant, &record)? {
            return Err(ConnectionOpError::Conflict(name.to_owned()).into());
        }
        tracing::info!(
            tenant,
            connection = name,
            revision = record.revision,
            "connection rotated"
        );
        Ok(record)
    }

    /// Deletes a connection no workflow names and no notification target
    /// signs with.
    pub fn delete_connection(&self, tenant: &str, name: &str) -> Result<(), EngineError> {
        let users: Vec<String> = {
            let st = self.inner.lock();
            st.heads
                .iter()
                .filter(|((t, _), l)| t == tenant && l.def.connections.iter().any(|c| c == name))
                .map(|((_, n), _)| n.clone())
                .collect()
        };
        if !users.is_empty() {
            return Err(ConnectionOpError::InUse {
                name: name.to_owned(),
                workflows: users,
            }
            .into());
        }
        // A target whose signing secret is gone could only fail its
        // deliveries.
        let targets: Vec<String> = self
            .inner
            .store
            .notify_target_list(tenant)?
            .into_iter()
            .filter(|t| t.connection == name)
            .map(|t| t.name)
            .collect();
        if !targets.is_empty() {
            return Err(ConnectionOpError::SignsTargets {
                name: name.to_owned(),
                targets,
            }
            .into());
        }
        if !self.inner.store.connection_delete(tenant, name)? {
            return Err(ConnectionOpError::NotFound(name.to_owned()).into());
        }
        tracing::info!(tenant, connection = name, "connection deleted");
        Ok(())
    }

    /// A connection's secret in the clear, for the host side of an attempt
    /// that uses it (never for a response).
    pub fn open_secret(
        &self,
        tenant: &str,
        name: &str,
        field: &str,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let record = self.connection(tenant, name)?;
        Ok(self.inner.open_secret(tenant, &record, field)?)
    }
}

impl Inner {
    pub(super) fn open_secret(
        &self,
        tenant: &str,
        record: &ConnectionRecord,
        field: &str,
    ) -> Result<Option<Vec<u8>>, ConnectionOpError> {
        open_sealed(&self.sealing_key, tenant, record, field)
    }

    /// The credentials of the `http` connections `names` (a workflow's
    /// `connections`), their secrets opened now: a rotation applies from
    /// the next attempt on. The error names the connection and the field,
    /// never a value.
    pub(super) fn http_credentials(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<Credentials, String> {
        let mut list = Vec::new();
        for name in names {
            let record = match self.store.connection_get(tenant, name) {
                Ok(Some(r)) => r,
                Ok(None) => return Err(format!("connection {name:?} not found")),
                Err(e) => return Err(format!("reading connection {name:?}: {e}")),
            };
            if record.kind != ConnectionKind::Http {
                continue;
            }
            let config = |k: &str| record.config.get(k).map(String::as_str);
            let secret = |field: &str| -> Result<Vec<u8>, String> {
                match self.open_secret(tenant, &record, field) {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err(format!(
                        "connection {name:?}: secret field {field:?} is missing"
                    )),
                    Err(e) => Err(format!(
                        "connection {name:?}: secret field {field:?} cannot be opened: {e}"
                    )),
                }
            };
            let base_url = config("base_url").unwrap_or_default();
            let (token, password, value);
            let auth = match config("auth").unwrap_or("none") {
                "none" => continue,
                "bearer" => {
                    token = secret("token")?;
                    Auth::Bearer { token: &token }
                }
                "basic" => {
                    password = secret("password")?;
                    Auth::Basic {
                        username: config("username").unwrap_or_default(),
                        password: &password,
                    }
                }
                "header" => {
                    value = secret("value")?;
                    Auth::Header {
                        name: config("header").unwrap_or_default(),
                        value: &value,
                    }
                }
                other => {
                    return Err(format!(
                        "connection {name:?}: config.auth: unknown kind {other:?}"
                    ))
                }
            };
            list.push(Credential::new(name, base_url, auth).map_err(|e| e.to_string())?);
        }
        Ok(Credentials::new(list))
    }
}

/// A connection's secret field in the clear (`None` if it has no such
/// field); for the engine and the notification sender, never a response.
pub(super) fn open_sealed(
    key: &crate::secrets::SealingKey,
    tenant: &str,
    record: &ConnectionRecord,
    field: &str,
) -> Result<Option<Vec<u8>>, ConnectionOpError> {
    let name = &record.name;
    let Some(s) = record.secrets.get(field) else {
        return Ok(None);
    };
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&s.sealed)
        .map_err(|_| crate::secrets::SecretsError::Open {
            owner: format!("{tenant}/{name}"),
            field: field.to_owned(),
        })?;
    let plain = key.open(&secret_owner(tenant, name, field), field, &sealed)?;
    Ok(Some(plain))
}

/// What a sealed value is bound to: moved anywhere else, it does not open.
fn secret_owner(tenant: &str, name: &str, field: &str) -> String {
    format!("{tenant}\0{name}\0{field}")
}
