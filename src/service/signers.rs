//! Authorised signers (AISVS 3.1.1): admins register whose signatures count, and can
//! disable a signer, which stops its signatures from counting from then on. Signing keys
//! stay with their owners; sunset only ever holds public keys.

use super::{ServiceError, require_admin};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::Signer;
use crate::domain::{SignerKey, SignerName};
use crate::store::signers as repo;

impl super::Registry<'_> {
    pub async fn add_signer(
        &self,
        actor: &Actor,
        name: &str,
        public_key_pem: &str,
        purposes: &[String],
    ) -> Result<Signer, ServiceError> {
        let name = SignerName::parse(name)?;
        let key = SignerKey::parse_pem(public_key_pem)?;
        let purposes = if purposes.is_empty() {
            vec![crate::domain::SignerPurpose::ModelSigning]
        } else {
            crate::domain::SignerPurpose::parse_list(&purposes.join(","))?
        };
        require_admin(actor, "register signers")?;
        let signer = in_write_tx!(self, |tx| {
            if repo::find_by_name(tx.conn(), &name).await?.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "a signer named {name} exists; signer names are never reused"
                )));
            }
            if let Some(existing) = repo::find_by_key_id(tx.conn(), &key.key_id()).await? {
                return Err(ServiceError::Conflict(format!(
                    "this public key is already registered, as signer {}",
                    existing.name
                )));
            }
            let signer = Signer {
                name: name.clone(),
                purposes: purposes.clone(),
                algorithm: key.algorithm,
                public_key_pem: key.to_pem(),
                key_id: key.key_id(),
                enabled: true,
                created_at: self.now(),
                created_by: actor.name.clone(),
                disabled_at: None,
            };
            repo::insert(tx.conn(), &signer).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::SignerAdded,
                SubjectType::Signer,
                name.as_str(),
            )
            .after(&signer);
            self.append_audit(tx, signer.created_at, entry).await?;
            Ok(signer)
        })?;
        tracing::info!(signer = %name, algorithm = %signer.algorithm, actor = %actor.name, "signer registered");
        Ok(signer)
    }

    pub async fn disable_signer(&self, actor: &Actor, name: &str) -> Result<Signer, ServiceError> {
        let name = SignerName::parse(name)?;
        require_admin(actor, "disable signers")?;
        in_write_tx!(self, |tx| {
            let before = repo::find_by_name(tx.conn(), &name)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no signer named {name}")))?;
            if !before.enabled {
                return Err(ServiceError::Conflict(format!(
                    "signer {name} is already disabled"
                )));
            }
            let now = self.now();
            repo::disable(tx.conn(), &name, now).await?;
            let after = before.disabled(now);
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::SignerDisabled,
                SubjectType::Signer,
                name.as_str(),
            )
            .before(&before)
            .after(&after);
            self.append_audit(tx, now, entry).await?;
            Ok(after)
        })
    }

    /// Every signer, enabled or not: public facts only.
    pub async fn signers(&self) -> Result<Vec<Signer>, ServiceError> {
        Ok(repo::list(self.store().reader()).await?)
    }
}
