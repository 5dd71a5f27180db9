//! The upload pipeline: the request body is cut into chunks on the request's task, one
//! blocking worker hashes them and another seals and writes them, so memory stays flat
//! and the two costliest steps (SHA-256 and AES-GCM) run on two cores.

use super::MAX_ARTIFACT_BYTES;
use crate::domain::ParseError;
use crate::service::ServiceError;
use crate::vault::stream::Sealer;
use crate::vault::{DataKey, VaultError};
use futures_util::{Stream, StreamExt};
use rand::RngExt;
use std::io::Write;

/// A body sealed into a new blob, not yet recorded anywhere.
pub(super) struct Sealed {
    pub blob_id: String,
    pub size_bytes: u64,
    /// The plaintext's SHA-256, hex.
    pub sha256: String,
    pub data_key: DataKey,
}

/// Seals `body` under a fresh data key into a new blob of `vault`, chunk by chunk: the
/// request's task reads, one blocking worker hashes and another seals and writes.
pub(super) async fn seal_body<S, B, E>(
    vault: &crate::vault::Vault,
    body: &mut S,
    failpoints: crate::failpoints::Failpoints,
) -> Result<Sealed, ServiceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let blob_id = hex::encode(rand::rng().random::<[u8; 16]>());
    let writer = vault
        .blobs
        .begin(&blob_id)
        .await
        .map_err(ServiceError::internal)?;
    let chunk_size = vault.chunk_size as usize;
    let (chunks_tx, chunks_rx) =
        tokio::sync::mpsc::channel::<(Vec<u8>, bool)>(super::PIPELINE_DEPTH);
    let (hashed_tx, hashed_rx) = std::sync::mpsc::sync_channel(super::PIPELINE_DEPTH);
    let (spare_tx, mut spare_rx) = tokio::sync::mpsc::channel(super::PIPELINE_DEPTH);
    let hasher = hash_chunks(chunks_rx, hashed_tx);
    let worker = seal_into(
        writer,
        (DataKey::generate(), blob_id.clone()),
        chunk_size,
        (hashed_rx, spare_tx),
        failpoints,
    );
    let fed = feed_chunks(body, chunk_size, &chunks_tx, &mut spare_rx).await;
    drop(chunks_tx);
    let sha256 = hasher.await.map_err(ServiceError::internal)?;
    let written = worker.await.map_err(ServiceError::internal)?;
    match (fed, written) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(ServiceError::internal(e)),
        (Ok(()), Ok((size_bytes, data_key))) => Ok(Sealed {
            blob_id,
            size_bytes,
            sha256,
            data_key,
        }),
    }
}

/// The hashing stage: hashes each chunk and passes it on to the sealer; returns the
/// digest of everything that went through (ring's SHA-256 uses the CPU's SHA extensions
/// where present, which sha2 did not).
fn hash_chunks(
    mut chunks: tokio::sync::mpsc::Receiver<(Vec<u8>, bool)>,
    hashed: std::sync::mpsc::SyncSender<(Vec<u8>, bool)>,
) -> tokio::task::JoinHandle<String> {
    tokio::task::spawn_blocking(move || {
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        while let Some((chunk, last)) = chunks.blocking_recv() {
            hasher.update(&chunk);
            if hashed.send((chunk, last)).is_err() {
                break; // the sealer failed; its error is reported
            }
        }
        hex::encode(hasher.finish().as_ref())
    })
}

/// Hashed chunks on their way to the sealer, and the written ones' buffers on their way
/// back to the request's task.
type ChunkLoop = (
    std::sync::mpsc::Receiver<(Vec<u8>, bool)>,
    tokio::sync::mpsc::Sender<Vec<u8>>,
);

