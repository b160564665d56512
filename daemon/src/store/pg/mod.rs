//! The store on PostgreSQL: the same traits as [`super::SledStore`], over
//! a pool of connections, so several daemons can later share one database
//! (see `docs/scale-out.md`).
//!
//! The traits are synchronous today (the engine calls them from async code
//! and wasm host functions call them from attempts). `PgStore` owns a small
//! multi-thread tokio runtime: each operation is spawned there and the
//! caller blocks on a channel for its result, which is safe from any thread,
//! including a worker of the daemon's own runtime (it blocks that worker as
//! a sled fsync does). The traits become async later and this bridge goes.
//!
//! Files by the records they keep: `state.rs` (plugins, workflows, runs,
//! windows, attempts; `versions.rs` allocates version numbers), `changes.rs` (`apply`, the one atomic state change),
//! `data.rs` (checkpoints and datasets), `backfills.rs`, `tenants.rs`,
//! `outputs.rs`, `connections.rs`, `notify.rs`; `url.rs` reads and redacts connection
//! strings.

mod backfills;
mod changes;
mod cluster;
mod connections;
mod data;
mod notify;
mod outputs;
mod state;
mod statements;
mod tenants;
mod url;
mod versions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};

use super::StoreError;

pub use cluster::{check_node_id, LeaseRecord, NodeRecord, ENGINE_LEASE};
pub use url::{check_url, redact_url};

refinery::embed_migrations!("src/store/pg/migrations");

/// Connections a store keeps open: enough for the engine, the API and
/// attempts of one daemon at once.
const POOL_SIZE: usize = 16;
/// How long opening waits for the database to answer (an address that drops
/// packets must not hang start-up).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The store in a PostgreSQL database. Cheap to clone: clones share the
/// pool and the runtime.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    handle: tokio::runtime::Handle,
    /// Shared with fenced handles made from this store.
    _runtime: Arc<OwnedRuntime>,
    /// The connection string without its password, for messages.
    url: String,
    /// What connections are made from (fenced handles add settings).
    config: tokio_postgres::Config,
    /// Run ids taken from the sequence in blocks and not handed out yet.
    /// Each handle (a fenced one per leadership term) has its own, taken
    /// after every block before it, so the ids one engine hands out only
    /// grow, as the window index needs.
    run_ids: std::sync::Mutex<std::collections::VecDeque<u64>>,
}

/// Dropping a runtime inside another runtime's worker panics, so it is shut
/// down in the background instead.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn pool(config: &tokio_postgres::Config) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            // `Fast` keeps session settings (a fenced pool's) across reuse.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .build()
        .map_err(|source| StoreError::PoolBuild { source })
}

/// The schema version this build migrates to (the newest embedded
/// migration).
pub fn supported_schema() -> i64 {
    migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The SQLSTATE the fencing trigger raises (`V2__cluster.sql`, `V3__fence_detail.sql`).
const FENCED: &str = "TMF01";

pub(super) fn pg_err(op: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| match source.as_db_error() {
        Some(db) if db.code().code() == FENCED => StoreError::Fenced {
            op,
            detail: db.message().to_owned(),
        },
        _ => StoreError::Postgres { op, source },
    }
}

pub(super) fn pool_err(
    op: &'static str,
) -> impl FnOnce(deadpool_postgres::PoolError) -> StoreError {
    move |source| StoreError::Pool { op, source }
}

/// Decodes a record column (format byte, then JSON, as the sled store
/// writes values).
pub(super) fn record<T: serde::de::DeserializeOwned>(
    op: &'static str,
    row: &Row,
    idx: usize,
) -> Result<T, StoreError> {
    let raw: &[u8] = row.try_get(idx).map_err(pg_err(op))?;
    super::keys::decode_json(op, raw)
}

pub(super) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    op: &'static str,
    row: &'a Row,
    idx: usize,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(pg_err(op))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host:port/db`),
    /// refuses a schema newer than this build's, and migrates an older one.
    /// Errors name the URL without its password.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let redacted = redact_url(url);
        let mut config = url::parse(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let pool = pool(&config)?;
        // Built last: from here on `OwnedRuntime` owns it, and its `Drop`
        // shuts it down without panicking inside the caller's runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidemark-pg")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Runtime { source })?;
        let handle = runtime.handle().clone();
        let store = PgStore {
            shared: Arc::new(Shared {
                pool,
                handle,
                _runtime: Arc::new(OwnedRuntime(Some(runtime))),
                url: redacted.clone(),
                config: config.clone(),
                run_ids: Default::default(),
            }),
        };
        store.block("opening the store", migrate(config, redacted))?;
        Ok(store)
    }

    /// The connection string, password removed.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Runs `fut` on the store's runtime and waits for it. Never panics,
    /// whatever thread calls it: a runtime that is gone is an error.
    fn block<T, F>(&self, op: &'static str, fut: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.shared.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or(Err(StoreError::RuntimeGone { op }))
    }

    /// [`PgStore::block`] with a clone of the pool for the future.
    pub(super) fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.block(op, f(self.shared.pool.clone()))
    }
}

/// Checks the schema version, then brings the schema up to this build's,
/// under an advisory lock so daemons starting together migrate once.
async fn migrate(config: tokio_postgres::Config, url: String) -> Result<(), StoreError> {
    const OP: &str = "migrating the schema";
    let (mut client, connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|source| StoreError::Connect {
                url: url.clone(),
                source,
            })?;
    let conn = tokio::spawn(connection);
    // An arbitrary constant: "tidemark" in ASCII, as a key no one else uses.
    const LOCK: i64 = 0x7469_6465_6d61_726b;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(pg_err(OP))?;
    let outcome = async {
        let found = applied_schema(&client).await?;
        let supported = supported_schema();
        if found > supported {
            return Err(StoreError::SchemaTooNew {
                url: url.clone(),
                found,
                supported,
            });
        }
        let report = migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|source| StoreError::Migrate {
                url: url.clone(),
                source,
            })?;
        for m in report.applied_migrations() {
            tracing::info!(version = m.version(), name = m.name(), "schema migrated");
        }
        Ok(())
    }
    .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await;
    drop(client);
    let _ = conn.await;
    outcome
}

/// The newest migration applied to the database, 0 for an empty one.
async fn applied_schema(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    const OP: &str = "reading the schema version";
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg_err(OP))?
        .try_get(0)
        .map_err(pg_err(OP))?;
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM refinery_schema_history",
            &[],
        )
        .await
        .map_err(pg_err(OP))?;
    column(OP, &row, 0)
}
