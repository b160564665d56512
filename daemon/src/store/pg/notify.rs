//! Notification targets and deliveries on PostgreSQL (the records are what
//! `store::notify` defines; `pending` is a column so the sender's start
//! reads only what is left to send).

use super::super::{
    keys, DeliveryRecord, DeliveryState, NotifyStore, NotifyTargetRecord, StoreError,
};
use super::statements::Cached;
use super::{column, pg_err, pool_err, record, PgStore};

impl NotifyStore for PgStore {
    fn notify_target_create(
        &self,
        tenant: &str,
        t: &NotifyTargetRecord,
    ) -> Result<bool, StoreError> {
        const OP: &str = "creating a notification target";
        let (tenant, name, rec) = (tenant.to_owned(), t.name.clone(), keys::encode_json(t));
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let n = client
                .execute_cached(
                    "INSERT INTO notify_targets (tenant, name, record) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                    &[&tenant, &name, &rec],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(n == 1)
        })
    }

    fn notify_target_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<NotifyTargetRecord>, StoreError> {
        const OP: &str = "reading a notification target";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT record FROM notify_targets WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| record(OP, &r, 0)).transpose()
        })
    }

    fn notify_target_list(&self, tenant: &str) -> Result<Vec<NotifyTargetRecord>, StoreError> {
        const OP: &str = "listing notification targets";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT record FROM notify_targets WHERE tenant = $1 ORDER BY name",
                    &[&tenant],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn notify_target_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "deleting a notification target";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let n = client
                .execute_cached(
                    "DELETE FROM notify_targets WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(n == 1)
        })
    }

    fn delivery_put(&self, tenant: &str, d: &DeliveryRecord) -> Result<(), StoreError> {
        const OP: &str = "writing a notification delivery";
        let (tenant, id, pending, rec) = (
            tenant.to_owned(),
            d.id as i64,
            d.state == DeliveryState::Pending,
            keys::encode_json(d),
        );
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            client
                .execute_cached(
                    "INSERT INTO deliveries (tenant, id, pending, record) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant, id) DO UPDATE SET pending = $3, record = $4",
                    &[&tenant, &id, &pending, &rec],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
    }

    fn delivery_get(&self, tenant: &str, id: u64) -> Result<Option<DeliveryRecord>, StoreError> {
        const OP: &str = "reading a notification delivery";
        let (tenant, id) = (tenant.to_owned(), id as i64);
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT record FROM deliveries WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| record(OP, &r, 0)).transpose()
        })
    }

    fn delivery_list(
        &self,
        tenant: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        const OP: &str = "listing notification deliveries";
        // Ids are times in microseconds, far below `i64::MAX`.
        let (tenant, before, limit) = (
            tenant.to_owned(),
            before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64),
            limit as i64,
        );
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT record FROM deliveries WHERE tenant = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3",
                    &[&tenant, &before, &limit],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn deliveries_pending(&self) -> Result<Vec<(String, DeliveryRecord)>, StoreError> {
        const OP: &str = "listing pending notification deliveries";
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT tenant, record FROM deliveries WHERE pending ORDER BY id",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| Ok((column::<String>(OP, r, 0)?, record(OP, r, 1)?)))
                .collect()
        })
    }
}