/// The blocking half of an upload: seals each chunk and writes it, finishing the blob at
/// the last; a sender gone before the last chunk drops the writer and its partial blob.
fn seal_into(
    writer: Box<dyn crate::vault::BlobWriter>,
    (data_key, context): (DataKey, String),
    chunk_size: usize,
    mut chunks: ChunkLoop,
    failpoints: crate::failpoints::Failpoints,
) -> tokio::task::JoinHandle<Result<(u64, DataKey), VaultError>> {
    tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let sealer = Sealer::new(&data_key, context.as_bytes(), chunk_size as u32);
        match write_sealed(&mut writer, sealer, &mut chunks, &failpoints) {
            Ok(size) => writer.finish().map(|()| (size, data_key)),
            Err(e) => {
                // Waits until a multipart upload's parts are gone, not just asked to go.
                if let Err(cleanup) = writer.abort() {
                    tracing::warn!(error = %cleanup, "could not discard a failed upload's partial blob");
                }
                Err(e)
            }
        }
    })
}

/// Writes the header and every sealed chunk; returns the plaintext size once the last
/// chunk is written.
fn write_sealed(
    writer: &mut Box<dyn crate::vault::BlobWriter>,
    (mut sealer, header): (Sealer, [u8; crate::vault::stream::HEADER_LEN]),
    (chunks, spare): &mut ChunkLoop,
    failpoints: &crate::failpoints::Failpoints,
) -> Result<u64, VaultError> {
    writer.write_all(&header)?;
    let mut size = 0u64;
    while let Ok((mut chunk, last)) = chunks.recv() {
        size += chunk.len() as u64;
        sealer.seal_chunk(&mut chunk, last);
        writer.write_all(&chunk)?;
        let _ = spare.try_send(chunk); // for the next chunk; dropped when enough wait

        // Tests cut an upload once parts of it have reached the store.
        if size > 2 * crate::vault::PART_SIZE as u64 {
            failpoints
                .hit("inside:upload")
                .map_err(|e| VaultError::Io(std::io::Error::other(e)))?;
        }
        if last {
            return Ok(size);
        }
    }
    Err(VaultError::Io(std::io::Error::other(
        "upload ended before its last chunk",
    )))
}

/// Cuts the request body into chunks for the hashing stage; a body over the size limit
/// or cut off is an error, and ends the pipeline before its last chunk.
async fn feed_chunks<S, B, E>(
    body: &mut S,
    chunk_size: usize,
    chunks: &tokio::sync::mpsc::Sender<(Vec<u8>, bool)>,
    spare: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    // Room for the tag the sealer appends, so sealing never moves a chunk; a buffer the
    // sealer is done with is used again before a new one is allocated.
    let mut fresh = || match spare.try_recv() {
        Ok(mut reused) => {
            reused.clear();
            reused
        }
        Err(_) => Vec::with_capacity(chunk_size + crate::vault::stream::TAG_LEN),
    };
    let mut current: Vec<u8> = fresh();
    let mut full: Option<Vec<u8>> = None;
    let mut total = 0u64;
    while let Some(frame) = body.next().await {
        let frame = frame
            .map_err(|e| ParseError::new("upload", format!("the request body was cut off: {e}")))?;
        let mut data = frame.as_ref();
        total += data.len() as u64;
        if total > MAX_ARTIFACT_BYTES {
            return Err(ServiceError::Invalid(ParseError::new(
                "artifact",
                format!("is larger than {MAX_ARTIFACT_BYTES} bytes, the most accepted"),
            )));
        }
        while !data.is_empty() {
            let take = (chunk_size - current.len()).min(data.len());
            current.extend_from_slice(&data[..take]);
            data = &data[take..];
            if current.len() == chunk_size {
                // A full chunk is sent only when more follows: until then it may be the last.
                let next = std::mem::replace(&mut current, fresh());
                if let Some(previous) = full.replace(next) {
                    send(chunks, previous, false).await?;
                }
            }
        }
    }
    match full {
        Some(previous) if current.is_empty() => send(chunks, previous, true).await?,
        Some(previous) => {
            send(chunks, previous, false).await?;
            send(chunks, current, true).await?;
        }
        None => send(chunks, current, true).await?,
    }
    Ok(())
}

async fn send(
    tx: &tokio::sync::mpsc::Sender<(Vec<u8>, bool)>,
    chunk: Vec<u8>,
    last: bool,
) -> Result<(), ServiceError> {
    // A closed channel means the worker failed; its own error is reported instead.
    let _ = tx.send((chunk, last)).await;
    Ok(())
}
