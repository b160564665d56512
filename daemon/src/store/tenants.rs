//! Tenants and their API tokens. Only token hashes are stored.

use serde::{Deserialize, Serialize};

use super::keys;
use super::sled_store::{backend, SledStore};
use super::StoreError;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: String,
    pub created_ms: i64,
    /// Quota overrides; the rest come from configuration.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub quotas: crate::quota::Overrides,
    /// The egress allowlist: `scheme://host[:port]` patterns (validated
    /// before they are stored) a task's `allowed_hosts` must stay within.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
}

/// An API token of a tenant; `hash` is the SHA-256 of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: u64,
    pub tenant: String,
    pub label: String,
    pub hash: String,
    pub created_ms: i64,
    pub revoked: bool,
}

/// Tenant and token records.
pub trait TenantStore: Send + Sync {
    /// Creates a tenant with its first token; `false` if it already exists.
    fn tenant_create(
        &self,
        tenant: &TenantRecord,
        first_token: &TokenRecord,
    ) -> Result<bool, StoreError>;
    fn tenant_get(&self, name: &str) -> Result<Option<TenantRecord>, StoreError>;
    /// Replaces an existing tenant's record (its quota overrides).
    fn tenant_update(&self, tenant: &TenantRecord) -> Result<(), StoreError>;
    fn tenant_list(&self) -> Result<Vec<TenantRecord>, StoreError>;
    /// Deletes the tenant, its tokens and every record it owns.
    fn tenant_delete(&self, name: &str) -> Result<bool, StoreError>;
    fn token_put(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// The token with this hash, revoked or not.
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    fn token_list(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError>;
    fn next_id(&self) -> Result<u64, StoreError>;
}

use super::keys::{TENANT, TENANT_TOMBSTONE, TOKEN, TOKEN_HASH};

/// Keys removed per batch when a tenant is deleted: a tenant with millions
/// of records never builds one huge batch in memory.
const DELETE_BATCH: usize = 10_000;

fn hash_key(hash: &str) -> Vec<u8> {
    let mut k = vec![TOKEN_HASH];
    k.extend_from_slice(hash.as_bytes());
    k
}

fn token_key(t: &TokenRecord) -> Vec<u8> {
    keys::u64_key(keys::tenant_prefix(TOKEN, &t.tenant), t.id)
}

impl TenantStore for SledStore {
    fn tenant_create(
        &self,
        tenant: &TenantRecord,
        first: &TokenRecord,
    ) -> Result<bool, StoreError> {
        const OP: &str = "creating a tenant";
        // A deletion of the same name interrupted by a crash is finished
        // first: the new tenant must not inherit a single old record.
        self.finish_tenant_deletion(&tenant.name)?;
        let key = keys::tenant_prefix(TENANT, &tenant.name);
        if self.state.get(&key).map_err(backend(OP))?.is_some() {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        batch.insert(key, keys::encode_json(tenant));
        batch.insert(token_key(first), keys::encode_json(first));
        batch.insert(hash_key(&first.hash), keys::encode_json(first));
        self.state.apply_batch(batch).map_err(backend(OP))?;
        self.flush(OP)?;
        Ok(true)
    }

    fn tenant_get(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        const OP: &str = "reading a tenant";
        match self
            .state
            .get(keys::tenant_prefix(TENANT, name))
            .map_err(backend(OP))?
        {
            None => Ok(None),
            Some(v) => keys::decode_json(OP, &v).map(Some),
        }
    }

    fn tenant_update(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        const OP: &str = "updating a tenant";
        self.state
            .insert(
                keys::tenant_prefix(TENANT, &tenant.name),
                keys::encode_json(tenant),
            )
            .map_err(backend(OP))?;
        self.flush(OP)
    }

    fn tenant_list(&self) -> Result<Vec<TenantRecord>, StoreError> {
        const OP: &str = "listing tenants";
        self.state
            .scan_prefix([TENANT])
            .map(|i| keys::decode_json(OP, &i.map_err(backend(OP))?.1))
            .collect()
    }

    fn tenant_delete(&self, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "deleting a tenant";
        if self.tenant_get(name)?.is_none() {
            return Ok(false);
        }
        // One atomic step makes the tenant gone (no record, no token finds
        // it) and leaves a durable tombstone; the bulk of its records then
        // goes in bounded batches, and `open` finishes the job if a crash
        // interrupts it.
        let mut batch = sled::Batch::default();
        for t in self.token_list(name)? {
            batch.remove(hash_key(&t.hash));
        }
        batch.remove(keys::tenant_prefix(TENANT, name));
        batch.insert(
            keys::tenant_prefix(TENANT_TOMBSTONE, name),
            keys::encode_value(&[]),
        );
        self.state.apply_batch(batch).map_err(backend(OP))?;
        self.flush(OP)?;
        self.finish_tenant_deletion(name)?;
        Ok(true)
    }

    fn token_put(&self, token: &TokenRecord) -> Result<(), StoreError> {
        const OP: &str = "storing a token";
        let mut batch = sled::Batch::default();
        batch.insert(token_key(token), keys::encode_json(token));
        batch.insert(hash_key(&token.hash), keys::encode_json(token));
        self.state.apply_batch(batch).map_err(backend(OP))?;
        self.flush(OP)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        const OP: &str = "checking a token";
        match self.state.get(hash_key(hash)).map_err(backend(OP))? {
            None => Ok(None),
            Some(v) => keys::decode_json(OP, &v).map(Some),
        }
    }

    fn token_list(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        const OP: &str = "listing tokens";
        self.state
            .scan_prefix(keys::tenant_prefix(TOKEN, tenant))
            .map(|i| keys::decode_json(OP, &i.map_err(backend(OP))?.1))
            .collect()
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.db
            .generate_id()
            .map(|i| i + 1)
            .map_err(backend("allocating an id"))
    }
}

impl SledStore {
    /// Removes every record of a tenant whose tombstone exists, then the
    /// tombstone. Idempotent: safe to repeat after a crash at any point.
    pub(super) fn finish_tenant_deletion(&self, name: &str) -> Result<(), StoreError> {
        const OP: &str = "deleting a tenant's records";
        let tombstone = keys::tenant_prefix(TENANT_TOMBSTONE, name);
        if self.state.get(&tombstone).map_err(backend(OP))?.is_none() {
            return Ok(());
        }
        // Its runs' index entries go below: nothing may remember them.
        self.run_index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(tenant, _), _| tenant != name);
        let mut checkpoint_prefix = name.as_bytes().to_vec();
        checkpoint_prefix.push(0);
        let mut scopes: Vec<(&sled::Tree, Vec<u8>)> = keys::KeyKind::TENANT_SCOPED
            .iter()
            .map(|k| (&self.state, keys::tenant_prefix(k.byte(), name)))
            .collect();
        scopes.push((&self.checkpoints, checkpoint_prefix));
        scopes.push((&self.blobs, keys::tenant_prefix(keys::PLUGIN_BLOB, name)));
        for (tree, prefix) in scopes {
            loop {
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for k in tree.scan_prefix(&prefix).keys().take(DELETE_BATCH) {
                    batch.remove(k.map_err(backend(OP))?);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                tree.apply_batch(batch).map_err(backend(OP))?;
            }
        }
        self.state.remove(&tombstone).map_err(backend(OP))?;
        self.flush(OP)
    }

    /// Finishes deletions a crash interrupted (called when the store opens).
    pub(super) fn finish_tenant_deletions(&self) -> Result<(), StoreError> {
        const OP: &str = "listing tenant tombstones";
        let names: Vec<String> = self
            .state
            .scan_prefix([TENANT_TOMBSTONE])
            .keys()
            .map(|k| {
                let k = k.map_err(backend(OP))?;
                Ok(String::from_utf8_lossy(&k[1..k.len().saturating_sub(1)]).into_owned())
            })
            .collect::<Result<_, StoreError>>()?;
        for name in names {
            tracing::info!(tenant = name, "finishing an interrupted tenant deletion");
            self.finish_tenant_deletion(&name)?;
        }
        Ok(())
    }
}
