//! Tenants and token hashes on PostgreSQL. Deleting a tenant is one
//! transaction over every table with a `tenant` column, found in the
//! catalog, so a table added later cannot be forgotten.

use super::super::{keys, StoreError, TenantRecord, TenantStore, TokenRecord};
use super::statements::Cached;
use super::{column, pg_err, pool_err, record, PgStore};

impl TenantStore for PgStore {
    fn tenant_create(
        &self,
        tenant: &TenantRecord,
        first: &TokenRecord,
    ) -> Result<bool, StoreError> {
        const OP: &str = "creating a tenant";
        let (name, rec) = (tenant.name.clone(), keys::encode_json(tenant));
        let token = first.clone();
        self.run(OP, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(OP))?;
            let tx = client.transaction().await.map_err(pg_err(OP))?;
            let created = tx
                .execute_cached(
                    "INSERT INTO tenants (name, record) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&name, &rec],
                )
                .await
                .map_err(pg_err(OP))?;
            if created == 0 {
                return Ok(false);
            }
            put_token(&tx, OP, &token).await?;
            tx.commit().await.map_err(pg_err(OP))?;
            Ok(true)
        })
    }

    fn tenant_get(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        const OP: &str = "reading a tenant";
        let name = name.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached("SELECT record FROM tenants WHERE name = $1", &[&name])
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| record(OP, &r, 0)).transpose()
        })
    }

    fn tenant_update(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        const OP: &str = "updating a tenant";
        let (name, rec) = (tenant.name.clone(), keys::encode_json(tenant));
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            client
                .execute_cached(
                    "INSERT INTO tenants (name, record) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
                    &[&name, &rec],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
    }

    fn tenant_list(&self) -> Result<Vec<TenantRecord>, StoreError> {
        const OP: &str = "listing tenants";
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached("SELECT record FROM tenants ORDER BY name", &[])
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn tenant_delete(&self, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "deleting a tenant";
        let name = name.to_owned();
        self.run(OP, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(OP))?;
            let tx = client.transaction().await.map_err(pg_err(OP))?;
            let existed = tx
                .execute_cached("DELETE FROM tenants WHERE name = $1", &[&name])
                .await
                .map_err(pg_err(OP))?;
            if existed == 0 {
                return Ok(false);
            }
            let tables = tx
                .query_cached(
                    "SELECT table_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND column_name = 'tenant' \
                     ORDER BY table_name",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            for row in &tables {
                let table: String = column(OP, row, 0)?;
                // A name from our own schema's catalog, quoted as an identifier.
                let sql = format!(
                    "DELETE FROM \"{}\" WHERE tenant = $1",
                    table.replace('"', "\"\"")
                );
                tx.execute_cached(sql.as_str(), &[&name])
                    .await
                    .map_err(pg_err(OP))?;
            }
            tx.commit().await.map_err(pg_err(OP))?;
            Ok(true)
        })
    }

    fn token_put(&self, token: &TokenRecord) -> Result<(), StoreError> {
        const OP: &str = "storing a token";
        let token = token.clone();
        self.run(OP, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(OP))?;
            let tx = client.transaction().await.map_err(pg_err(OP))?;
            put_token(&tx, OP, &token).await?;
            tx.commit().await.map_err(pg_err(OP))
        })
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        const OP: &str = "checking a token";
        let hash = hash.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT record FROM tokens WHERE hash = $1 ORDER BY tenant, id LIMIT 1",
                    &[&hash],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| record(OP, &r, 0)).transpose()
        })
    }

    fn token_list(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        const OP: &str = "listing tokens";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT record FROM tokens WHERE tenant = $1 ORDER BY id",
                    &[&tenant],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.next_id_from_sequence("allocating an id")
    }
}

async fn put_token(
    tx: &deadpool_postgres::Transaction<'_>,
    op: &'static str,
    t: &TokenRecord,
) -> Result<(), StoreError> {
    tx.execute_cached(
        "INSERT INTO tokens (tenant, id, hash, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, id) DO UPDATE SET hash = EXCLUDED.hash, record = EXCLUDED.record",
        &[&t.tenant, &(t.id as i64), &t.hash, &keys::encode_json(t)],
    )
    .await
    .map_err(pg_err(op))?;
    Ok(())
}
