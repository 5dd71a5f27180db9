//! sunset's delivery channels: how a notice reaches the owners of a dependent system.
//!
//! Two real channels implement [`Notifier`]: [`webhook::WebhookNotifier`] (an HTTP POST
//! signed per Standard Webhooks with the consumer's own secret) and
//! [`email::EmailNotifier`] (SMTP through lettre, text and HTML bodies from templates
//! operators can override). A channel makes one attempt and says what came of it
//! ([`Outcome`]); [`retry::next_wait`] says when to try again. Keeping the outbox, and
//! dead-lettering, are the service's business, which also owns the clock: every attempt
//! is told the time it is made at.
//!
//! Nothing here reads configuration files, the database or the environment.

pub mod email;
pub mod notice;
pub mod outbound;
pub mod retry;
pub mod standard_webhooks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

pub use notice::{BrownoutWindow, Notice, NoticeData, NoticeKind, Replacement};

use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

/// What came of one delivery attempt, and so what the outbox does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver took it: HTTP 2xx, or the SMTP server accepted the message.
    Delivered,
    /// It failed in a way a later attempt may not (HTTP 5xx or 429, a refused or timed
    /// out connection, a transient SMTP reply). `after` is the delay the receiver asked
    /// for (`Retry-After`), if it asked.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The receiver says the endpoint is gone for good (HTTP 410): Standard Webhooks asks
    /// senders to stop using it, so it is disabled and its owner told.
    Gone { reason: String },
    /// This notice can never reach this address (a URL that does not parse, a permanent
    /// SMTP refusal): no retry would help.
    Refused { reason: String },
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered)
    }
}

/// One delivery channel.
pub trait Notifier: Send + Sync {
    /// Where this channel delivers to.
    type Address: Send + Sync;

    /// Makes one attempt to deliver `notice` to `to`, at `now`.
    fn deliver(
        &self,
        notice: &Notice,
        to: &Self::Address,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Outcome> + Send;
}
