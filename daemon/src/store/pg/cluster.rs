//! Several daemons on one database: the nodes that share it, the engine
//! lease that decides which of them drives the engine, and fenced handles
//! whose writes the database refuses once their lease is gone
//! (`migrations/V2__cluster.sql`). Every time that decides ownership is
//! the database's clock.

use super::statements::Cached;
use std::time::Duration;

use super::{column, pg_err, pool, pool_err, PgStore, Shared};
use crate::store::StoreError;

/// The lease whose owner runs the engine (and so plans, materializes and
/// executes); the fencing trigger checks this one.
pub const ENGINE_LEASE: &str = "engine";

/// One daemon sharing the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub id: String,
    /// Where other nodes forward API requests.
    pub addr: String,
    pub started_ms: i64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: i64,
    /// Shutting down: finishing its attempts, about to release its lease.
    pub draining: bool,
    /// Attempts it was running at its last heartbeat.
    pub attempts: i32,
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub owner: String,
    /// The fencing token: one more at every change of owner.
    pub epoch: i64,
    /// Negative once expired.
    pub expires_in_ms: i64,
}

/// Node ids travel in connection options and messages: a plain alphabet
/// keeps both unambiguous.
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("node id {id:?} must be 1 to 64 characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!(
            "node id {id:?} may hold only letters, digits, '-', '_', '.' and ':' (found {c:?})"
        ));
    }
    Ok(())
}

