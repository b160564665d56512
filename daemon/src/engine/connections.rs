//! A tenant's connections as the API sees them: created with their secrets
//! sealed, listed and shown without them, rotated without a new workflow
//! version, deleted unless a workflow names them.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{Engine, EngineError};
use crate::connection::{ConnectionError, ConnectionSpec, RawConnection};
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
        let spec: ConnectionSpec = check.validate().map_err(ConnectionOpError::from)?;
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

    /// Deletes a connection no workflow names.
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
        let Some(s) = record.secrets.get(field) else {
            return Ok(None);
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&s.sealed)
            .map_err(|_| crate::secrets::SecretsError::Open {
                owner: format!("{tenant}/{name}"),
                field: field.to_owned(),
            })
            .map_err(ConnectionOpError::from)?;
        let plain = self
            .inner
            .sealing_key
            .open(&secret_owner(tenant, name, field), field, &sealed)
            .map_err(ConnectionOpError::from)?;
        Ok(Some(plain))
    }
}

/// What a sealed value is bound to: moved anywhere else, it does not open.
pub(super) fn secret_owner(tenant: &str, name: &str, field: &str) -> String {
    format!("{tenant}\0{name}\0{field}")
}
