//! Wake-ups between replicas on PostgreSQL: a change other instances follow sends a
//! `NOTIFY` on its topic's channel in the transaction that commits it (PostgreSQL
//! delivers it at the commit, once however many times the transaction sent it, and
//! never for a rollback), and every instance `LISTEN`s on one connection of its own
//! (`Listener`), waking its follower at once instead of at its next poll. The polls stay,
//! as the safety net for a notification lost while the listening connection was down.
//! Each notification carries the sending connection's `application_name`, which names
//! the instance (`Store::instance`): an instance takes its own commits in as it makes
//! them, so its listener passes over its own notifications rather than have a follower
//! read back what it already holds.
//! On SQLite (one host) there is nothing to send: the followers poll.

use super::StoreError;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};

/// What changed, by channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// The inventory change sequence moved (`inventory_changes`).
    Inventory,
    /// The kill switch's disabled list changed.
    KillSwitch,
    /// A retirement change was announced (`retirement_events`).
    Retirements,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Inventory, Topic::KillSwitch, Topic::Retirements];

    pub const fn channel(self) -> &'static str {
        match self {
            Topic::Inventory => "sunset_inventory",
            Topic::KillSwitch => "sunset_kill_switch",
            Topic::Retirements => "sunset_retirements",
        }
    }

    fn of_channel(channel: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.channel() == channel)
    }
}

/// Sends `topic`'s notification in `conn`'s transaction (at once outside one); nothing on
/// SQLite.
pub async fn notify(conn: &impl ConnectionTrait, topic: Topic) -> Result<(), StoreError> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    conn.execute_unprepared(&format!(
        "SELECT pg_notify('{}', current_setting('application_name'))",
        topic.channel()
    ))
    .await?;
    Ok(())
}

/// A connection listening on every topic's channel.
pub struct Listener {
    listener: sea_orm::sqlx::postgres::PgListener,
    /// The instance listening, whose own notifications it passes over.
    own: String,
}

impl Listener {
    /// Listens through a connection of `db`'s pool for other instances' notifications
    /// than `own`'s; `None` on SQLite.
    pub async fn connect(db: &DatabaseConnection, own: &str) -> Result<Option<Self>, StoreError> {
        if db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(None);
        }
        let pool = db.get_postgres_connection_pool();
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(listen_error)?;
        listener
            .listen_all(Topic::ALL.map(Topic::channel))
            .await
            .map_err(listen_error)?;
        Ok(Some(Self {
            listener,
            own: own.to_owned(),
        }))
    }

    /// The topic of the next notification another instance sent. After a lost
    /// connection it reconnects and listens again by itself (notifications sent meanwhile
    /// are lost: the polls find them).
    pub async fn next(&mut self) -> Result<Topic, StoreError> {
        loop {
            let n = self.listener.recv().await.map_err(listen_error)?;
            if n.payload() == self.own {
                continue;
            }
            if let Some(topic) = Topic::of_channel(n.channel()) {
                return Ok(topic);
            }
        }
    }
}

fn listen_error(e: sea_orm::sqlx::Error) -> StoreError {
    StoreError::Database(sea_orm::DbErr::Custom(format!("LISTEN: {e}")))
}
