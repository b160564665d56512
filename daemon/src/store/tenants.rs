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

const TENANT: u8 = b'T';
const TOKEN: u8 = b'K';
/// Hash → token: looked up before the tenant is known, so this index is the
/// one key family that does not start with a tenant.
const TOKEN_HASH: u8 = b'h';

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
        let mut batch = sled::Batch::default();
        for t in self.token_list(name)? {
            batch.remove(hash_key(&t.hash));
        }
        // Every tenant-scoped record kind, and the tenant record itself.
        for kind in [
            TENANT,
            TOKEN,
            keys::DATASET,
            keys::PLUGIN,
            keys::WORKFLOW,
            keys::CURSOR,
            keys::RUN,
            keys::WINDOW,
            keys::RUN_BY_WINDOW,
            keys::ACTIVE,
            keys::ATTEMPT,
            keys::USAGE,
            keys::IDEMPOTENCY,
            super::backfills::BACKFILL,
            super::backfills::BACKFILL_WINDOW,
            super::backfills::BACKFILL_TILE,
            super::backfills::BACKFILL_TILE_WIDTH,
        ] {
            for k in self
                .state
                .scan_prefix(keys::tenant_prefix(kind, name))
                .keys()
            {
                batch.remove(k.map_err(backend(OP))?);
            }
        }
        self.state.apply_batch(batch).map_err(backend(OP))?;
        let mut checkpoint_prefix = name.as_bytes().to_vec();
        checkpoint_prefix.push(0);
        for (tree, prefix) in [
            (&self.checkpoints, checkpoint_prefix),
            (&self.blobs, keys::tenant_prefix(b'b', name)),
        ] {
            let mut batch = sled::Batch::default();
            for k in tree.scan_prefix(prefix).keys() {
                batch.remove(k.map_err(backend(OP))?);
            }
            tree.apply_batch(batch).map_err(backend(OP))?;
        }
        self.flush(OP)?;
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