/// The `application_name` of a fenced handle's sessions.
fn fenced_name(owner: &str, epoch: i64) -> String {
    format!("tidemark-fenced {owner} {epoch}")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl PgStore {
    /// A handle on the same database whose every write is refused unless
    /// `owner` still holds the engine lease with `epoch`. It has its own
    /// connections (each carries the fence in its session settings), so a
    /// handle of an older epoch stays fenced after its node leads again.
    ///
    /// A write holds a share lock on the lease row until it commits, so a
    /// node stopped inside a transaction (SIGSTOP, a hung VM) would keep
    /// every other node from taking the lease: the database ends such a
    /// session once it has been idle in its transaction for `lease`.
    pub fn fenced(&self, owner: &str, epoch: i64, lease: Duration) -> Result<PgStore, StoreError> {
        check_node_id(owner).map_err(|detail| StoreError::Corrupt {
            op: "fencing the store",
            detail,
        })?;
        let mut config = self.shared.config.clone();
        config.options(format!(
            "-c tidemark.fence_owner={owner} -c tidemark.fence_epoch={epoch} \
             -c idle_in_transaction_session_timeout={}",
            lease.as_millis().max(1)
        ));
        // How the next owner finds this handle's sessions to end them.
        config.application_name(fenced_name(owner, epoch));
        Ok(PgStore {
            shared: std::sync::Arc::new(Shared {
                pool: pool(&config)?,
                handle: self.shared.handle.clone(),
                _runtime: self.shared._runtime.clone(),
                url: self.shared.url.clone(),
                config,
                run_ids: Default::default(),
            }),
        })
    }

    /// Runs a statement-level future on the store's runtime without
    /// blocking the caller's thread (cluster upkeep runs on the daemon's
    /// runtime beside the API).
    async fn on_runtime<T, Fut>(&self, op: &'static str, fut: Fut) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.shared
            .handle
            .spawn(fut)
            .await
            .unwrap_or(Err(StoreError::RuntimeGone { op }))
    }

    /// Runs `f` with a pooled connection on the store's runtime.
    async fn with_client<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.shared.pool.clone();
        self.on_runtime(op, async move {
            let client = pool.get().await.map_err(pool_err(op))?;
            f(client).await
        })
        .await
    }

    /// Records that `id` is alive at `addr` (and whether it drains); nodes
    /// silent for ten minutes are forgotten.
    pub async fn node_heartbeat(
        &self,
        id: &str,
        addr: &str,
        draining: bool,
        attempts: i32,
    ) -> Result<(), StoreError> {
        const OP: &str = "recording a node's heartbeat";
        let (id, addr) = (id.to_owned(), addr.to_owned());
        self.with_client(OP, move |client| async move {
            client
                .execute_cached(
                    "INSERT INTO nodes (id, addr, draining, attempts) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET addr = EXCLUDED.addr, \
                     draining = EXCLUDED.draining, attempts = EXCLUDED.attempts, \
                     heartbeat_at = clock_timestamp()",
                    &[&id, &addr, &draining, &attempts],
                )
                .await
                .map_err(pg_err(OP))?;
            client
                .execute_cached(
                    "DELETE FROM nodes WHERE heartbeat_at < clock_timestamp() - interval '10 minutes'",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
        .await
    }

    /// A node leaving the cluster.
    pub async fn node_remove(&self, id: &str) -> Result<(), StoreError> {
        const OP: &str = "removing a node";
        let id = id.to_owned();
        self.with_client(OP, move |client| async move {
            client
                .execute_cached("DELETE FROM nodes WHERE id = $1", &[&id])
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
        .await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        const OP: &str = "listing nodes";
        self.with_client(OP, move |client| async move {
            let rows = client
                .query_cached(
                    "SELECT id, addr, (extract(epoch FROM started_at) * 1000)::int8, \
                     (extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::int8, \
                     draining, attempts FROM nodes ORDER BY id",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| {
                    Ok(NodeRecord {
                        id: column(OP, r, 0)?,
                        addr: column(OP, r, 1)?,
                        started_ms: column(OP, r, 2)?,
                        heartbeat_age_ms: column(OP, r, 3)?,
                        draining: column(OP, r, 4)?,
                        attempts: column(OP, r, 5)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Takes `name` for `owner` if no one holds it or its lease has
    /// expired, with the next epoch; `None` while someone else holds it.
    pub async fn lease_acquire(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<i64>, StoreError> {
        const OP: &str = "acquiring a lease";
        let (name, owner, ttl) = (name.to_owned(), owner.to_owned(), secs(ttl));
        self.with_client(OP, move |client| async move {
            // A holder stopped inside a transaction (a paused process, a
            // write half sent) keeps its share lock on the lease row and
            // would block the takeover forever: once its lease has lapsed,
            // its sessions are ended (their writes are fenced anyway).
            client
                .execute_cached(
                    "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a, leases l \
                     WHERE l.name = $1 AND l.expires_at <= clock_timestamp() \
                       AND a.application_name = 'tidemark-fenced ' || l.owner || ' ' || l.epoch::text",
                    &[&name],
                )
                .await
                .map_err(pg_err(OP))?;
            // The expiry is computed after the row lock is granted, not
            // taken from the proposed row: the update may have waited for
            // the old holder's session to end, and a lease dated from
            // before that wait could be born lapsed.
            let row = client
                .query_opt_cached(
                    "INSERT INTO leases (name, owner, epoch, expires_at) \
                     VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3)) \
                     ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, \
                     epoch = leases.epoch + 1, \
                     expires_at = clock_timestamp() + make_interval(secs => $3) \
                     WHERE leases.expires_at <= clock_timestamp() RETURNING epoch",
                    &[&name, &owner, &ttl],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| column(OP, &r, 0)).transpose()
        })
        .await
    }

    /// Extends `owner`'s lease of `epoch`; `false` if another owner has
    /// taken it since. A lease that expired but that no one took is still
    /// the owner's: its epoch, and so every fence, is unchanged.
    pub async fn lease_renew(
        &self,
        name: &str,
        owner: &str,
        epoch: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "renewing a lease";
        let (name, owner, ttl) = (name.to_owned(), owner.to_owned(), secs(ttl));
        self.with_client(OP, move |client| async move {
            let n = client
                .execute_cached(
                    "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $4) \
                     WHERE name = $1 AND owner = $2 AND epoch = $3",
                    &[&name, &owner, &epoch, &ttl],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(n == 1)
        })
        .await
    }

    /// Ends `owner`'s lease at once, so another node need not wait for it
    /// to expire.
    pub async fn lease_release(
        &self,
        name: &str,
        owner: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "releasing a lease";
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.with_client(OP, move |client| async move {
            client
                .execute_cached(
                    "UPDATE leases SET expires_at = clock_timestamp() \
                     WHERE name = $1 AND owner = $2 AND epoch = $3",
                    &[&name, &owner, &epoch],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
        .await
    }

    pub async fn lease_get(&self, name: &str) -> Result<Option<LeaseRecord>, StoreError> {
        const OP: &str = "reading a lease";
        let name = name.to_owned();
        self.with_client(OP, move |client| async move {
            let row = client
                .query_opt_cached(
                    "SELECT owner, epoch, \
                     (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::int8 \
                     FROM leases WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| {
                Ok(LeaseRecord {
                    owner: column(OP, &r, 0)?,
                    epoch: column(OP, &r, 1)?,
                    expires_in_ms: column(OP, &r, 2)?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Tables of engine state the fencing trigger does not guard: a new
    /// migration that forgets it shows up here (tests expect none).
    pub async fn unfenced_tables(&self) -> Result<Vec<String>, StoreError> {
        const OP: &str = "listing unfenced tables";
        self.with_client(OP, move |client| async move {
            let rows = client
                .query_cached(
                    "SELECT t.tablename::text FROM pg_tables t \
                     WHERE t.schemaname = current_schema() \
                       AND t.tablename NOT IN ('nodes', 'leases', 'refinery_schema_history') \
                       AND NOT EXISTS (SELECT 1 FROM pg_trigger g \
                          WHERE g.tgrelid = (quote_ident(t.schemaname) || '.' || quote_ident(t.tablename))::regclass \
                            AND g.tgname = 'fence') \
                     ORDER BY 1",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| column(OP, r, 0)).collect()
        })
        .await
    }
}
