//! The artifact vault: every artifact encrypted at rest under its own data key, data
//! keys stored only wrapped by a key-encryption key (KEK) that lives outside the
//! database. Destroying a data key, or the KEK epoch that wraps it, makes every copy of
//! the artifact unreadable: crypto-erasure (AISVS 3.6.2).
//!
//! Architecture invariant: no plaintext key leaves this module. Data keys are zeroized
//! on drop, never logged, never written to disk unwrapped.

mod data_key;
mod error;
mod kek;
pub mod stream;

pub use data_key::DataKey;
pub use error::VaultError;
pub use kek::{FileKek, KeyEncryptionKey, WrappedKey};
