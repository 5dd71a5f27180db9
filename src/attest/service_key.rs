//! The service's Ed25519 key. It signs audit checkpoints (and, later, revocation lists
//! and destruction certificates). It lives in the key folder as a file readable by the
//! owner only, never in the database: whoever can rewrite the database must not be able
//! to forge what the key vouches for.

use crate::key_file;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::path::Path;
use zeroize::Zeroizing;

pub use crate::key_file::KeyFileError;

pub const FILE_NAME: &str = "service-ed25519.key";

pub struct ServiceKey {
    signing: SigningKey,
    audit_mac: crate::audit::AuditMacKey,
    secret_sealer: super::SecretSealer,
    link_tokens: super::LinkTokenKey,
}

impl ServiceKey {
    /// Loads the key from `key_dir`, creating it (mode 0600, exclusively) on first use.
    pub fn load_or_create(key_dir: &Path) -> Result<Self, KeyFileError> {
        Ok(Self::load_or_create_noting(key_dir)?.0)
    }

    /// As [`Self::load_or_create`], and whether the key was created just now (so a
    /// caller holding data can refuse a key that cannot be the one it was written with).
    pub fn load_or_create_noting(key_dir: &Path) -> Result<(Self, bool), KeyFileError> {
        let path = Self::path_in(key_dir);
        let candidate = SigningKey::generate(&mut rand::rng());
        let seed = Zeroizing::new(candidate.to_bytes());
        let created = key_file::create_new(&path, seed.as_ref())?;
        if created {
            tracing::info!(path = %path.display(), "created the service signing key");
        }
        Ok((Self::load(&path)?, created))
    }

    /// Where the key file is in `key_dir`.
    pub fn path_in(key_dir: &Path) -> std::path::PathBuf {
        key_dir.join(FILE_NAME)
    }

    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let seed = key_file::load::<32>(path)?;
        Ok(Self::from_signing(SigningKey::from_bytes(&seed)))
    }

    /// Loads the key `settings` name: `service_key_file` (managed outside sunset, so its
    /// group may read it) or the key folder's file.
    pub fn load_configured(settings: &crate::config::Settings) -> Result<Self, KeyFileError> {
        let path = settings.service_key_path();
        let seed = match settings.service_key_file {
            Some(_) => key_file::load_shared::<32>(&path)?,
            None => key_file::load::<32>(&path)?,
        };
        Ok(Self::from_signing(SigningKey::from_bytes(&seed)))
    }

    /// Writes a new key to `path` (mode 0600), for `service_key_file`; false, writing
    /// nothing, when the file exists.
    pub fn create_at(path: &Path) -> Result<bool, KeyFileError> {
        let seed = Zeroizing::new(SigningKey::generate(&mut rand::rng()).to_bytes());
        key_file::create_new(path, seed.as_ref())
    }

    fn from_signing(signing: SigningKey) -> Self {
        let seed = Zeroizing::new(signing.to_bytes());
        Self {
            audit_mac: crate::audit::AuditMacKey::derive(&seed),
            secret_sealer: super::SecretSealer::derive(&seed),
            link_tokens: super::LinkTokenKey::derive(&seed),
            signing,
        }
    }

    /// The key that authenticates each audit record, derived from this one.
    pub fn audit_mac_key(&self) -> &crate::audit::AuditMacKey {
        &self.audit_mac
    }

    /// The key that seals webhook secrets in the database, derived from this one.
    pub fn secret_sealer(&self) -> &super::SecretSealer {
        &self.secret_sealer
    }

    /// The key that vouches for the links in notices (acknowledgements), derived from
    /// this one.
    pub fn link_token_key(&self) -> &super::LinkTokenKey {
        &self.link_tokens
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as a PEM SubjectPublicKeyInfo, the form `openssl` and DSSE tools read.
    pub fn public_key_pem(&self) -> String {
        use base64::Engine;
        // DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }.
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(self.verifying_key().as_bytes());
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKey")
            .field(
                "key_id",
                &crate::audit::checkpoint_key_id(&self.verifying_key()),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_created_once_owner_only_and_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServiceKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let b = ServiceKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.verifying_key(), b.verifying_key());
        assert!(
            a.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2Vw")
        );
    }

    #[test]
    fn a_service_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ServiceKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ServiceKey::load(&path),
            Err(KeyFileError::TooOpen { .. })
        ));
    }
}
