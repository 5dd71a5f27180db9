//! The notice itself, and its JSON payload: a stable schema, in the shape Standard
//! Webhooks recommends (`type`, `timestamp`, `data`). Fields are only ever added; a
//! receiver may ignore those it does not know.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a notice is sent. Its `type` string is part of the schema and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// A retirement was scheduled, or a new dependent of a pending one was found.
    #[serde(rename = "model.retirement.scheduled")]
    Scheduled,
    /// A reminder of a pending retirement, on the tier's schedule.
    #[serde(rename = "model.retirement.reminder")]
    Reminder,
    /// The retirement's date or terms changed (postponed, extension granted).
    #[serde(rename = "model.retirement.updated")]
    Updated,
    /// The retirement was cancelled: nothing needs to change.
    #[serde(rename = "model.retirement.cancelled")]
    Cancelled,
    /// An emergency retirement: access is cut now.
    #[serde(rename = "model.retirement.emergency")]
    Emergency,
    /// To the model's owners and governance: a dependent's notice could not be
    /// delivered (every attempt failed, or it has no channel); `problem` says why.
    #[serde(rename = "model.retirement.undeliverable")]
    Undeliverable,
    /// To a dependent's contacts: its notice webhook answered 410 Gone and was disabled.
    #[serde(rename = "model.retirement.webhook_disabled")]
    WebhookDisabled,
    /// To an enforcement point (a gateway): the kill switch disabled these versions; stop
    /// serving them now, then confirm (`data.etag` is the disabled list's new ETag).
    #[serde(rename = "model.versions.disabled")]
    Disabled,
    /// To an enforcement point: a retirement's brownouts changed (scheduled, a dependent
    /// acknowledged, the retirement ended); `data.brownouts` are its windows still to
    /// come, `data.refused` the consumers to refuse in them, and `data.etag` the new
    /// ETag of `GET /v1/brownouts`.
    #[serde(rename = "model.versions.brownouts")]
    Brownouts,
}

impl NoticeKind {
    /// The `type` string of the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Scheduled => "model.retirement.scheduled",
            NoticeKind::Reminder => "model.retirement.reminder",
            NoticeKind::Updated => "model.retirement.updated",
            NoticeKind::Cancelled => "model.retirement.cancelled",
            NoticeKind::Emergency => "model.retirement.emergency",
            NoticeKind::Undeliverable => "model.retirement.undeliverable",
            NoticeKind::WebhookDisabled => "model.retirement.webhook_disabled",
            NoticeKind::Disabled => "model.versions.disabled",
            NoticeKind::Brownouts => "model.versions.brownouts",
        }
    }
}

/// A suggested replacement for the retired versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    pub model: String,
    pub version: Option<String>,
}

/// What a notice tells one dependent about one retirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoticeData {
    pub notice_id: String,
    pub retirement_id: String,
    pub model: String,
    /// The versions retired, as the retirement selected them (`2.1.0`, `^1`, `*`).
    pub versions: String,
    /// The versions of that selection that exist now.
    pub affected_versions: Vec<String>,
    pub reason: String,
    pub effective_at: DateTime<Utc>,
    pub replacement: Option<Replacement>,
    /// The dependent system this notice is for.
    pub dependent: String,
    /// When this dependent's notice period ends.
    pub notice_ends_at: DateTime<Utc>,
    /// Opens the acknowledgement (and extension request) page; needs no login, expires.
    pub acknowledge_url: String,
    /// For escalations and disabled webhooks: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// To enforcement points: the ETag of `GET /v1/disabled-versions` that includes these
    /// versions; confirming it (or polling and getting it) is the acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The retirement froze new consumers out: systems that were not dependents when
    /// the notice went out are refused the versions from now on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed_to_new_consumers: bool,
    /// Brownout windows still to come: downloads by dependents that have not
    /// acknowledged answer 503 during each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brownouts: Vec<BrownoutWindow>,
    /// To enforcement points, with brownouts: the consumers to refuse in them (the
    /// dependents that have not acknowledged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

/// One brownout window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrownoutWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One notice to one dependent. Its id is also the `webhook-id` of every attempt to
/// deliver it and the email's Message-ID, so receivers can drop repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(rename = "type")]
    pub kind: NoticeKind,
    /// When the notice was written (not when an attempt is made).
    pub timestamp: DateTime<Utc>,
    pub data: NoticeData,
}

impl Notice {
    pub fn id(&self) -> &str {
        &self.data.notice_id
    }

    /// The payload, as posted to webhooks and stored in the outbox.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| unreachable!("a notice always serialises"))
    }

    /// [`Notice::to_json`] as text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("a notice always serialises"))
    }
}

/// A notice with every field set, which templates are checked against when loaded.
pub(crate) fn sample() -> Notice {
    let at = DateTime::<Utc>::UNIX_EPOCH;
    Notice {
        kind: NoticeKind::Scheduled,
        timestamp: at,
        data: NoticeData {
            notice_id: "ntc_sample".into(),
            retirement_id: "ret_sample".into(),
            model: "sample-model".into(),
            versions: "^1".into(),
            affected_versions: vec!["1.0.0".into()],
            reason: "sample".into(),
            effective_at: at,
            replacement: Some(Replacement {
                model: "sample-model".into(),
                version: Some("2.0.0".into()),
            }),
            dependent: "sample-consumer".into(),
            notice_ends_at: at,
            acknowledge_url: "https://sunset.invalid/ack".into(),
            problem: Some("sample".into()),
            etag: None,
            closed_to_new_consumers: false,
            brownouts: Vec::new(),
            refused: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_has_the_documented_shape() {
        let at = DateTime::parse_from_rfc3339("2027-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let notice = Notice {
            kind: NoticeKind::Scheduled,
            timestamp: at,
            data: NoticeData {
                notice_id: "ntc_1".into(),
                retirement_id: "ret_1".into(),
                model: "fraud-scorer".into(),
                versions: "^2".into(),
                affected_versions: vec!["2.0.0".into(), "2.1.0".into()],
                reason: "superseded".into(),
                effective_at: at,
                replacement: Some(Replacement {
                    model: "fraud-scorer".into(),
                    version: Some("3.0.0".into()),
                }),
                dependent: "checkout".into(),
                notice_ends_at: at,
                acknowledge_url: "https://sunset.example/ack/t".into(),
                problem: None,
                etag: None,
                closed_to_new_consumers: false,
                brownouts: Vec::new(),
                refused: Vec::new(),
            },
        };
        let v: serde_json::Value = serde_json::from_slice(&notice.to_json()).unwrap();
        assert_eq!(v["type"], "model.retirement.scheduled");
        assert_eq!(v["timestamp"], "2027-03-01T00:00:00Z");
        assert_eq!(v["data"]["noticeId"], "ntc_1");
        assert_eq!(v["data"]["affectedVersions"][1], "2.1.0");
        assert_eq!(v["data"]["replacement"]["version"], "3.0.0");
        assert_eq!(v["data"]["acknowledgeUrl"], "https://sunset.example/ack/t");
        let back: Notice = serde_json::from_value(v).unwrap();
        assert_eq!(back, notice);
    }
}
