//! The service's own signing identity. Later: DSSE envelopes, model-signature
//! verification, the revocation list and destruction certificates.

pub mod model_signature;
pub mod secret_sealer;
pub mod service_key;

pub use secret_sealer::{SecretSealer, UnsealError};
pub use service_key::{KeyFileError, ServiceKey};
