//! Notices to dependents: where each stands in the outbox, and how it travels.

use super::ParseError;
use chrono::{DateTime, Utc};
use std::fmt;

word_enum!(
    /// Where a notice stands.
    NoticeState, "notice state", {
        /// Waiting for its next attempt (or being attempted, under a lease).
        Pending => "pending",
        Delivered => "delivered",
        /// Every attempt failed, or it could never be delivered: escalated.
        Dead => "dead",
        /// Its retirement was cancelled before it went out.
        Cancelled => "cancelled",
    }
);

word_enum!(
    /// How a notice travels.
    Channel, "notice channel", {
        /// To the consumer's webhook, with its secret, both read at each attempt.
        Webhook => "webhook",
        Email => "email",
    }
);

/// One notice in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxNotice {
    pub id: String,
    pub retirement_id: super::RetirementId,
    /// The dependent it is for; `None` for escalations to owners and governance.
    pub consumer_id: Option<super::ConsumerId>,
    /// The payload's `type`.
    pub kind: String,
    pub channel: Channel,
    pub recipients: Vec<String>,
    /// The JSON payload, as written: every attempt sends these exact bytes.
    pub payload: String,
    pub state: NoticeState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl OutboxNotice {
    /// An attempt was made at `at`: counted, and its time kept.
    pub fn attempted(&mut self, at: DateTime<Utc>) {
        self.attempts += 1;
        self.last_attempt_at = Some(at);
    }

    pub fn delivered(&mut self, at: DateTime<Utc>) {
        self.state = NoticeState::Delivered;
        self.delivered_at = Some(at);
        self.last_error = None;
    }

    /// To be tried again at `next`, after `error`.
    pub fn retry_at(&mut self, next: DateTime<Utc>, error: String) {
        self.next_attempt_at = next;
        self.last_error = Some(error);
    }

    /// Given up on: escalated by the caller.
    pub fn dead(&mut self, error: String) {
        self.state = NoticeState::Dead;
        self.last_error = Some(error);
    }
}

/// What kind of failure a delivery error was, without its details: what every role may
/// read of a notice's last error (the text itself can describe the receiver's network,
/// so only governance and the consumer's own team read it whole).
pub fn delivery_error_category(error: &str) -> &'static str {
    let lower = error.to_ascii_lowercase();
    if let Some(rest) = lower.split("the receiver answered http ").nth(1) {
        return match rest.as_bytes().first() {
            Some(b'4') => "http-4xx",
            Some(b'5') => "http-5xx",
            _ => "http-other",
        };
    }
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["internal address", "must use https", "unusable"]) {
        "refused-by-policy"
    } else if has(&["timed out", "timeout", "deadline"]) {
        "timeout"
    } else if has(&["connection refused", "refused"]) {
        "refused"
    } else if has(&["dns", "resolve", "lookup", "no address"]) {
        "dns"
    } else if has(&["certificate", "tls", "handshake"]) {
        "tls"
    } else if has(&["smtp", "mail"]) {
        "smtp"
    } else if has(&["connection", "reset", "closed", "broken pipe"]) {
        "connection"
    } else {
        "error"
    }
}

#[cfg(test)]
mod delivery_error_tests {
    use super::delivery_error_category as category;

    #[test]
    fn delivery_errors_fall_into_categories_that_reveal_no_detail() {
        assert_eq!(category("the receiver answered HTTP 503"), "http-5xx");
        assert_eq!(category("the receiver answered HTTP 404"), "http-4xx");
        assert_eq!(
            category(
                "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)"
            ),
            "refused"
        );
        assert_eq!(
            category("error sending request: operation timed out"),
            "timeout"
        );
        assert_eq!(
            category("127.0.0.1 is an internal address (loopback, …)"),
            "refused-by-policy"
        );
        assert_eq!(
            category("dns error: failed to lookup address information"),
            "dns"
        );
        assert_eq!(category("invalid peer certificate: UnknownIssuer"), "tls");
        assert_eq!(category("something else"), "error");
    }
}
