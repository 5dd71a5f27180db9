//! The automated circuit breaker (AISVS 3.3.4, 3.6.4): a signed security alert (Standard
//! Webhooks, from a registered webhook source) of `critical` severity naming a model
//! version pulls that version's kill switch by itself, as an emergency retirement by
//! `circuit-breaker:<source>`, when policy (`retirement.circuit_breaker_sources`) lists
//! the source. Every alert is recorded in the audit trail, acted on or not.

use super::ServiceError;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::{Actor, ActorKind};
use crate::domain::{ModelName, ParseError, Role, Version};
use crate::service::ReceiveError;
use crate::store::webhook_sources;
use notifiers::standard_webhooks::Headers;
use serde::{Deserialize, Serialize};

/// The largest alert body accepted.
pub const MAX_ALERT_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Alert {
    /// `critical`, `high`, `medium`, `low` or `info`.
    severity: String,
    model: String,
    version: String,
    summary: String,
}

/// What an alert led to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertOutcome {
    /// `kill-switch` (an emergency retirement now), `already-disabled`, `recorded`, or
    /// `duplicate` (this message id was received before; nothing done or recorded).
    pub action: String,
    pub retirement_id: Option<i64>,
    /// From receiving the alert to the kill switch's commit.
    pub response_ms: Option<f64>,
    /// Why nothing more was done, when nothing was.
    pub note: Option<String>,
}

/// An alert that parsed: a known severity (lower case) and a valid model version.
struct ParsedAlert {
    severity: String,
    model: ModelName,
    version: Version,
    summary: String,
}

impl ParsedAlert {
    fn parse(body: &[u8]) -> Result<Self, ServiceError> {
        let alert: Alert = serde_json::from_slice(body).map_err(|e| {
            ParseError::new(
                "alert",
                format!("is not {{severity, model, version, summary}} JSON: {e}"),
            )
        })?;
        let model = ModelName::parse(&alert.model)?;
        let version = Version::parse(&alert.version)?;
        let severity = alert.severity.to_ascii_lowercase();
        if !["critical", "high", "medium", "low", "info"].contains(&severity.as_str()) {
            return Err(
                ParseError::new("severity", "must be critical, high, medium, low or info").into(),
            );
        }
        Ok(Self {
            severity,
            model,
            version,
            summary: alert.summary,
        })
    }
}

impl AlertOutcome {
    fn nothing_more(action: &str, note: String) -> Self {
        Self {
            action: action.into(),
            retirement_id: None,
            response_ms: None,
            note: Some(note),
        }
    }

    /// Why policy leaves an alert at being recorded, if it does.
    fn held_back(severity: &str, source: &str, allowed: bool) -> Option<Self> {
        if severity != "critical" {
            Some(Self::nothing_more(
                "recorded",
                format!("severity {severity}: only critical alerts trip the breaker"),
            ))
        } else if !allowed {
            Some(Self::nothing_more(
                "recorded",
                format!(
                    "policy does not let source {source} trip the breaker \
                     (retirement.circuit_breaker_sources)"
                ),
            ))
        } else {
            None
        }
    }
}

impl crate::service::Decommission<'_> {
    /// Verifies a security alert and acts on it as policy allows.
    pub async fn receive_security_alert(
        &self,
        headers: Headers<'_>,
        body: &[u8],
    ) -> Result<AlertOutcome, ReceiveError> {
        let received = std::time::Instant::now();
        if body.len() > MAX_ALERT_BYTES {
            return Err(ServiceError::from(ParseError::new(
                "alert",
                format!("is larger than {MAX_ALERT_BYTES} bytes"),
            ))
            .into());
        }
        let (signer, message_id) = self.inventory().authenticate_source(&headers, body).await?;
        let source = signer.name.clone();
        // Standard Webhooks: a redelivered message is answered, not applied again (its
        // receipt is written with the alert's audit record below).
        if webhook_sources::was_received(self.store().reader(), signer.id, message_id)
            .await
            .map_err(ServiceError::from)?
        {
            return Ok(AlertOutcome::nothing_more(
                "duplicate",
                format!("message {message_id} was received before; not applied again"),
            ));
        }
        let alert = ParsedAlert::parse(body)?;
        let allowed = self
            .inner
            .decommission
            .circuit_breaker_sources
            .contains(&source);
        let outcome = match AlertOutcome::held_back(&alert.severity, &source, allowed) {
            Some(held) => held,
            None => self.trip(&source, message_id, &alert, received).await?,
        };
        self.record_alert(signer.id, &source, message_id, &alert, &outcome)
            .await?;
        Ok(outcome)
    }

    /// Pulls the kill switch of the alert's version as an emergency retirement by
    /// `circuit-breaker:<source>`.
    async fn trip(
        &self,
        source: &str,
        message_id: &str,
        alert: &ParsedAlert,
        received: std::time::Instant,
    ) -> Result<AlertOutcome, ServiceError> {
        let breaker = Actor {
            name: format!("circuit-breaker:{source}"),
            role: Role::Security,
            team: None,
            kind: ActorKind::System,
            consumer: None,
            client_ip: None,
        };
        let assessment = format!(
            "critical security alert {message_id} from {source}: {}",
            alert.summary
        );
        let tripped = self
            .emergency_retirement(
                &breaker,
                alert.model.as_str(),
                &alert.version.to_string(),
                &assessment,
                &format!("circuit-breaker:{source}"),
            )
            .await;
        match tripped {
            Ok((retirement, _)) => Ok(AlertOutcome {
                action: "kill-switch".into(),
                retirement_id: Some(retirement.id.0),
                response_ms: Some(received.elapsed().as_secs_f64() * 1000.0),
                note: None,
            }),
            // A repeat of the alert, or the version was disabled by other means.
            Err(ServiceError::Conflict(why)) => {
                Ok(AlertOutcome::nothing_more("already-disabled", why))
            }
            Err(e) => Err(e),
        }
    }

    /// The alert's receipt and audit record, whatever it led to.
    async fn record_alert(
        &self,
        source_id: i64,
        source: &str,
        message_id: &str,
        alert: &ParsedAlert,
        outcome: &AlertOutcome,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        in_write_tx!(self, |tx| {
            // A copy delivered twice at once: the first to commit records it.
            if !webhook_sources::was_received(tx.conn(), source_id, message_id).await? {
                webhook_sources::record_receipt(tx.conn(), source_id, message_id, now).await?;
            }
            let entry = AuditEntry::new(
                (source, "webhook_source"),
                Action::SecurityAlertReceived,
                SubjectType::ModelVersion,
                format!("{}@{}", alert.model, alert.version),
            )
            .after(&serde_json::json!({
                "messageId": message_id,
                "severity": alert.severity,
                "summary": alert.summary,
                "outcome": outcome,
            }));
            self.append_audit(tx, now, entry).await
        })
    }
}
