//! Persistence: the only module that imports sea_orm (and rusqlite, for
//! `sqlite_writer`). One repository per aggregate (`tokens`, `registry`, `audit`), each a
//! set of functions over any connection, so the same code reads outside a transaction and
//! writes inside one.
//!
//! Architecture invariant: every state change goes through a [`WriteTx`] (or, for group
//! commits on a SQLite file, the writer thread's [`SqliteTx`]), and its audit record is
//! appended in that same transaction ([`WriteTx::append_audit`]).
//!
//! How appends stay linear: writers in one process queue on a gate that also holds the
//! last committed chain head. On PostgreSQL, shared by replicas, a write transaction
//! also takes one transaction-level advisory lock first and reads the head under it, so
//! writers of all replicas queue instead of colliding (a long change, such as scheduling
//! a retirement with its notices, is otherwise starved by the short ones other replicas
//! commit meanwhile). On a SQLite file, a transaction takes its head from the gate when
//! it begins, before it reads anything; another process may have appended since, and
//! then the insert of the next sequence number hits the primary key and fails with
//! [`StoreError::StaleHead`], the gate forgets its head, and the use case runs again on
//! fresh data (`in_write_tx!`). Because every write appends a record, any two
//! overlapping writes collide on one sequence number, so writes behave as if run one
//! after another, everywhere.

pub mod artifacts;
pub mod audit;
pub mod brownouts;
pub mod calendar_feeds;
pub mod certificates;
pub mod console_sessions;
pub mod emergency_deployments;
pub mod enforcement;
pub mod entities;
pub mod erasure;
pub mod fleet;
pub mod gauges;
pub mod grants;
pub mod inventory;
pub mod jobs;
pub mod kill_switch;
pub mod notices;
pub mod notify;
mod pg_rows;
mod pg_writer;
pub mod policies;
pub mod purges;
pub mod registry;
pub mod replicas;
pub mod retention;
pub mod retirements;
pub mod revocations;
mod row_ids;
pub mod scans;
pub mod signers;
mod sqlite_writer;
pub mod tokens;
pub mod validations;
pub mod webhook_sources;

use crate::audit::{AuditEntry, AuditMacKey, SealedRecord};
use chrono::{DateTime, Utc};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sqlite_writer::SqliteWriter;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use sqlite_writer::SqliteTx;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use sea_orm::ConnectionTrait as Conn;
pub use sea_orm::DbBackend as Backend;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// From the SQLite writer thread (`sqlite_writer`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// Another writer appended to the audit chain first; the change must be redone.
    #[error("another writer appended to the audit log first")]
    StaleHead,
}

impl StoreError {
    /// Whether this is a unique-constraint violation (a concurrent duplicate insert).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(e) => matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ),
            StoreError::Sqlite(e) => sqlite_writer::is_unique_violation(e),
            _ => false,
        }
    }

    /// Whether redoing the change on fresh data may succeed: another writer appended
    /// first, won a race to a unique value, or PostgreSQL broke a deadlock between two
    /// instances by aborting this transaction (SQLSTATE 40P01).
    pub fn is_contention(&self) -> bool {
        match self {
            StoreError::StaleHead => true,
            StoreError::Database(e) => {
                self.is_unique_violation() || e.to_string().contains("deadlock detected")
            }
            StoreError::Sqlite(_) => self.is_unique_violation(),
            StoreError::Corrupt(_) => false,
        }
    }
}

/// The most rows one statement writes or names when many are written at once: with the
/// widest table's 13 columns that stays far below SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// Splits rows into statements of at most [`ROWS_PER_STATEMENT`], each a power of two
/// long (50 rows run as 32 + 16 + 2). A statement's text depends on its row count, so
/// this way a few texts repeat and their prepared forms are reused from the driver's
/// cache, where any count would be parsed and planned afresh (about 5% of a group
/// commit when counts varied).
pub(crate) fn statement_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let n = rest.len().min(ROWS_PER_STATEMENT);
        if n == 0 {
            return None;
        }
        let (chunk, tail) = rest.split_at(1 << n.ilog2());
        rest = tail;
        Some(chunk)
    })
}

