//! The SQLite writer thread: one OS thread owning one rusqlite connection to the database
//! file, which runs a whole write transaction per hand-off.
//!
//! Why it exists: sqlx runs each SQLite connection on a worker thread and hands every
//! statement, and every row it returns, across a channel. A group commit of registration
//! webhooks is about ten statements and a hundred rows; on a busy two-core machine each
//! statement waited about 0.7 ms for the hand-offs (a receipts lookup returning nothing
//! took 0.68 ms), more than the writing itself: 10.6 ms a group of 32, against 3 to 4 ms
//! here. Here the group's reads, writes and audit records run in one
//! closure, with prepared statements kept warm on the connection, and the caller is
//! woken once, when the transaction has committed.
//!
//! It writes the same tables as the sea-orm repositories, in the same encodings (times
//! as sqlx writes them: RFC 3339 with as many fraction digits as needed). Writers in this
//! process still queue on the store's gate, so the two connections never contend; other
//! processes are kept out by SQLite's lock (`BEGIN IMMEDIATE`, busy timeout).

use super::StoreError;
use crate::audit::{AuditEntry, AuditMacKey, SealedRecord};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

type Work = Box<dyn FnOnce(&mut Connection) + Send>;

/// WAL frames after which a commit on the writer's connection runs a checkpoint.
const WAL_AUTOCHECKPOINT_FRAMES: i64 = 10_000;

/// The handle to the writer thread; the thread ends when the last handle is dropped.
pub(crate) struct SqliteWriter {
    work: mpsc::Sender<Work>,
}

impl SqliteWriter {
    /// Opens a connection to the database file `path` (which must exist) and starts the
    /// thread that owns it.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(15))?;
        // As the sqlx connections are set up: durable commits in WAL, and references
        // checked.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // This connection writes nearly every frame of a webhook burst, so its commits run
        // the checkpoints. At SQLite's default of 1,000 frames a checkpoint came every
        // 15 or so groups and took 8 to 16 ms on this thread, 20% to 40% of its time: the
        // same hot pages (the tails of append-only tables, index leaves a burst shares)
        // were copied back again at each one. At 10,000 frames (a 40 MiB WAL) each is
        // copied once per checkpoint: over 12,800 messages the checkpoints took 65 to 210
        // ms instead of 300 to 1,000, at the price of a longer pause (tens of ms) each time.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_FRAMES)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (work, queue) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                for work in queue {
                    work(&mut conn);
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { work })
    }

    /// Runs `work` on the writer thread and waits (without blocking the runtime) for
    /// what it returns.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.work
            .send(Box::new(move |conn| {
                // A panic in `work` must not end the thread (the transaction it held is
                // rolled back as it unwinds); the caller sees its answer dropped.
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)));
                if let Ok(out) = out {
                    let _ = reply.send(out);
                }
            }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction appending to the audit chain after
    /// `head` (read from the database when `None`), and commits it if `work` succeeds.
    /// Returns `work`'s outcome, and the head after the commit (`None` when it is not
    /// known: nothing committed, or another writer went first).
    pub(crate) async fn transaction<T, E>(
        &self,
        head: Option<(i64, String)>,
        work: impl FnOnce(&mut SqliteTx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<(Result<T, E>, Option<(i64, String)>), StoreError>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
                Ok(tx) => tx,
                Err(e) => return (Err(E::from(e.into())), None),
            };
            let (head_seq, head_hash) = match head {
                Some(head) => head,
                None => match audit_head(&tx) {
                    Ok(head) => head,
                    Err(e) => return (Err(E::from(e)), None),
                },
            };
            let mut stx = SqliteTx {
                tx,
                head_seq,
                head_hash,
            };
            match work(&mut stx) {
                Ok(value) => {
                    let head = (stx.head_seq, stx.head_hash);
                    match stx.tx.commit() {
                        Ok(()) => (Ok(value), Some(head)),
                        Err(e) => (Err(E::from(e.into())), None),
                    }
                }
                // Dropping the transaction rolls it back.
                Err(e) => (Err(e), None),
            }
        })
        .await
    }
}

fn stopped() -> StoreError {
    StoreError::Corrupt(
        "the SQLite writer gave no answer (its thread stopped, or the work panicked)".into(),
    )
}

/// A write transaction on the writer thread, with the audit chain head it appends to.
pub(crate) struct SqliteTx<'c> {
    tx: rusqlite::Transaction<'c>,
    head_seq: i64,
    head_hash: String,
}

impl SqliteTx<'_> {
    pub(crate) fn conn(&self) -> &Connection {
        &self.tx
    }

    /// Seals `entries` onto the chain in order and inserts them, as
    /// [`WriteTx::append_audits`](super::WriteTx::append_audits) does.
    pub(crate) fn append_audits(
        &mut self,
        at: DateTime<Utc>,
        entries: Vec<AuditEntry>,
        key: &AuditMacKey,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        let (records, head) = super::seal_after((self.head_seq, &self.head_hash), at, entries, key);
        let mut insert = self.tx.prepare_cached(
            "INSERT INTO audit_records (seq, recorded_at, actor, actor_role, action, \
             subject_type, subject, before_state, after_state, prev_hash, hash, mac) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for r in &records {
            let inserted = insert.execute(params![
                r.seq,
                sql_time(r.recorded_at),
                r.actor,
                r.actor_role,
                r.action,
                r.subject_type,
                r.subject,
                r.before_state,
                r.after_state,
                r.prev_hash,
                r.hash,
                r.mac,
            ]);
            match inserted {
                Ok(_) => {}
                // The sequence number is taken: another process appended first.
                Err(e) if is_unique_violation(&e) => return Err(StoreError::StaleHead),
                Err(e) => return Err(e.into()),
            }
        }
        drop(insert);
        (self.head_seq, self.head_hash) = head;
        Ok(records)
    }
}

fn audit_head(conn: &Connection) -> Result<(i64, String), StoreError> {
    let last = conn
        .prepare_cached("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)));
    match last {
        Ok(head) => Ok(head),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok((0, crate::audit::GENESIS_HASH.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// A time as sqlx stores a `DateTime<Utc>` in SQLite, so both connections' rows compare
/// as text the same way.
pub(crate) fn sql_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// Reads a time written by [`sql_time`] (or by SQLite itself, `YYYY-MM-DD HH:MM:SS`).
pub(crate) fn parse_sql_time(raw: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%F %T%.f").map(|t| t.and_utc()))
        .map_err(|e| StoreError::Corrupt(format!("stored time {raw:?}: {e}")))
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(f) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_sqlx_writes_them_and_read_back() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T21:06:02.435949171Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(sql_time(t), "2026-11-30T21:06:02.435949171+00:00");
        assert_eq!(parse_sql_time(&sql_time(t)).unwrap(), t);
        assert_eq!(
            parse_sql_time("2026-11-30 21:06:02").unwrap(),
            DateTime::parse_from_rfc3339("2026-11-30T21:06:02Z").unwrap()
        );
        assert!(parse_sql_time("yesterday").is_err());
    }
}
