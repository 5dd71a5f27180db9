//! What a caller hands to the audit trail: who did what to which subject, and the
//! state before and after.

use serde::Serialize;

/// The kind of change. The string form is what is stored and filtered on; never change
/// a shipped one, because old records carry it under their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ModelCreated,
    ModelUpdated,
    VersionCreated,
    VersionStatusChanged,
    TokenCreated,
    TokenRevoked,
    AuditRead,
    AuditReadDenied,
    AuditExported,
    ArtifactUploaded,
    ArtifactDownloadRefused,
    SignerAdded,
    SignerDisabled,
    SignatureAttached,
    ModelRolledBack,
    ConsumerDeclared,
    ConsumerUpdated,
    ConsumerRemoved,
    ConsumerDiscovered,
    EdgeDeclared,
    EdgeRemoved,
    UsageObserved,
    RegistrationsApplied,
    WebhookSourceCreated,
    WebhookSourceDisabled,
    RetirementScheduled,
    RetirementStateChanged,
    RetirementDependentAdded,
    RetirementAcknowledged,
    RetirementExtensionRequested,
    RetirementExtensionDecided,
    RetirementDependentOverridden,
    RetirementPostponed,
    NoticeDeadLettered,
    ConsumerWebhookDisabled,
    RetirementExecutionStarted,
    VersionsDisabled,
    KeysErased,
    KekRotated,
    KekDestroyed,
    RestoreErasuresAccepted,
    CiphertextDeleted,
    ErasureVerified,
    SignaturesRevoked,
    CertificateIssued,
    PurgeRecorded,
    DecommissionStepFailed,
    EnforcementConfirmed,
    EnforcementEscalated,
    EmergencyRetirement,
    EmergencyErasureApproved,
    KillSwitchLifted,
    SecurityAlertReceived,
    /// Stored data that a signed document would state disagreed with the audit trail,
    /// and the document was refused.
    IntegrityRefused,
    /// A destruction certificate was read (by an auditor).
    CertificateRead,
    /// A rollback was refused because its target failed verification.
    RollbackRefused,
    CalendarFeedCreated,
    CalendarFeedRevoked,
    /// Someone signed in to the console with a token, or signed out.
    ConsoleSignedIn,
    ConsoleSignedOut,
    /// An authenticated caller was refused by an authorisation rule.
    AccessRefused,
    /// A compliance report was generated and signed for someone.
    ComplianceReportIssued,
    /// A signed validation attestation was verified and its results kept.
    ValidationAttested,
    GrantCreated,
    GrantRevoked,
    PolicyChanged,
    PromotionRequested,
    PromotionWithdrawn,
    EmergencyDeploymentRequested,
    EmergencyDeploymentSettled,
    RetentionProposed,
    RetentionDecided,
}