/// The last committed chain head `(seq, hash)`, when this process knows it.
type Head = Option<(i64, String)>;

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Where write transactions run. On SQLite, one connection of its own: its page cache
    /// and prepared statements stay warm from one write to the next, where a pooled
    /// connection would mostly find its cache outdated by writes made through another and
    /// read every page again. On PostgreSQL, the pool.
    writer: DatabaseConnection,
    /// Queues this process's writers (cheaper and fairer than letting them spin on
    /// SQLITE_BUSY or collide on sequence numbers) and holds the head they append to.
    write_gate: Arc<Mutex<Head>>,
    /// On a SQLite file, the thread that runs whole group commits (`sqlite_writer`).
    thread_writer: Option<Arc<SqliteWriter>>,
    /// This instance's name among the replicas: on PostgreSQL the `application_name` of
    /// its connections, which its notifications carry (`notify`), so that it can tell its
    /// own commits from other replicas'.
    instance: Arc<str>,
    /// On PostgreSQL, the thread that runs group commits (`pg_writer`).
    pg_writer: Option<Arc<pg_writer::PgWriter>>,
}

/// The advisory lock key migrations hold on PostgreSQL ("sunset" + "mig" in ASCII).
const MIGRATION_LOCK: i64 = 0x73_75_6e_73_65_74_6d_67;
/// The transaction-level advisory lock every write transaction on PostgreSQL takes
/// first ("sunsetwr").
const WRITE_LOCK: i64 = 0x73_75_6e_73_65_74_77_72;

impl Store {
    /// Connects to `postgres://…` or `sqlite://…` and applies no migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let instance: Arc<str> =
            format!("sunset-{}", hex::encode(rand::random::<[u8; 6]>())).into();
        let options = |connections: u32| {
            let mut options = ConnectOptions::new(url.to_owned());
            options
                .sqlx_logging(false)
                .connect_timeout(Duration::from_secs(10))
                .acquire_timeout(Duration::from_secs(30))
                .max_connections(connections);
            if url.starts_with("sqlite:") {
                options.map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .foreign_keys(true)
                        .busy_timeout(Duration::from_secs(15))
                        .create_if_missing(true)
                });
            } else {
                let name = instance.to_string();
                options.map_sqlx_postgres_opts(move |o| o.application_name(&name));
            }
            options
        };
        let (db, writer, thread_writer) = if url.starts_with("sqlite:") {
            // The writer connects first, so that it is the one that creates a new file.
            let writer = Database::connect(options(1)).await?;
            let path = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Database(DbErr::Custom(e.to_string())))?
                .get_filename()
                .to_owned();
            // An in-memory database has no file another connection could open.
            let thread_writer = if path.is_file() {
                Some(Arc::new(SqliteWriter::open(&path)?))
            } else {
                None
            };
            (Database::connect(options(8)).await?, writer, thread_writer)
        } else {
            let db = Database::connect(options(16)).await?;
            (db.clone(), db, None)
        };
        Ok(Self {
            db,
            writer,
            write_gate: Arc::new(Mutex::new(None)),
            thread_writer,
            pg_writer: if url.starts_with("sqlite:") {
                None
            } else {
                Some(Arc::new(pg_writer::PgWriter::start(url, &instance)?))
            },
            instance,
        })
    }

    /// Applies pending migrations. On PostgreSQL under a session advisory lock, held
    /// on a connection of its own while the migrations run on others: replicas started
    /// together (or `sunset migrate` beside them) migrate one after another, and the
    /// later ones find nothing left to do.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        use migrations::MigratorTrait;
        if self.backend() != Backend::Postgres {
            migrations::Migrator::up(&self.db, None).await?;
            return Ok(());
        }
        let pool = self.db.get_postgres_connection_pool();
        let locking = |e: sea_orm::sqlx::Error| {
            StoreError::Database(DbErr::Custom(format!("the migration lock: {e}")))
        };
        let mut holder = pool.acquire().await.map_err(locking)?;
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *holder)
            .await
            .map_err(locking)?;
        let migrated = migrations::Migrator::up(&self.db, None).await;
        let unlocked = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *holder)
            .await;
        migrated?;
        if let Err(e) = unlocked {
            // The lock goes with the session anyway; close it rather than return it.
            tracing::warn!(error = %e, "could not release the migration lock; closing its connection");
            holder.detach();
        }
        Ok(())
    }

    /// This instance's name among the replicas (see the field).
    pub fn instance(&self) -> &str {
        &self.instance
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

    /// Whether group commits run on the SQLite writer thread (a SQLite file).
    pub(crate) fn writes_groups_on_thread(&self) -> bool {
        self.thread_writer.is_some()
    }

    /// On a SQLite file, runs `work` in one write transaction on the writer thread (see
    /// `sqlite_writer`), queued on the same gate as [`Store::begin_write`] and appending
    /// to the same chain; it commits if `work` succeeds. `None` on PostgreSQL, where
    /// the caller uses [`Store::begin_write`].
    pub(crate) async fn write_on_thread<T, E>(
        &self,
        work: impl FnOnce(&mut SqliteTx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Option<Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let writer = self.thread_writer.as_ref()?;
        let mut gate = self.write_gate.lock().await;
        // Until the commit is known to have happened, nobody should trust the cached head.
        let head = gate.take();
        Some(match writer.transaction(head, work).await {
            Ok((outcome, head)) => {
                *gate = head;
                outcome
            }
            Err(e) => Err(E::from(e)),
        })
    }

    /// Begins a write transaction that appends after the last committed head.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.begin_write_on(&self.writer).await
    }

    /// As [`Store::begin_write`], on connection `writer`.
    async fn begin_write_on(&self, writer: &DatabaseConnection) -> Result<WriteTx, StoreError> {
        let mut gate = self.write_gate.clone().lock_owned().await;
        // IMMEDIATE takes SQLite's write lock with BEGIN, so the transaction never has to
        // upgrade a read snapshot another process has outdated (SQLITE_BUSY_SNAPSHOT);
        // other processes wait on the busy timeout. PostgreSQL ignores the mode.
        let txn = writer
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        let (head_seq, head_hash) = match (gate.as_ref(), self.backend()) {
            // Writers of every replica queue on one lock, held to the commit, and read
            // the chain's head under it: a long change is never starved by short ones
            // committed meanwhile on other replicas (as optimistic appends would be).
            (_, Backend::Postgres) => {
                txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
                    .await?;
                audit::head(&txn).await?
            }
            (Some(head), _) => head.clone(),
            (None, _) => audit::head(&txn).await?,
        };
        *gate = Some((head_seq, head_hash.clone()));
        Ok(WriteTx {
            txn,
            head_seq,
            head_hash,
            appended: false,
            gate,
        })
    }
}

