//! Where artifacts' ciphertext and the key-encryption keys live: the data folder by
//! default; object storage and an HSM for a fleet of replicas without a shared disk.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The environment variable the PKCS#11 user PIN may come from (never the config file).
pub const PKCS11_PIN_VARIABLE: &str = "SUNSET_PKCS11_PIN";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSettings {
    pub blobs: BlobSettings,
    pub kek: KekSettings,
}

/// Where ciphertext blobs go. Without `url`, the folder `blobs` in the data folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobSettings {
    /// `s3://bucket` or `s3://bucket/prefix`: any S3-compatible object storage.
    pub url: Option<String>,
    /// The S3 API's address, for storage other than AWS (MinIO, Ceph, a moto server).
    /// Also read from `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Also read from `AWS_REGION` / `AWS_DEFAULT_REGION`; `us-east-1` when unset.
    pub region: Option<String>,
    /// `bucket.host/key` addressing instead of `host/bucket/key` (path style, the
    /// default, which most S3-compatible servers expect).
    pub virtual_hosted_style: bool,
    /// Whether an `http://` endpoint is accepted (a server on the same host only).
    pub allow_http: bool,
    /// The access key's id; better from `AWS_ACCESS_KEY_ID`. Its secret comes from
    /// `AWS_SECRET_ACCESS_KEY`, or `secret_access_key_file`, never this file.
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

/// Which backend holds the key-encryption keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KekBackend {
    /// Files `keys/kek/kek-NNNNNNNN.key` in the data folder.
    #[default]
    File,
    /// Non-extractable AES-256 keys on a PKCS#11 token (an HSM, SoftHSM2, a cloud HSM).
    Pkcs11,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KekSettings {
    pub backend: KekBackend,
    /// The PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: Option<PathBuf>,
    /// The label of the token the keys are on.
    pub token_label: String,
    /// A file holding the user PIN (e.g. a mounted Secret); otherwise the PIN is read
    /// from `SUNSET_PKCS11_PIN`.
    pub pin_file: Option<PathBuf>,
    /// Key objects are labelled `<prefix>-NNNNNNNN` by epoch; deployments sharing a
    /// token use prefixes of their own.
    pub key_label_prefix: String,
}

impl Default for KekSettings {
    fn default() -> Self {
        Self {
            backend: KekBackend::File,
            module: None,
            token_label: "sunset".into(),
            pin_file: None,
            key_label_prefix: "sunset-kek".into(),
        }
    }
}

/// `s3://bucket/prefix` parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    pub bucket: String,
    pub prefix: String,
}

impl BucketUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            ConfigError(format!(
                "vault.blobs.url {url:?} must start with s3:// (leave it unset for the data folder)"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(ConfigError(format!(
                "vault.blobs.url: {bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.len() > 512 || prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(ConfigError(
                "vault.blobs.url: the prefix must be at most 512 characters, without . or .. parts"
                    .into(),
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl VaultSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.blobs.url {
            BucketUrl::parse(url)?;
        } else if self.blobs.endpoint.is_some() || self.blobs.access_key_id.is_some() {
            return Err(ConfigError(
                "vault.blobs: endpoint and credentials need a url (s3://bucket/prefix)".into(),
            ));
        }
        if let Some(endpoint) = &self.blobs.endpoint
            && !(endpoint.starts_with("https://")
                || (self.blobs.allow_http && endpoint.starts_with("http://")))
        {
            return Err(ConfigError(
                "vault.blobs.endpoint must be an https:// URL (http:// only with allow_http = true)"
                    .into(),
            ));
        }
        let kek = &self.kek;
        if kek.backend == KekBackend::Pkcs11 && kek.module.is_none() {
            return Err(ConfigError(
                "vault.kek.backend = \"pkcs11\" needs vault.kek.module (the PKCS#11 library's path)"
                    .into(),
            ));
        }
        if kek.token_label.is_empty() || kek.token_label.len() > 32 {
            return Err(ConfigError(
                "vault.kek.token_label must be 1 to 32 characters (PKCS#11 token labels)".into(),
            ));
        }
        let prefix_ok = (1..=40).contains(&kek.key_label_prefix.len())
            && kek
                .key_label_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !prefix_ok {
            return Err(ConfigError(
                "vault.kek.key_label_prefix must be 1 to 40 letters, digits, - or _".into(),
            ));
        }
        Ok(())
    }
}
