//! The tamper-evident audit trail (AISVS 3.4.1, 3.4.2, 3.4.4).
//!
//! Every record carries the SHA-256 of its predecessor, so editing, deleting, inserting
//! or reordering a record breaks the chain at that record. A public hash chain alone
//! cannot stop someone with database access from appending a well-formed record or
//! rewriting the chain from some point on, so every record also carries an HMAC under
//! a key derived from the service key ([`AuditMacKey`]), which lives in the key folder
//! and never in the database. Nor can a chain show that its *tail* was cut off: signed
//! checkpoints cover that. The service signs `(seq, head hash)` with its Ed25519 key;
//! whoever keeps a checkpoint can later prove every record up to it, with the public
//! key alone.
//!
//! This module is pure: it seals and verifies records. Writing them is `store`'s job,
//! inside the same transaction as the change they describe.

mod chain;
mod checkpoint;
mod entry;
mod mac;

pub use chain::{ChainBreak, ChainVerifier, GENESIS_HASH, SealedRecord, VerifyReport};
pub use checkpoint::{Checkpoint, CheckpointError, key_id as checkpoint_key_id};
pub use entry::{Action, AuditEntry, AuditIdentity, SubjectType};
pub use mac::AuditMacKey;
