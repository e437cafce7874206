//! Opening the database and bringing its schema up to date. SQLite (the embedded default) and Postgres go
//! through the same code; only the connection options differ.

use std::time::Duration;

use convene_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::platform::settings::{Backend, DatabaseUrl};

/// Long enough for a cold Postgres, short enough that a wrong host fails while someone is watching.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opening or migrating the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server is unreachable, refuses us, or the file cannot be opened.
    #[error(
        "cannot connect to the database {url} (CONVENE_DATABASE_URL): {cause}. Check that the server runs and the URL is right"
    )]
    Connect {
        /// The redacted URL.
        url: String,
        /// What the driver said, as precisely as it can be had.
        cause: String,
    },
    /// A migration failed; the migrator runs each one in a transaction where the engine allows.
    #[error("cannot migrate the database {url}: {cause}")]
    Migrate {
        /// The redacted URL.
        url: String,
        /// What the driver said.
        cause: sea_orm::DbErr,
    },
}

/// Begins a transaction that may write. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
/// waiting its turn behind other writers: a deferred transaction that read first fails at its first write,
/// without waiting, whenever another writer committed meanwhile. Postgres ignores the mode.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    let immediate = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    db.begin_with_options(immediate).await
}

/// Connects with pool limits suited to the engine.
pub async fn connect(url: &DatabaseUrl) -> Result<DatabaseConnection, DbError> {
    let mut options = ConnectOptions::new(url.expose().to_owned());
    // SQLite serialises writers anyway; a small pool avoids lock contention. Postgres gets a modest pool
    // that one `convene` process cannot exhaust the server with.
    let max = match url.backend() {
        Backend::Sqlite => 4,
        Backend::Postgres => 16,
    };
    options
        .max_connections(max)
        .min_connections(0)
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        .sqlx_logging(false);
    match Database::connect(options).await {
        Ok(db) => Ok(db),
        Err(error) => Err(DbError::Connect { url: url.to_string(), cause: connect_failure_cause(url, error).await }),
    }
}

/// The pool reports only "timed out" when every attempt failed. One direct connection recovers the real
/// reason ("connection refused", "password authentication failed", "database does not exist").
async fn connect_failure_cause(url: &DatabaseUrl, pool_error: sea_orm::DbErr) -> String {
    use sea_orm::sqlx::Connection;
    let direct = match url.backend() {
        Backend::Postgres => tokio::time::timeout(CONNECT_TIMEOUT, sea_orm::sqlx::PgConnection::connect(url.expose()))
            .await
            .map(|r| r.map(drop)),
        Backend::Sqlite => {
            tokio::time::timeout(CONNECT_TIMEOUT, sea_orm::sqlx::SqliteConnection::connect(url.expose()))
                .await
                .map(|r| r.map(drop))
        }
    };
    match direct {
        Ok(Err(error)) => error.to_string(),
        _ => pool_error.to_string(),
    }
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection, url: &DatabaseUrl) -> Result<(), DbError> {
    Migrator::up(db, None).await.map_err(|cause| DbError::Migrate { url: url.to_string(), cause })
}
