//! The tamper-evident audit trail (AISVS 3.4.1, 3.4.2, 3.4.4).
//!
//! Every record carries the SHA-256 of its predecessor, so editing, deleting, inserting
//! or reordering a record breaks the chain at that record. A hash chain alone cannot
//! show that the *tail* was cut off, nor that someone with database access rewrote the
//! whole chain from some point on; signed checkpoints of the head cover both: the
//! service signs `(seq, head hash)` with its own Ed25519 key, which lives in the key
//! folder and never in the database.
//!
//! This module is pure: it seals and verifies records. Writing them is `store`'s job,
//! inside the same transaction as the change they describe.

mod chain;
mod checkpoint;
mod entry;

pub use chain::{ChainBreak, ChainVerifier, GENESIS_HASH, SealedRecord, VerifyReport};
pub use checkpoint::{Checkpoint, CheckpointError, key_id as checkpoint_key_id};
pub use entry::{Action, AuditEntry, SubjectType};
