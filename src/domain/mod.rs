//! Pure, synchronous domain types and rules. Every value here has been parsed:
//! holding a `ModelName` means holding a valid model name.
//!
//! Architecture invariant: this module imports neither sea_orm, axum nor
//! async_graphql, and does no I/O.

// First, so every module below can use it.
#[macro_use]
mod word_enum;

mod artifact;
mod contact;
mod decommission;
mod dependent;
mod emergency_deployment;
mod error;
mod grant;
mod ids;
mod inventory;
mod levers;
mod lifecycle;
mod names;
mod notice;
mod notice_policy;
mod policy;
mod provenance;
mod records;
mod retention;
mod retirement;
mod role;
mod signer;
mod tier;
mod version;

pub use artifact::{ArtifactKind, ArtifactPath};
pub use contact::{Contacts, EmailAddress};
pub use decommission::{DecommissionStep, DisabledVersion, Purge, Step};
pub use dependent::{Dependent, Finding, NoPendingExtension};
pub use emergency_deployment::{
    DeploymentState, EmergencyDeployment, MAX_VALID_HOURS, valid_hours,
};
pub use error::ParseError;
pub use grant::{Grant, GrantPattern, Grantee, grantable};
pub use ids::{ConsumerId, EdgeId, GrantId, ModelId, RetirementId, VersionId};
pub use inventory::{
    Consumer, ConsumerKind, ConsumerName, Derivation, EdgeKind, EdgeOrigin, Environment,
    EvidenceRemover, SourceChange, VersionRange, WebhookUrl,
};
pub use levers::{Brownout, DailyBrownouts, Levers};
pub use lifecycle::{LifecycleStatus, TransitionRule};
pub use names::{ModelName, SignerName, TeamName, TokenName};
pub use notice::{Channel, NoticeState, OutboxNotice, delivery_error_category};
pub use notice_policy::{NoticePolicy, TierNotice, TooEarly};
pub use policy::{ModelPolicy, PolicyOverrides, environment_refusal, parse_environments};
pub use provenance::{
    AttestedValidation, DataChecksum, Provenance, ProvenanceInput, RuntimeDependency, Sha256Digest,
    ValidationResult,
};
pub use records::{RegisteredModel, RegisteredVersion, TokenInfo};
pub use retention::{
    DueBecause, DueVersion, KeptVersion, ProposalState, RetentionProposal, due_versions,
    effective_date, quiet_enough, rollback_target,
};
pub use retirement::{
    DependentStanding, ExtensionState, FoundBy, Holding, IllegalMove, Retirement, RetirementState,
};
pub use role::Role;
pub use signer::{SignatureAlgorithm, Signer, SignerKey, SignerPurpose, StoredSignature};
pub use tier::Tier;
pub use version::Version;

/// Free text such as a description or a justification: bounded, trimmed, no control
/// characters other than newlines and tabs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    pub fn parse(field: &'static str, raw: &str, max_chars: usize) -> Result<Self, ParseError> {
        let trimmed = raw.trim();
        let count = trimmed.chars().count();
        if count > max_chars {
            return Err(ParseError::new(
                field,
                format!("is {count} characters long; at most {max_chars} are accepted"),
            ));
        }
        if let Some(c) = trimmed
            .chars()
            .find(|c| c.is_control() && *c != '\n' && *c != '\t')
        {
            return Err(ParseError::new(
                field,
                format!(
                    "contains the control character {c:?}; only printable text, newlines and tabs are accepted"
                ),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Like [`Text::parse`], but refuses empty text: for justifications, which must say something.
    pub fn parse_required(
        field: &'static str,
        raw: &str,
        max_chars: usize,
    ) -> Result<Self, ParseError> {
        let text = Self::parse(field, raw, max_chars)?;
        if text.0.chars().count() < 10 {
            return Err(ParseError::new(
                field,
                "must be a written justification of at least 10 characters",
            ));
        }
        Ok(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
