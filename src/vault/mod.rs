//! The artifact vault: every artifact encrypted at rest under its own data key, data
//! keys stored only wrapped by a key-encryption key (KEK) that lives outside the
//! database. Destroying a data key, or the KEK epoch that wraps it, makes every copy of
//! the artifact unreadable: crypto-erasure (AISVS 3.6.2).
//!
//! Architecture invariant: no plaintext key leaves this module. Data keys are zeroized
//! on drop, never logged, never written to disk unwrapped.

mod blob_store;
mod data_key;
mod direct_file;
mod error;
mod kek;
mod object_blob_store;
mod pkcs11_kek;
pub mod stream;

pub use blob_store::{BlobStore, BlobWriter, FsBlobStore};
pub use data_key::DataKey;
pub use error::VaultError;
pub use kek::{FileKek, KeyEncryptionKey, WrappedKey};
pub use object_blob_store::{ObjectBlobStore, PART_SIZE, PARTS_IN_FLIGHT};
pub use pkcs11_kek::{Pkcs11Config, Pkcs11Kek, epochs_on_token};

use crate::config::{BlobSettings, BucketUrl, KekBackend, KekSettings, VaultSettings};
use std::path::Path;
use std::sync::Arc;

/// The vault's two halves, shared by the services.
#[derive(Clone)]
pub struct Vault {
    pub kek: Arc<dyn KeyEncryptionKey>,
    pub blobs: Arc<dyn BlobStore>,
    /// Plaintext bytes per encrypted chunk.
    pub chunk_size: u32,
}

impl Vault {
    /// Tries to open each `(epoch, key id, wrapped bytes)` under the key store: per
    /// epoch, whether it opens, and why not. One wrapped key per epoch tells whether the
    /// store holds that epoch (start-up's check, and a restore's report).
    pub fn opens_each<'a>(
        &'a self,
        sample: impl IntoIterator<Item = (u32, String, Vec<u8>)> + 'a,
    ) -> impl Iterator<Item = (u32, Result<(), VaultError>)> + 'a {
        sample.into_iter().map(|(epoch, key_id, bytes)| {
            let wrapped = WrappedKey { epoch, bytes };
            (epoch, self.kek.unwrap(&wrapped, &key_id).map(drop))
        })
    }

    /// The default vault: file KEKs in `key_dir/kek`, blobs in `data_dir/blobs`.
    pub fn open_default(key_dir: &Path, data_dir: &Path) -> Result<Self, VaultError> {
        Self::open(&VaultSettings::default(), key_dir, data_dir)
    }

    /// The vault the settings describe: blobs in the data folder or a bucket, KEKs in
    /// the key folder or on a PKCS#11 token.
    pub fn open(
        settings: &VaultSettings,
        key_dir: &Path,
        data_dir: &Path,
    ) -> Result<Self, VaultError> {
        let kek: Arc<dyn KeyEncryptionKey> = match settings.kek.backend {
            KekBackend::File => Arc::new(FileKek::open_or_create(&key_dir.join("kek"))?),
            KekBackend::Pkcs11 => Arc::new(Pkcs11Kek::open(&pkcs11_config(&settings.kek)?)?),
        };
        let blobs: Arc<dyn BlobStore> = match &settings.blobs.url {
            None => Arc::new(FsBlobStore::open_or_create(&data_dir.join("blobs"))?),
            Some(url) => Arc::new(object_store_of(url, &settings.blobs)?),
        };
        Ok(Self {
            kek,
            blobs,
            chunk_size: stream::DEFAULT_CHUNK_SIZE,
        })
    }
}

/// The PKCS#11 settings with the PIN read from its file or `SUNSET_PKCS11_PIN`.
pub fn pkcs11_config(kek: &KekSettings) -> Result<Pkcs11Config, VaultError> {
    let module = kek
        .module
        .clone()
        .ok_or_else(|| VaultError::Hsm("vault.kek.module is not set".into()))?;
    let pin = match &kek.pin_file {
        Some(file) => zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(|e| {
                    VaultError::Hsm(format!("cannot read the PIN file {}: {e}", file.display()))
                })?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        None => zeroize::Zeroizing::new(
            std::env::var(crate::config::PKCS11_PIN_VARIABLE).map_err(|_| {
                VaultError::Hsm(format!(
                    "no PIN: set vault.kek.pin_file or the environment variable {}",
                    crate::config::PKCS11_PIN_VARIABLE
                ))
            })?,
        ),
    };
    Ok(Pkcs11Config {
        module,
        token_label: kek.token_label.clone(),
        pin,
        key_label_prefix: kek.key_label_prefix.clone(),
    })
}

/// An S3 client for `url`: the standard AWS environment first (credentials, region,
/// endpoint, web identity), then what the settings say.
fn object_store_of(url: &str, blobs: &BlobSettings) -> Result<ObjectBlobStore, VaultError> {
    use object_store::aws::AmazonS3Builder;
    // reqwest's rustls takes the process's provider; ring is the one the tree builds.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parsed = BucketUrl::parse(url).map_err(|e| VaultError::ObjectStore(e.to_string()))?;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&parsed.bucket)
        .with_virtual_hosted_style_request(blobs.virtual_hosted_style)
        .with_allow_http(blobs.allow_http);
    if let Some(endpoint) = &blobs.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &blobs.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &blobs.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(file) = &blobs.secret_access_key_file {
        let secret = zeroize::Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
            VaultError::ObjectStore(format!(
                "cannot read the secret access key file {}: {e}",
                file.display()
            ))
        })?);
        builder = builder.with_secret_access_key(secret.trim_end_matches(['\n', '\r']));
    }
    let store = builder
        .build()
        .map_err(|e| VaultError::ObjectStore(e.to_string()))?;
    Ok(ObjectBlobStore::new(
        Arc::new(store),
        &parsed.prefix,
        url.to_owned(),
    ))
}