impl Action {
    pub const ALL: [Action; 72] = [
        Action::ModelCreated,
        Action::ModelUpdated,
        Action::VersionCreated,
        Action::VersionStatusChanged,
        Action::TokenCreated,
        Action::TokenRevoked,
        Action::AuditRead,
        Action::AuditReadDenied,
        Action::AuditExported,
        Action::ArtifactUploaded,
        Action::ArtifactDownloadRefused,
        Action::SignerAdded,
        Action::SignerDisabled,
        Action::SignatureAttached,
        Action::ModelRolledBack,
        Action::ConsumerDeclared,
        Action::ConsumerUpdated,
        Action::ConsumerRemoved,
        Action::ConsumerDiscovered,
        Action::EdgeDeclared,
        Action::EdgeRemoved,
        Action::UsageObserved,
        Action::RegistrationsApplied,
        Action::WebhookSourceCreated,
        Action::WebhookSourceDisabled,
        Action::RetirementScheduled,
        Action::RetirementStateChanged,
        Action::RetirementDependentAdded,
        Action::RetirementAcknowledged,
        Action::RetirementExtensionRequested,
        Action::RetirementExtensionDecided,
        Action::RetirementDependentOverridden,
        Action::RetirementPostponed,
        Action::NoticeDeadLettered,
        Action::ConsumerWebhookDisabled,
        Action::RetirementExecutionStarted,
        Action::VersionsDisabled,
        Action::KeysErased,
        Action::KekRotated,
        Action::KekDestroyed,
        Action::RestoreErasuresAccepted,
        Action::CiphertextDeleted,
        Action::ErasureVerified,
        Action::SignaturesRevoked,
        Action::CertificateIssued,
        Action::PurgeRecorded,
        Action::DecommissionStepFailed,
        Action::EnforcementConfirmed,
        Action::EnforcementEscalated,
        Action::EmergencyRetirement,
        Action::EmergencyErasureApproved,
        Action::KillSwitchLifted,
        Action::SecurityAlertReceived,
        Action::IntegrityRefused,
        Action::CertificateRead,
        Action::RollbackRefused,
        Action::CalendarFeedCreated,
        Action::CalendarFeedRevoked,
        Action::ConsoleSignedIn,
        Action::ConsoleSignedOut,
        Action::AccessRefused,
        Action::ComplianceReportIssued,
        Action::ValidationAttested,
        Action::GrantCreated,
        Action::GrantRevoked,
        Action::PolicyChanged,
        Action::PromotionRequested,
        Action::PromotionWithdrawn,
        Action::EmergencyDeploymentRequested,
        Action::EmergencyDeploymentSettled,
        Action::RetentionProposed,
        Action::RetentionDecided,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ModelCreated => "model.created",
            Action::ModelUpdated => "model.updated",
            Action::VersionCreated => "version.created",
            Action::VersionStatusChanged => "version.status_changed",
            Action::TokenCreated => "token.created",
            Action::TokenRevoked => "token.revoked",
            Action::AuditRead => "audit.read",
            Action::AuditReadDenied => "audit.read_denied",
            Action::AuditExported => "audit.exported",
            Action::ArtifactUploaded => "artifact.uploaded",
            Action::ArtifactDownloadRefused => "artifact.download_refused",
            Action::SignerAdded => "signer.added",
            Action::SignerDisabled => "signer.disabled",
            Action::SignatureAttached => "signature.attached",
            Action::ModelRolledBack => "model.rolled_back",
            Action::ConsumerDeclared => "consumer.declared",
            Action::ConsumerUpdated => "consumer.updated",
            Action::ConsumerRemoved => "consumer.removed",
            Action::ConsumerDiscovered => "consumer.discovered",
            Action::EdgeDeclared => "inventory.edge_declared",
            Action::EdgeRemoved => "inventory.edge_removed",
            Action::UsageObserved => "inventory.usage_observed",
            Action::RegistrationsApplied => "inventory.registrations_applied",
            Action::WebhookSourceCreated => "webhook_source.created",
            Action::WebhookSourceDisabled => "webhook_source.disabled",
            Action::RetirementScheduled => "retirement.scheduled",
            Action::RetirementStateChanged => "retirement.state_changed",
            Action::RetirementDependentAdded => "retirement.dependent_added",
            Action::RetirementAcknowledged => "retirement.acknowledged",
            Action::RetirementExtensionRequested => "retirement.extension_requested",
            Action::RetirementExtensionDecided => "retirement.extension_decided",
            Action::RetirementDependentOverridden => "retirement.dependent_overridden",
            Action::RetirementPostponed => "retirement.postponed",
            Action::NoticeDeadLettered => "notice.dead_lettered",
            Action::ConsumerWebhookDisabled => "consumer.webhook_disabled",
            Action::RetirementExecutionStarted => "retirement.execution_started",
            Action::VersionsDisabled => "retirement.versions_disabled",
            Action::KeysErased => "retirement.keys_erased",
            Action::KekRotated => "vault.kek_rotated",
            Action::KekDestroyed => "vault.kek_destroyed",
            Action::RestoreErasuresAccepted => "vault.restore_erasures_accepted",
            Action::CiphertextDeleted => "retirement.ciphertext_deleted",
            Action::ErasureVerified => "retirement.erasure_verified",
            Action::SignaturesRevoked => "signature.revoked",
            Action::CertificateIssued => "certificate.issued",
            Action::PurgeRecorded => "retirement.purge_recorded",
            Action::DecommissionStepFailed => "retirement.step_failed",
            Action::EnforcementConfirmed => "enforcement.confirmed",
            Action::EnforcementEscalated => "enforcement.escalated",
            Action::EmergencyRetirement => "retirement.emergency",
            Action::EmergencyErasureApproved => "retirement.erasure_approved",
            Action::KillSwitchLifted => "retirement.kill_switch_lifted",
            Action::SecurityAlertReceived => "security_alert.received",
            Action::IntegrityRefused => "integrity.refused",
            Action::CertificateRead => "certificate.read",
            Action::RollbackRefused => "model.rollback_refused",
            Action::CalendarFeedCreated => "calendar_feed.created",
            Action::CalendarFeedRevoked => "calendar_feed.revoked",
            Action::ConsoleSignedIn => "console.signed_in",
            Action::ConsoleSignedOut => "console.signed_out",
            Action::AccessRefused => "access.refused",
            Action::ComplianceReportIssued => "compliance_report.issued",
            Action::ValidationAttested => "validation.attested",
            Action::GrantCreated => "grant.created",
            Action::GrantRevoked => "grant.revoked",
            Action::PolicyChanged => "model.policy_changed",
            Action::PromotionRequested => "version.promotion_requested",
            Action::PromotionWithdrawn => "version.promotion_withdrawn",
            Action::EmergencyDeploymentRequested => "emergency_deployment.requested",
            Action::EmergencyDeploymentSettled => "emergency_deployment.settled",
            Action::RetentionProposed => "retention.proposed",
            Action::RetentionDecided => "retention.decided",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectType {
    Model,
    ModelVersion,
    ApiToken,
    AuditLog,
    Artifact,
    Signer,
    Consumer,
    InventoryEdge,
    WebhookSource,
    Retirement,
    Notice,
    /// A request: a GraphQL document or an HTTP route.
    Operation,
    /// A grant of a role on models; the subject is its pattern.
    Grant,
}

impl SubjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectType::Model => "model",
            SubjectType::ModelVersion => "model_version",
            SubjectType::ApiToken => "api_token",
            SubjectType::AuditLog => "audit_log",
            SubjectType::Artifact => "artifact",
            SubjectType::Signer => "signer",
            SubjectType::Consumer => "consumer",
            SubjectType::InventoryEdge => "inventory_edge",
            SubjectType::WebhookSource => "webhook_source",
            SubjectType::Retirement => "retirement",
            SubjectType::Notice => "notice",
            SubjectType::Operation => "operation",
            SubjectType::Grant => "grant",
        }
    }
}

