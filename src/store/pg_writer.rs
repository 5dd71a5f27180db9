//! On PostgreSQL, a thread of its own for group commits (`service::registrations::group`),
//! with a connection of its own.
//!
//! Why: a group commit is a dozen round trips, one after another, under the write lock
//! every replica queues on. On the shared runtime each round trip's answer waits behind
//! every runnable request task (hundreds, when senders are many), and the socket's
//! readiness is noticed only between them, all while the lock is held. Here the commit
//! is the only task on its runtime, and its connection's readiness is that runtime's
//! alone, so each round trip costs what the database takes. The SQLite writer thread
//! (`sqlite_writer`) is the same idea for the embedded database.

use super::{Store, StoreError, WriteTx};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use std::future::Future;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The thread's runtime, and the connection it opens on first use.
pub(super) struct PgWriter {
    runtime: tokio::runtime::Handle,
    url: String,
    instance: String,
    conn: OnceCell<DatabaseConnection>,
    /// Dropped with the last store: the thread then ends, and its runtime with it.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PgWriter {
    pub(super) fn start(url: &str, instance: &str) -> Result<Self, StoreError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("sunset-pg-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Serves spawned commits until `stop` is dropped.
                let _ = runtime.block_on(stopped);
            })
            .map_err(thread_error)?;
        let runtime = handle_rx
            .recv()
            .map_err(|_| thread_error("it ended at its start"))?
            .map_err(thread_error)?;
        Ok(Self {
            runtime,
            url: url.to_owned(),
            instance: instance.to_owned(),
            conn: OnceCell::new(),
            _stop: stop,
        })
    }

    /// The connection, opened on this thread's runtime the first time (so its socket's
    /// readiness is this runtime's to notice).
    async fn conn(&self) -> Result<&DatabaseConnection, StoreError> {
        self.conn
            .get_or_try_init(|| async {
                let mut options = ConnectOptions::new(self.url.clone());
                let name = self.instance.clone();
                options
                    .sqlx_logging(false)
                    .connect_timeout(Duration::from_secs(10))
                    .acquire_timeout(Duration::from_secs(30))
                    .max_connections(1)
                    .map_sqlx_postgres_opts(move |o| o.application_name(&name));
                Ok(Database::connect(options).await?)
            })
            .await
    }
}

impl Store {
    /// On PostgreSQL, runs `work` on the group-commit thread and returns its outcome;
    /// `None` elsewhere. `work` begins its transactions with [`Store::begin_group_write`].
    pub(crate) async fn on_group_thread<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<Result<T, StoreError>> {
        let writer = self.pg_writer.as_ref()?;
        Some(writer.runtime.spawn(work).await.map_err(thread_error))
    }

    /// The group-commit thread's own connection, for reads before its transaction (from
    /// within [`Store::on_group_thread`]); elsewhere, the readers' pool.
    pub(crate) async fn group_reader(&self) -> Result<&DatabaseConnection, StoreError> {
        match &self.pg_writer {
            Some(writer) => writer.conn().await,
            None => Ok(self.reader()),
        }
    }

    /// A write transaction on the group-commit thread's own connection (from within
    /// [`Store::on_group_thread`]); elsewhere, as [`Store::begin_write`].
    pub(crate) async fn begin_group_write(&self) -> Result<WriteTx, StoreError> {
        match &self.pg_writer {
            Some(writer) => self.begin_write_on(writer.conn().await?).await,
            None => self.begin_write().await,
        }
    }
}

fn thread_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sea_orm::DbErr::Custom(format!(
        "the group-commit thread: {e}"
    )))
}
