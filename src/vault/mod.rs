//! The artifact vault: every artifact encrypted at rest under its own data key, data
//! keys stored only wrapped by a key-encryption key (KEK) that lives outside the
//! database. Destroying a data key, or the KEK epoch that wraps it, makes every copy of
//! the artifact unreadable: crypto-erasure (AISVS 3.6.2).
//!
//! Architecture invariant: no plaintext key leaves this module. Data keys are zeroized
//! on drop, never logged, never written to disk unwrapped.

mod blob_store;
mod data_key;
mod error;
mod kek;
pub mod stream;

pub use blob_store::{BlobStore, BlobWriter, FsBlobStore};
pub use data_key::DataKey;
pub use error::VaultError;
pub use kek::{FileKek, KeyEncryptionKey, WrappedKey};

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
    /// The default vault: file KEKs in `key_dir/kek`, blobs in `data_dir/blobs`.
    pub fn open_default(
        key_dir: &std::path::Path,
        data_dir: &std::path::Path,
    ) -> Result<Self, VaultError> {
        Ok(Self {
            kek: Arc::new(FileKek::open_or_create(&key_dir.join("kek"))?),
            blobs: Arc::new(FsBlobStore::open_or_create(&data_dir.join("blobs"))?),
            chunk_size: stream::DEFAULT_CHUNK_SIZE,
        })
    }
}
