//! The download pipeline: one blocking worker reads and decrypts a blob, a second hashes
//! each chunk before releasing it (the final chunk only once the whole digest matches),
//! and the response's task only sends. Sent chunks' buffers go back to the reader.

use super::PIPELINE_DEPTH;
use crate::store::artifacts::StoredArtifact;
use crate::vault::stream::{Chunks, HEADER_LEN, Opener};
use crate::vault::{DataKey, VaultError, WrappedKey};
use std::io::Read;

/// The plaintext's running SHA-256, compared with the registry's digest at the last chunk.
/// Whoever releases plaintext runs every chunk through it first, so the final chunk is
/// released only once the whole digest matches.
pub(super) struct DigestCheck {
    hasher: Option<ring::digest::Context>,
    expected: String,
}

impl DigestCheck {
    pub(super) fn new(expected: String) -> Self {
        Self {
            hasher: Some(ring::digest::Context::new(&ring::digest::SHA256)),
            expected,
        }
    }

    pub(super) fn check(&mut self, chunk: &[u8], last: bool) -> Result<(), String> {
        let Some(h) = self.hasher.as_mut() else {
            return Err("a chunk followed the last one".into());
        };
        h.update(chunk);
        if last && let Some(h) = self.hasher.take() {
            let actual = hex::encode(h.finish().as_ref());
            if actual != self.expected {
                return Err(format!(
                    "integrity: the content's SHA-256 is {actual}, the registry holds {}",
                    self.expected
                ));
            }
        }
        Ok(())
    }
}

/// Authenticates and decrypts; hands each chunk and whether it is the last to `deliver`,
/// which returns false when its reader is gone. The digest is the receiver's to check.
/// Buffers sent back through `spare` are read into again.
pub(super) fn decrypt_chunks(
    key: &DataKey,
    context: &[u8],
    (mut blob, spare): (
        Box<dyn Read + Send>,
        Option<std::sync::mpsc::Receiver<Vec<u8>>>,
    ),
    mut deliver: impl FnMut(Vec<u8>, bool) -> bool,
) -> Result<(), String> {
    let mut header = [0u8; HEADER_LEN];
    blob.read_exact(&mut header).map_err(|_| {
        VaultError::TruncatedHeader {
            got: 0,
            expected: HEADER_LEN,
        }
        .to_string()
    })?;
    let mut opener = Opener::new(key, context, &header).map_err(|e| e.to_string())?;
    let mut chunks = Chunks::new(blob, opener.sealed_chunk_len());
    if let Some(spare) = spare {
        chunks = chunks.reusing(spare);
    }
    while let Some((mut chunk, last)) = chunks.next_chunk().map_err(|e| e.to_string())? {
        opener
            .open_chunk(&mut chunk, last)
            .map_err(|e| e.to_string())?;
        if !deliver(chunk, last) {
            return Ok(()); // the client went away
        }
    }
    Ok(())
}

/// A plaintext chunk on its way to the client. Once sent, its buffer goes back to the
/// decrypting worker, which reads the next chunks into it instead of into fresh memory.
pub(super) struct Plain {
    bytes: Vec<u8>,
    home: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl AsRef<[u8]> for Plain {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.home.try_send(std::mem::take(&mut self.bytes));
    }
}

impl Plain {
    pub(super) fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
    }
}

/// Plaintext chunks released by the verifying worker, or what failed.
pub(super) type PlainChunks = tokio::sync::mpsc::Receiver<Result<Plain, String>>;

/// Unwraps the artifact's data key and starts two blocking workers: one reads and
/// decrypts the blob, the other hashes each chunk before releasing it through the
/// channel (the final chunk only once the whole digest matches), so the two costliest
/// steps of a download run on two cores while the response's task only sends.
pub(super) async fn start_decrypting(
    vault: &crate::vault::Vault,
    stored: &StoredArtifact,
) -> Result<PlainChunks, String> {
    let wrapped = WrappedKey {
        epoch: stored.kek_epoch,
        bytes: stored.wrapped_key.clone(),
    };
    let data_key = vault
        .kek
        .unwrap(&wrapped, &stored.blob_id)
        .map_err(|e| e.to_string())?;
    let blob = vault
        .blobs
        .open(&stored.blob_id)
        .await
        .map_err(|e| e.to_string())?;
    let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(PIPELINE_DEPTH);
    let (plain_tx, plain_rx) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
    // Chunks in both channels, in the response's stream and in hyper's hands can all come
    // back; more than that are dropped.
    let (home, spare) = std::sync::mpsc::sync_channel(3 * PIPELINE_DEPTH);
    let context = stored.blob_id.clone();
    tokio::task::spawn_blocking(move || {
        let source = (blob, Some(spare));
        let outcome = decrypt_chunks(&data_key, context.as_bytes(), source, |bytes, last| {
            let chunk = Plain {
                bytes,
                home: home.clone(),
            };
            opened_tx.send(Ok((chunk, last))).is_ok()
        });
        if let Err(reason) = outcome {
            let _ = opened_tx.send(Err(reason));
        }
    });
    let mut digest = DigestCheck::new(stored.sha256.to_string());
    tokio::task::spawn_blocking(move || {
        for opened in opened_rx {
            let checked =
                opened.and_then(|(chunk, last)| digest.check(chunk.as_ref(), last).map(|()| chunk));
            let failed = checked.is_err();
            if plain_tx.blocking_send(checked).is_err() || failed {
                return; // the client went away, or the download ends here
            }
        }
    });
    Ok(plain_rx)
}
