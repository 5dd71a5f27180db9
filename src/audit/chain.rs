//! Sealing records into the chain and checking a chain from genesis.

use super::checkpoint::Checkpoint;
use super::mac::AuditMacKey;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The `prev_hash` of record 1.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A record as stored: its fields, its place and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub seq: i64,
    /// Truncated to whole microseconds, the precision both databases keep.
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub subject_type: String,
    pub subject: String,
    pub before_state: Option<String>,
    pub after_state: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// Hex HMAC-SHA256 of `hash` under the audit key ([`AuditMacKey`]): without the
    /// key, no one can forge a record, nor rewrite the chain and re-hash it.
    pub mac: String,
    /// The address of the client whose request made the change, when there was one.
    pub client_ip: Option<String>,
}

impl SealedRecord {
    /// The hash this record's fields and predecessor determine. Every field is length
    /// prefixed, so no two different records share an encoding. A record with a client
    /// address is hashed as v2, with the address last; one without stays v1, so records
    /// written before addresses were kept verify as they always did.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(match self.client_ip {
            None => b"sunset/audit-record/v1\n".as_slice(),
            Some(_) => b"sunset/audit-record/v2\n".as_slice(),
        });
        h.update(self.seq.to_be_bytes());
        h.update(self.recorded_at.timestamp_micros().to_be_bytes());
        for field in [
            &self.actor,
            &self.actor_role,
            &self.action,
            &self.subject_type,
            &self.subject,
        ] {
            put(&mut h, Some(field));
        }
        put(&mut h, self.before_state.as_ref());
        put(&mut h, self.after_state.as_ref());
        put(&mut h, Some(&self.prev_hash));
        if let Some(ip) = &self.client_ip {
            put(&mut h, Some(ip));
        }
        hex_of(&h.finalize())
    }

    /// Whether the record is what its hash says and the hash carries the MAC of `key`:
    /// what any signed document may rest on.
    pub fn authenticates(&self, key: &AuditMacKey) -> bool {
        self.compute_hash() == self.hash && self.mac_valid(key)
    }

    /// Builds and signs the record that follows `(prev_seq, prev_hash)`.
    pub fn seal(
        prev_seq: i64,
        prev_hash: &str,
        recorded_at: DateTime<Utc>,
        entry: super::AuditEntry,
        key: &AuditMacKey,
    ) -> Self {
        let mut record = Self {
            seq: prev_seq + 1,
            recorded_at: truncate_to_micros(recorded_at),
            actor: entry.actor,
            actor_role: entry.actor_role,
            action: entry.action.as_str().to_owned(),
            subject_type: entry.subject_type.as_str().to_owned(),
            subject: entry.subject,
            before_state: entry.before,
            after_state: entry.after,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
            mac: String::new(),
            client_ip: entry.client_ip.map(|ip| ip.to_string()),
        };
        record.hash = record.compute_hash();
        record.mac = key.tag(&record.hash);
        record
    }

    fn mac_valid(&self, key: &AuditMacKey) -> bool {
        key.verify(&self.hash, &self.mac)
    }
}

fn put(h: &mut Sha256, field: Option<&String>) {
    match field {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    }
}

pub(crate) fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The first place where a chain stops being what it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq}: its contents do not match its hash (edited)")]
    Edited { seq: i64 },
    #[error(
        "record {expected}: missing or out of place, record {found} stands where it should be (a record was deleted, inserted or reordered)"
    )]
    OutOfSequence { found: i64, expected: i64 },
    #[error("record {seq}: its MAC is not the service's (forged, or the chain was rewritten)")]
    Forged { seq: i64 },
    #[error(
        "record {seq}: does not chain to record {prev} (a record was deleted, inserted or reordered)"
    )]
    Unlinked { seq: i64, prev: i64 },
    #[error(
        "record {seq}: differs from signed checkpoint {checkpoint_id} (the chain was rewritten)"
    )]
    CheckpointMismatch { seq: i64, checkpoint_id: String },
    #[error(
        "record {seq} is missing: signed checkpoint {checkpoint_id} covers up to it, the log ends at {last} (the tail was truncated)"
    )]
    Truncated {
        seq: i64,
        last: i64,
        checkpoint_id: String,
    },
    #[error("checkpoint {checkpoint_id}: {reason}")]
    BadCheckpoint {
        checkpoint_id: String,
        reason: String,
    },
}

