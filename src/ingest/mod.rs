//! What comes in from other systems to feed the inventory: registration webhooks
//! (Standard Webhooks) and gateway access logs. Parsing and verification
//! only; applying what arrives is `service`'s business.

pub mod log_file;
pub mod registrations;
pub mod scan;
/// The signature scheme lives with the notifiers, which sign what we send with it.
pub use notifiers::standard_webhooks;
