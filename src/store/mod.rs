//! Persistence: the only module that imports sea_orm. One repository per aggregate
//! (`tokens`, `registry`, `audit`), each a set of functions over any connection, so the
//! same code reads outside a transaction and writes inside one.
//!
//! Architecture invariant: every state change goes through a [`WriteTx`], and its audit
//! record is appended in that same transaction ([`WriteTx::append_audit`]). `WriteTx`
//! locks the single `audit_head` row first, which serialises audited writes across
//! connections, processes and instances sharing a PostgreSQL database, so the chain
//! never forks.

pub mod audit;
pub mod entities;
pub mod registry;
pub mod tokens;

use crate::audit::{AuditEntry, SealedRecord};
use chrono::{DateTime, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, Statement, TransactionTrait,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use sea_orm::ConnectionTrait as Conn;
pub use sea_orm::DbBackend as Backend;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether this is a unique-constraint violation (a concurrent duplicate insert).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))))
    }
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite has one writer at a time; queueing writers here, in process, is cheaper
    /// and fairer than letting them spin on SQLITE_BUSY. Other processes (the CLI) are
    /// held off by the busy timeout.
    sqlite_write_gate: Option<Arc<Mutex<()>>>,
}

impl Store {
    /// Connects to `postgres://…` or `sqlite://…` and applies no migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30));
        let is_sqlite = url.starts_with("sqlite:");
        if is_sqlite {
            options.max_connections(8).map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(15))
                    .create_if_missing(true)
            });
        } else {
            options.max_connections(16);
        }
        let db = Database::connect(options).await?;
        Ok(Self {
            db,
            sqlite_write_gate: is_sqlite.then(|| Arc::new(Mutex::new(()))),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        use migrations::MigratorTrait;
        migrations::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.db.get_database_backend()
    }

    /// For reads outside a transaction.
    pub fn reader(&self) -> &DatabaseConnection {
        &self.db
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }

    /// Begins a write transaction holding the audit chain's head.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let gate = match &self.sqlite_write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let txn = self.db.begin().await?;
        let backend = txn.get_database_backend();
        let select = match backend {
            // FOR UPDATE holds the row until commit; other writers queue behind it.
            DbBackend::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            _ => {
                // A write as the first statement takes SQLite's write lock now, before
                // anything is read, so the transaction never has to upgrade a stale
                // read snapshot (which SQLite would refuse with SQLITE_BUSY).
                txn.execute_unprepared("UPDATE audit_head SET seq = seq WHERE id = 1")
                    .await?;
                "SELECT seq, hash FROM audit_head WHERE id = 1"
            }
        };
        let row = txn
            .query_one_raw(Statement::from_string(backend, select))
            .await?
            .ok_or_else(|| StoreError::Corrupt("the audit_head row is missing".into()))?;
        Ok(WriteTx {
            head_seq: row.try_get("", "seq")?,
            head_hash: row.try_get("", "hash")?,
            txn,
            appended: false,
            _gate: gate,
        })
    }
}

/// A write transaction. Dropping it without [`WriteTx::commit`] rolls everything back,
/// audit records included.
pub struct WriteTx {
    txn: DatabaseTransaction,
    head_seq: i64,
    head_hash: String,
    appended: bool,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Seals `entry` onto the chain and inserts it in this transaction.
    pub async fn append_audit(
        &mut self,
        at: DateTime<Utc>,
        entry: AuditEntry,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<SealedRecord, StoreError> {
        let record = SealedRecord::seal(self.head_seq, &self.head_hash, at, entry, key);
        audit::insert_record(&self.txn, &record).await?;
        self.head_seq = record.seq;
        self.head_hash.clone_from(&record.hash);
        self.appended = true;
        Ok(record)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        if self.appended {
            audit::set_head(&self.txn, self.head_seq, &self.head_hash).await?;
        }
        self.txn.commit().await?;
        Ok(())
    }
}
