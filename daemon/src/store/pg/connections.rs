//! Connections on PostgreSQL: settings and sealed secrets, never a secret
//! in the clear (the record is what `store::connections` defines).

use super::super::{keys, ConnectionRecord, ConnectionStore, StoreError};
use super::statements::Cached;
use super::{pg_err, pool_err, record, PgStore};

impl ConnectionStore for PgStore {
    fn connection_create(&self, tenant: &str, c: &ConnectionRecord) -> Result<bool, StoreError> {
        const OP: &str = "creating a connection";
        let (tenant, name, rev, rec) = (
            tenant.to_owned(),
            c.name.clone(),
            i64::from(c.revision),
            keys::encode_json(c),
        );
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let n = client
                .execute_cached(
                    "INSERT INTO connections (tenant, name, revision, record) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&tenant, &name, &rev, &rec],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(n == 1)
        })
    }

    fn connection_update(&self, tenant: &str, c: &ConnectionRecord) -> Result<bool, StoreError> {
        const OP: &str = "updating a connection";
        let (tenant, name, rev, rec) = (
            tenant.to_owned(),
            c.name.clone(),
            i64::from(c.revision),
            keys::encode_json(c),
        );
        // Compare-and-swap on the revision, in the update's own condition.
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let n = client
                .execute_cached(
                    "UPDATE connections SET revision = $3, record = $4 \
                     WHERE tenant = $1 AND name = $2 AND revision + 1 = $3",
                    &[&tenant, &name, &rev, &rec],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(n == 1)
        })
    }

    fn connection_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        const OP: &str = "reading a connection";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT record FROM connections WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| record(OP, &r, 0)).transpose()
        })
    }

    fn connection_list(&self, tenant: &str) -> Result<Vec<ConnectionRecord>, StoreError> {
        const OP: &str = "listing connections";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT record FROM connections WHERE tenant = $1 ORDER BY name",
                    &[&tenant],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn connection_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "deleting a connection";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let n = client
                .execute_cached(
                    "DELETE FROM connections WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(n == 1)
        })
    }
}
