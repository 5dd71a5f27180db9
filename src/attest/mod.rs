//! The service's own signing identity: its key, what it derives, the DSSE envelopes it
//! signs (revocation lists, destruction certificates), and model-signature verification.

pub mod dsse;
pub mod link_token;
pub mod model_signature;
pub mod secret_sealer;
pub mod service_key;
pub mod validation;

pub use link_token::{LinkClaims, LinkError, LinkPurpose, LinkTokenKey};
pub use secret_sealer::{SecretSealer, UnsealError};
pub use service_key::{KeyFileError, ServiceKey};
