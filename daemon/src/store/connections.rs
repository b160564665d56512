//! Connections as stored: settings in the clear, each secret sealed (see
//! [`crate::secrets`]) beside its fingerprint. The store never sees a
//! secret in the clear.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys::{self, CONNECTION};
use super::sled_store::{backend, SledStore};
use super::StoreError;
use crate::connection::ConnectionKind;

/// One sealed secret field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Base64 of the sealed value (format byte, nonce, ciphertext and tag).
    pub sealed: String,
    pub fingerprint: String,
}

/// A connection as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub name: String,
    pub kind: ConnectionKind,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SealedSecret>,
    /// 1 when created; each rotation of its secrets adds one.
    pub revision: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A tenant's connections.
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection; `false` if one of that name exists.
    fn connection_create(&self, tenant: &str, c: &ConnectionRecord) -> Result<bool, StoreError>;
    /// Replaces a connection if its stored revision is still `c.revision -
    /// 1` (compare-and-swap); `false` if it changed or is gone.
    fn connection_update(&self, tenant: &str, c: &ConnectionRecord) -> Result<bool, StoreError>;
    fn connection_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Every connection of the tenant, by name.
    fn connection_list(&self, tenant: &str) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// `false` if there was no such connection.
    fn connection_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;
}

fn key(tenant: &str, name: &str) -> Vec<u8> {
    keys::named_prefix(CONNECTION, tenant, name)
}

impl ConnectionStore for SledStore {
    fn connection_create(&self, tenant: &str, c: &ConnectionRecord) -> Result<bool, StoreError> {
        const OP: &str = "creating a connection";
        let swapped = self
            .state
            .compare_and_swap(
                key(tenant, &c.name),
                None as Option<&[u8]>,
                Some(keys::encode_json(c)),
            )
            .map_err(backend(OP))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.flush(OP)?;
        Ok(true)
    }

    fn connection_update(&self, tenant: &str, c: &ConnectionRecord) -> Result<bool, StoreError> {
        const OP: &str = "updating a connection";
        let k = key(tenant, &c.name);
        let Some(old) = self.state.get(&k).map_err(backend(OP))? else {
            return Ok(false);
        };
        let current: ConnectionRecord = keys::decode_json(OP, &old)?;
        if current.revision + 1 != c.revision {
            return Ok(false);
        }
        let swapped = self
            .state
            .compare_and_swap(k, Some(old), Some(keys::encode_json(c)))
            .map_err(backend(OP))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.flush(OP)?;
        Ok(true)
    }

    fn connection_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        const OP: &str = "reading a connection";
        match self.state.get(key(tenant, name)).map_err(backend(OP))? {
            None => Ok(None),
            Some(v) => keys::decode_json(OP, &v).map(Some),
        }
    }

    fn connection_list(&self, tenant: &str) -> Result<Vec<ConnectionRecord>, StoreError> {
        const OP: &str = "listing connections";
        self.state
            .scan_prefix(keys::tenant_prefix(CONNECTION, tenant))
            .map(|i| keys::decode_json(OP, &i.map_err(backend(OP))?.1))
            .collect()
    }

    fn connection_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "deleting a connection";
        let old = self.state.remove(key(tenant, name)).map_err(backend(OP))?;
        self.flush(OP)?;
        Ok(old.is_some())
    }
}