/// Who makes a change: the name and role recorded, and the client's address when the
/// change came over the network.
#[derive(Debug, Clone, Copy)]
pub struct AuditIdentity<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub client_ip: Option<std::net::IpAddr>,
}

impl<'a> From<(&'a str, &'a str)> for AuditIdentity<'a> {
    fn from((name, role): (&'a str, &'a str)) -> Self {
        Self {
            name,
            role,
            client_ip: None,
        }
    }
}

/// A record to append. `before` and `after` are snapshots serialised to JSON once, here,
/// and stored as that exact text, so the hash covers what an auditor reads.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub actor_role: String,
    pub action: Action,
    pub subject_type: SubjectType,
    pub subject: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub client_ip: Option<std::net::IpAddr>,
}

impl AuditEntry {
    pub fn new<'a>(
        actor: impl Into<AuditIdentity<'a>>,
        action: Action,
        subject_type: SubjectType,
        subject: impl Into<String>,
    ) -> Self {
        let actor = actor.into();
        Self {
            actor: actor.name.to_owned(),
            actor_role: actor.role.to_owned(),
            client_ip: actor.client_ip,
            action,
            subject_type,
            subject: subject.into(),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, state: &impl Serialize) -> Self {
        self.before = Some(to_json(state));
        self
    }

    pub fn after(mut self, state: &impl Serialize) -> Self {
        self.after = Some(to_json(state));
        self
    }
}

fn to_json(state: &impl Serialize) -> String {
    // Serialising our own snapshot structs cannot fail (no maps with non-string keys);
    // should it ever, the record still says so rather than dropping the state.
    serde_json::to_string(state)
        .unwrap_or_else(|e| format!("{{\"unserialisable\":{:?}}}", e.to_string()))
}
