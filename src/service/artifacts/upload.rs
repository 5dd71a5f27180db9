//! The upload pipeline: the request body is cut into chunks and hashed on the request's
//! task while a blocking worker seals and writes them, so memory stays flat and the two
//! costliest steps run on two cores.

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
/// request's task reads and hashes while a blocking worker seals and writes.
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
    let worker = seal_into(
        writer,
        (DataKey::generate(), blob_id.clone()),
        chunk_size,
        chunks_rx,
        failpoints,
    );
    let fed = feed_chunks(body, chunk_size, &chunks_tx).await;
    drop(chunks_tx);
    let written = worker.await.map_err(ServiceError::internal)?;
    match (fed, written) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(ServiceError::internal(e)),
        (Ok(sha256), Ok((size_bytes, data_key))) => Ok(Sealed {
            blob_id,
            size_bytes,
            sha256,
            data_key,
        }),
    }
}

/// The blocking half of an upload: seals each chunk and writes it, finishing the blob at
/// the last; a sender gone before the last chunk drops the writer and its partial blob.
fn seal_into(
    writer: Box<dyn crate::vault::BlobWriter>,
    (data_key, context): (DataKey, String),
    chunk_size: usize,
    mut chunks: tokio::sync::mpsc::Receiver<(Vec<u8>, bool)>,
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
    chunks: &mut tokio::sync::mpsc::Receiver<(Vec<u8>, bool)>,
    failpoints: &crate::failpoints::Failpoints,
) -> Result<u64, VaultError> {
    writer.write_all(&header)?;
    let mut size = 0u64;
    while let Some((mut chunk, last)) = chunks.blocking_recv() {
        size += chunk.len() as u64;
        sealer.seal_chunk(&mut chunk, last);
        writer.write_all(&chunk)?;
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

/// Cuts the request body into chunks for the sealer, hashing it on the way (hashing here
/// and sealing in the worker puts the two costliest steps on two cores; ring's SHA-256
/// uses the CPU's SHA extensions where present, which sha2 did not); returns the digest.
async fn feed_chunks<S, B, E>(
    body: &mut S,
    chunk_size: usize,
    chunks: &tokio::sync::mpsc::Sender<(Vec<u8>, bool)>,
) -> Result<String, ServiceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut current: Vec<u8> = Vec::with_capacity(chunk_size);
    let mut full: Option<Vec<u8>> = None;
    let mut total = 0u64;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    while let Some(frame) = body.next().await {
        let frame = frame
            .map_err(|e| ParseError::new("upload", format!("the request body was cut off: {e}")))?;
        let mut data = frame.as_ref();
        hasher.update(data);
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
                let next = std::mem::replace(&mut current, Vec::with_capacity(chunk_size));
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
    Ok(hex::encode(hasher.finish().as_ref()))
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
