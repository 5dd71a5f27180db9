//! The service's own signing identity. Later: DSSE envelopes, model-signature
//! verification, the revocation list and destruction certificates.

pub mod link_token;
pub mod model_signature;
pub mod secret_sealer;
pub mod service_key;

pub use link_token::{LinkClaims, LinkError, LinkPurpose, LinkTokenKey};
pub use secret_sealer::{SecretSealer, UnsealError};
pub use service_key::{KeyFileError, ServiceKey};