impl ChainBreak {
    /// The sequence number of the first broken record, when there is one.
    pub fn seq(&self) -> Option<i64> {
        match self {
            ChainBreak::Edited { seq }
            | ChainBreak::Forged { seq }
            | ChainBreak::OutOfSequence { expected: seq, .. }
            | ChainBreak::Unlinked { seq, .. }
            | ChainBreak::CheckpointMismatch { seq, .. }
            | ChainBreak::Truncated { seq, .. } => Some(*seq),
            ChainBreak::BadCheckpoint { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: i64,
    pub head_hash: String,
    pub checkpoints_checked: usize,
}

/// Checks records fed in sequence order, one at a time, so a chain of any length
/// verifies in constant memory. Checkpoints are checked as their record passes.
pub struct ChainVerifier<'a> {
    key: &'a AuditMacKey,
    expected_seq: i64,
    prev_hash: String,
    /// Checkpoints sorted by seq, and how many have been matched.
    checkpoints: Vec<&'a Checkpoint>,
    next_checkpoint: usize,
}

impl<'a> ChainVerifier<'a> {
    /// `checkpoints` must already have had their signatures checked.
    pub fn new(key: &'a AuditMacKey, checkpoints: &'a [Checkpoint]) -> Self {
        let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
        sorted.sort_by_key(|c| c.seq);
        Self {
            key,
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            checkpoints: sorted,
            next_checkpoint: 0,
        }
    }

    pub fn push(&mut self, record: &SealedRecord) -> Result<(), ChainBreak> {
        if record.seq != self.expected_seq {
            return Err(ChainBreak::OutOfSequence {
                found: record.seq,
                expected: self.expected_seq,
            });
        }
        if record.compute_hash() != record.hash {
            return Err(ChainBreak::Edited { seq: record.seq });
        }
        if !record.mac_valid(self.key) {
            return Err(ChainBreak::Forged { seq: record.seq });
        }
        if record.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked {
                seq: record.seq,
                prev: record.seq - 1,
            });
        }
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            if cp.seq > record.seq {
                break;
            }
            // Checkpoints at seq 0 (empty log) have nothing to match.
            if cp.seq == record.seq && cp.head_hash != record.hash {
                return Err(ChainBreak::CheckpointMismatch {
                    seq: record.seq,
                    checkpoint_id: cp.key_and_seq(),
                });
            }
            self.next_checkpoint += 1;
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&record.hash);
        Ok(())
    }

    pub fn finish(self) -> Result<VerifyReport, ChainBreak> {
        let last = self.expected_seq - 1;
        if let Some(cp) = self.checkpoints.iter().find(|c| c.seq > last) {
            return Err(ChainBreak::Truncated {
                seq: last + 1,
                last,
                checkpoint_id: cp.key_and_seq(),
            });
        }
        Ok(VerifyReport {
            records: last,
            head_hash: self.prev_hash,
            checkpoints_checked: self.checkpoints.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, AuditEntry, SubjectType};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn key() -> AuditMacKey {
        AuditMacKey::derive(&[3u8; 32])
    }

    fn chain(n: usize) -> Vec<SealedRecord> {
        let mut out: Vec<SealedRecord> = Vec::new();
        for i in 0..n {
            let (seq, hash) = out
                .last()
                .map(|r| (r.seq, r.hash.clone()))
                .unwrap_or((0, GENESIS_HASH.to_owned()));
            let entry = AuditEntry::new(
                ("alice", "owner"),
                Action::ModelUpdated,
                SubjectType::Model,
                format!("m{}", i % 3),
            )
            .before(&serde_json::json!({"i": i}))
            .after(&serde_json::json!({"i": i + 1}));
            let at = Utc
                .timestamp_opt(1_700_000_000 + i as i64, 123_456_789)
                .unwrap();
            out.push(SealedRecord::seal(seq, &hash, at, entry, &key()));
        }
        out
    }

    fn verify(
        records: &[SealedRecord],
        checkpoints: &[Checkpoint],
    ) -> Result<VerifyReport, ChainBreak> {
        let k = key();
        let mut v = ChainVerifier::new(&k, checkpoints);
        for r in records {
            v.push(r)?;
        }
        v.finish()
    }

    fn checkpoint_at(records: &[SealedRecord], seq: i64) -> Checkpoint {
        let hash = records
            .iter()
            .find(|r| r.seq == seq)
            .map(|r| r.hash.clone())
            .unwrap_or_default();
        Checkpoint {
            seq,
            head_hash: hash,
            signed_at: Utc::now(),
            key_id: "k".into(),
            signature: String::new(),
        }
    }

    #[test]
    fn an_untouched_chain_verifies_and_reports_its_head() {
        let records = chain(20);
        let report = verify(&records, &[checkpoint_at(&records, 10)]).unwrap();
        assert_eq!(report.records, 20);
        assert_eq!(report.head_hash, records[19].hash);
    }

    #[test]
    fn sealing_keeps_microseconds_only() {
        assert_eq!(
            chain(1)[0].recorded_at.timestamp_subsec_nanos(),
            123_456_000
        );
    }

    #[test]
    fn a_truncated_tail_is_caught_by_a_kept_checkpoint() {
        let records = chain(10);
        let cp = checkpoint_at(&records, 10);
        let err = verify(&records[..7], &[cp]).unwrap_err();
        assert_eq!(err.seq(), Some(8));
        assert!(matches!(err, ChainBreak::Truncated { .. }));
    }

    #[test]
    fn a_record_forged_onto_the_tail_without_the_key_is_caught() {
        let mut records = chain(5);
        let last = records.last().unwrap().clone();
        let forger = AuditMacKey::derive(&[9u8; 32]);
        records.push(SealedRecord::seal(
            last.seq,
            &last.hash,
            Utc::now(),
            AuditEntry::new(
                ("mallory", "admin"),
                Action::TokenCreated,
                SubjectType::ApiToken,
                "backdoor",
            ),
            &forger,
        ));
        assert_eq!(verify(&records, &[]), Err(ChainBreak::Forged { seq: 6 }));
    }

    #[test]
    fn a_chain_rewritten_with_fresh_hashes_is_caught() {
        let mut records = chain(10);
        let cp = checkpoint_at(&records, 8);
        // An attacker edits record 5 and recomputes every hash after it.
        records[4].actor = "mallory".into();
        for i in 4..records.len() {
            if i > 4 {
                records[i].prev_hash = records[i - 1].hash.clone();
            }
            records[i].hash = records[i].compute_hash();
        }
        assert_eq!(
            verify(&records, std::slice::from_ref(&cp)),
            Err(ChainBreak::Forged { seq: 5 })
        );
        // Even with the MAC key, a rewrite would not match the kept checkpoint.
        let k = key();
        let mut v = ChainVerifier::new(&k, std::slice::from_ref(&cp));
        let resigned: Vec<SealedRecord> = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.mac = k.tag(&r.hash);
                r
            })
            .collect();
        let err = resigned.iter().try_for_each(|r| v.push(r)).unwrap_err();
        assert!(
            matches!(err, ChainBreak::CheckpointMismatch { seq: 8, .. }),
            "{err}"
        );
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        Edit { index: usize, field: u8 },
        Delete { index: usize },
        Insert { index: usize },
        Swap { a: usize, b: usize },
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            (0..40usize, 0..9u8).prop_map(|(index, field)| Tamper::Edit { index, field }),
            (0..40usize).prop_map(|index| Tamper::Delete { index }),
            (0..41usize).prop_map(|index| Tamper::Insert { index }),
            (0..40usize, 0..40usize).prop_map(|(a, b)| Tamper::Swap { a, b }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Any single edit, deletion, insertion or reordering by someone without the
        /// service key is detected. Deleting the last record is covered by a checkpoint
        /// of the head, which the service keeps.
        #[test]
        fn any_tampering_is_detected(len in 2usize..40, t in tamper()) {
            let mut records = chain(len);
            let head = checkpoint_at(&records, len as i64);
            match t {
                Tamper::Edit { index, field } => {
                    let r = &mut records[index % len];
                    match field {
                        0 => r.actor.push('x'),
                        1 => r.actor_role = "admin".into(),
                        2 => r.action = "model.created".into(),
                        3 => r.subject.push('!'),
                        4 => r.before_state = None,
                        5 => r.after_state = Some("{}".into()),
                        6 => r.recorded_at += chrono::Duration::microseconds(1),
                        7 => r.prev_hash = GENESIS_HASH.replace('0', "1"),
                        _ => r.seq += 1000,
                    }
                }
                Tamper::Delete { index } => { records.remove(index % len); }
                Tamper::Insert { index } => {
                    let at = index % (len + 1);
                    let (seq, prev) = if at == 0 { (0, GENESIS_HASH.to_owned()) } else { (records[at - 1].seq, records[at - 1].hash.clone()) };
                    let forger = AuditMacKey::derive(&[9u8; 32]);
                    let forged = SealedRecord::seal(seq, &prev, Utc::now(), AuditEntry::new(("mallory", "admin"), Action::TokenCreated, SubjectType::ApiToken, "backdoor"), &forger);
                    records.insert(at, forged);
                }
                Tamper::Swap { a, b } => {
                    let (a, b) = (a % len, b % len);
                    prop_assume!(a != b);
                    records.swap(a, b);
                }
            }
            prop_assert!(verify(&records, std::slice::from_ref(&head)).is_err());
        }
    }
}
