//! What decommissioning a retirement leaves behind: versions no longer served, the steps
//! of the execution, and derived stores' purge confirmations.

use super::ParseError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

word_enum!(
    /// The steps of executing a retirement, in the order they run (`ALL`, and `Ord`).
    DecommissionStep, "decommission step", {
        KillSwitch => "kill-switch",
        Enforcement => "enforcement",
        DerivedData => "derived-data",
        ErasureApproval => "erasure-approval",
        EraseKeys => "erase-keys",
        RotateKek => "rotate-kek",
        DestroyKek => "destroy-kek",
        DeleteCiphertext => "delete-ciphertext",
        VerifyErasure => "verify-erasure",
        RevokeSignatures => "revoke-signatures",
        Certificate => "certificate",
    }
);

/// A version that is no longer served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisabledVersion {
    #[serde(skip)]
    pub version_id: i64,
    pub model: String,
    pub version: String,
    pub retirement_id: Option<super::RetirementId>,
    pub disabled_at: DateTime<Utc>,
    pub disabled_by: String,
    pub reason: String,
    /// The version's lifecycle status before the kill switch retired it, so a lifted
    /// kill switch puts it back.
    #[serde(skip)]
    pub prior_status: Option<String>,
}

/// One step of executing a retirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub step: DecommissionStep,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    /// What the step keeps to resume or to report (JSON); not shown.
    #[serde(skip)]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Purge {
    #[serde(skip)]
    pub consumer_id: super::ConsumerId,
    pub consumer: String,
    /// `confirmed` (the store's owner purged it) or `waived` (governance, with a note).
    pub outcome: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}
