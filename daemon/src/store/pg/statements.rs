//! Statements prepared once per connection.
//!
//! tokio-postgres prepares a statement given as text on every call: a
//! round trip and a parse on the server before the one that runs it. The
//! store's statements are a fixed set, so each connection prepares each
//! once (deadpool keeps the cache with the connection, and a connection
//! that is replaced starts a new one).

use deadpool_postgres::{ClientWrapper, Transaction};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A client or transaction of the pool that runs statements prepared
/// once per connection.
pub(super) trait Cached {
    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, Error>;
    fn inner(&self) -> &tokio_postgres::Client;

    async fn execute_cached(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let statement = self.prepared(sql).await?;
        self.inner().execute(&statement, params).await
    }

    async fn query_cached(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let statement = self.prepared(sql).await?;
        self.inner().query(&statement, params).await
    }

    async fn query_opt_cached(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        let statement = self.prepared(sql).await?;
        self.inner().query_opt(&statement, params).await
    }

    async fn query_one_cached(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let statement = self.prepared(sql).await?;
        self.inner().query_one(&statement, params).await
    }
}

impl Cached for ClientWrapper {
    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        self.prepare_cached(sql).await
    }

    fn inner(&self) -> &tokio_postgres::Client {
        self
    }
}

impl Cached for Transaction<'_> {
    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        self.prepare_cached(sql).await
    }

    fn inner(&self) -> &tokio_postgres::Client {
        self.client()
    }
}