/// Seals `entries` in order onto the chain after `head`; returns the records and the new
/// head (`head` itself when there are none).
fn seal_after(
    (mut seq, hash): (i64, &str),
    at: DateTime<Utc>,
    entries: Vec<AuditEntry>,
    key: &AuditMacKey,
) -> (Vec<SealedRecord>, (i64, String)) {
    let mut hash = hash.to_owned();
    let records = entries
        .into_iter()
        .map(|entry| {
            let record = SealedRecord::seal(seq, &hash, at, entry, key);
            seq = record.seq;
            hash.clone_from(&record.hash);
            record
        })
        .collect();
    (records, (seq, hash))
}

/// A write transaction. Dropping it without [`WriteTx::commit`] rolls everything back,
/// audit records included.
pub struct WriteTx {
    txn: DatabaseTransaction,
    head_seq: i64,
    head_hash: String,
    appended: bool,
    gate: OwnedMutexGuard<Head>,
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
        key: &AuditMacKey,
    ) -> Result<SealedRecord, StoreError> {
        let mut sealed = self.append_audits(at, vec![entry], key).await?;
        Ok(sealed.remove(0))
    }

    /// Seals `entries` onto the chain in order and inserts them in this transaction, many
    /// per statement.
    pub async fn append_audits(
        &mut self,
        at: DateTime<Utc>,
        entries: Vec<AuditEntry>,
        key: &AuditMacKey,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        let (records, (seq, hash)) = seal_after((self.head_seq, &self.head_hash), at, entries, key);
        if let Err(e) = audit::insert_records(&self.txn, &records).await {
            // Whatever went wrong, the head this process holds may be out of date.
            *self.gate = None;
            return Err(if e.is_unique_violation() {
                StoreError::StaleHead
            } else {
                e
            });
        }
        if !records.is_empty() {
            (self.head_seq, self.head_hash) = (seq, hash);
            self.appended = true;
        }
        Ok(records)
    }

    /// Commits the change and its audit records.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let head = (self.head_seq, self.head_hash.clone());
        // Until the commit is known to have happened, nobody should trust the cached head.
        *self.gate = None;
        self.txn.commit().await?;
        *self.gate = Some(head);
        Ok(())
    }

    /// Whether this transaction appended to the chain.
    pub fn appended(&self) -> bool {
        self.appended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_take_every_row_once_in_power_of_two_chunks() {
        for n in [0, 1, 2, 3, 50, 255, 256, 257, 700] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{n} rows, in order, each once");
            assert!(chunks.iter().all(|c| c.len().is_power_of_two()));
            assert!(chunks.iter().all(|c| c.len() <= ROWS_PER_STATEMENT));
        }
        let sizes: Vec<usize> = statement_chunks(&[0u8; 50]).map(<[u8]>::len).collect();
        assert_eq!(sizes, [32, 16, 2]);
    }
}
