//! Authorised signers over GraphQL: anyone may see who signs; only admins change it.

use super::guard::{ANY_ROLE, RoleGuard, actor, services};
use crate::domain::Role;
use crate::domain::Signer as StoredSigner;
use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// A registered signer: whose signatures on model versions count while it is enabled.
#[derive(SimpleObject)]
pub struct Signer {
    name: String,
    /// `ecdsa-p256` or `ed25519`.
    algorithm: String,
    public_key_pem: String,
    /// Hex SHA-256 of the DER SubjectPublicKeyInfo.
    key_id: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    created_by: String,
    disabled_at: Option<DateTime<Utc>>,
    /// What its signatures count for: `model-signing`, `validator`.
    purposes: Vec<String>,
}

impl From<StoredSigner> for Signer {
    fn from(s: StoredSigner) -> Self {
        Self {
            name: s.name.to_string(),
            purposes: s.purposes.iter().map(|p| p.as_str().to_owned()).collect(),
            algorithm: s.algorithm.to_string(),
            public_key_pem: s.public_key_pem,
            key_id: s.key_id,
            enabled: s.enabled,
            created_at: s.created_at,
            created_by: s.created_by,
            disabled_at: s.disabled_at,
        }
    }
}

#[derive(Default)]
pub struct SignerQuery;

#[Object]
impl SignerQuery {
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn signers(&self, ctx: &Context<'_>) -> Result<Vec<Signer>> {
        Ok(services(ctx)?
            .registry()
            .signers()
            .await?
            .into_iter()
            .map(Signer::from)
            .collect())
    }
}

#[derive(Default)]
pub struct SignerMutation;

#[Object]
impl SignerMutation {
    /// Registers a signer by its PEM public key (ECDSA P-256 or Ed25519). `purposes` says
    /// what its signatures count for: `model-signing` (the default) and/or `validator`
    /// (signed validation results).
    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn add_signer(
        &self,
        ctx: &Context<'_>,
        name: String,
        public_key_pem: String,
        purposes: Option<Vec<String>>,
    ) -> Result<Signer> {
        Ok(services(ctx)?
            .registry()
            .add_signer(
                actor(ctx)?,
                &name,
                &public_key_pem,
                &purposes.unwrap_or_default(),
            )
            .await?
            .into())
    }

    /// Disables a signer: its signatures stop counting.
    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn disable_signer(&self, ctx: &Context<'_>, name: String) -> Result<Signer> {
        Ok(services(ctx)?
            .registry()
            .disable_signer(actor(ctx)?, &name)
            .await?
            .into())
    }
}
