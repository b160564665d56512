//! Versioned records (plugins and workflows): the next number is claimed
//! by the insert itself, under the primary key `(tenant, name, version)`.

use super::super::records::{PluginMeta, StoredWorkflow};
use super::super::{keys, StoreError};
use super::statements::Cached;
use super::{pg_err, pool_err, record, PgStore};

/// What a push stores given the newest version (if any).
pub(super) enum Push<T> {
    New(T),
    Same(T),
}

/// A record with a version number [`PgStore::claim_version`] allocates.
pub(super) trait Versioned:
    serde::Serialize + serde::de::DeserializeOwned + Send + 'static
{
    const TABLE: Versions;
    fn version(&self) -> u32;
    /// What the row's `digest` column holds (plugins only).
    fn digest(&self) -> Option<&str>;
}

impl Versioned for PluginMeta {
    const TABLE: Versions = Versions::Plugins;
    fn version(&self) -> u32 {
        self.version
    }
    fn digest(&self) -> Option<&str> {
        Some(&self.digest)
    }
}

impl Versioned for StoredWorkflow {
    const TABLE: Versions = Versions::Workflows;
    fn version(&self) -> u32 {
        self.version
    }
    fn digest(&self) -> Option<&str> {
        None
    }
}

impl PgStore {
    /// Stores the record `next` makes from the newest version as the next
    /// one. The number is claimed by the insert itself: of concurrent
    /// writers only one inserts each `(tenant, name, version)` (the primary
    /// key), and a loser reads again and retries.
    pub(super) fn claim_version<T, F>(
        &self,
        op: &'static str,
        tenant: &str,
        name: &str,
        next: F,
    ) -> Result<T, StoreError>
    where
        T: Versioned,
        F: Fn(Option<T>) -> Push<T> + Send + 'static,
    {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(op, |pool| async move {
            let client = pool.get().await.map_err(pool_err(op))?;
            loop {
                let newest = client
                    .query_opt_cached(T::TABLE.newest(), &[&tenant, &name])
                    .await
                    .map_err(pg_err(op))?;
                let newest: Option<T> = newest.map(|r| record(op, &r, 0)).transpose()?;
                let value = match next(newest) {
                    Push::Same(existing) => return Ok(existing),
                    Push::New(r) => r,
                };
                let version = i64::from(value.version());
                let json = keys::encode_json(&value);
                let inserted = match value.digest() {
                    Some(digest) => client
                        .execute_cached(
                            "INSERT INTO plugins (tenant, name, version, record, digest) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                            &[&tenant, &name, &version, &json, &digest],
                        )
                        .await
                        .map_err(pg_err(op))?,
                    None => client
                        .execute_cached(
                            "INSERT INTO workflows (tenant, name, version, record) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                            &[&tenant, &name, &version, &json],
                        )
                        .await
                        .map_err(pg_err(op))?,
                };
                if inserted == 1 {
                    return Ok(value);
                }
            }
        })
    }
}

/// The two tables of versioned records.
#[derive(Clone, Copy)]
pub(super) enum Versions {
    Plugins,
    Workflows,
}

impl Versions {
    pub(super) fn newest(self) -> &'static str {
        match self {
            Versions::Plugins => {
                "SELECT record FROM plugins WHERE tenant = $1 AND name = $2 \
                 ORDER BY version DESC LIMIT 1"
            }
            Versions::Workflows => {
                "SELECT record FROM workflows WHERE tenant = $1 AND name = $2 \
                 ORDER BY version DESC LIMIT 1"
            }
        }
    }
}
