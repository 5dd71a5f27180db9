//! The upload pipeline: the request body is cut into chunks on the request's task, and
//! one blocking worker hashes, seals and writes them (a folder's blob file hands its
//! blocks to a disk thread of its own), so memory stays flat and the costliest step,
//! SHA-256, runs beside the socket reads. Hashing and sealing share their worker: on two
//! cores, a thread apiece only added hand-offs (a fifth of the server's context switches
//! in a traced 1 GiB upload) without adding a core.

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
/// request's task reads, one blocking worker hashes, seals and writes.
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
    let (spare_tx, spare_rx) = tokio::sync::mpsc::channel(UPLOAD_BUFFERS);
    let worker = seal_into(
        writer,
        (DataKey::generate(), blob_id.clone()),
        chunk_size,
        (chunks_rx, spare_tx),
        failpoints,
    );
    let mut buffers = Buffers::new(chunk_size, spare_rx);
    let fed = feed_chunks(body, &mut buffers, &chunks_tx).await;
    drop(chunks_tx);
    let written = worker.await.map_err(ServiceError::internal)?;
    match (fed, written) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(ServiceError::internal(e)),
        (Ok(()), Ok((size_bytes, sha256, data_key))) => Ok(Sealed {
            blob_id,
            size_bytes,
            sha256,
            data_key,
        }),
    }
}

/// Chunks on their way to the worker, and the written ones' buffers on their way back to
/// the request's task.
type ChunkLoop = (
    tokio::sync::mpsc::Receiver<(Vec<u8>, bool)>,
    tokio::sync::mpsc::Sender<Vec<u8>>,
);

/// The blocking half of an upload: hashes, seals and writes each chunk, finishing the
/// blob at the last; a sender gone before the last chunk drops the writer and its
/// partial blob. Returns the plaintext's size and SHA-256 (hex) with the data key.
fn seal_into(
    writer: Box<dyn crate::vault::BlobWriter>,
    (data_key, context): (DataKey, String),
    chunk_size: usize,
    mut chunks: ChunkLoop,
    failpoints: crate::failpoints::Failpoints,
) -> tokio::task::JoinHandle<Result<(u64, String, DataKey), VaultError>> {
    tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let sealer = Sealer::new(&data_key, context.as_bytes(), chunk_size as u32);
        match write_sealed(&mut writer, sealer, &mut chunks, &failpoints) {
            Ok((size, sha256)) => writer.finish().map(|()| (size, sha256, data_key)),
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

/// Writes the header and every sealed chunk; returns the plaintext's size and SHA-256
/// once the last chunk is written (ring's SHA-256 uses the CPU's SHA extensions).
fn write_sealed(
    writer: &mut Box<dyn crate::vault::BlobWriter>,
    (mut sealer, header): (Sealer, [u8; crate::vault::stream::HEADER_LEN]),
    (chunks, spare): &mut ChunkLoop,
    failpoints: &crate::failpoints::Failpoints,
) -> Result<(u64, String), VaultError> {
    writer.write_all(&header)?;
    let mut size = 0u64;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    while let Some((mut chunk, last)) = chunks.blocking_recv() {
        size += chunk.len() as u64;
        hasher.update(&chunk);
        sealer.seal_chunk(&mut chunk, last);
        writer.write_all(&chunk)?;
        // Its channel holds every buffer there is, so this never drops one.
        let _ = spare.try_send(chunk);

        // Tests cut an upload once parts of it have reached the store.
        if size > 2 * crate::vault::PART_SIZE as u64 {
            failpoints
                .hit("inside:upload")
                .map_err(|e| VaultError::Io(std::io::Error::other(e)))?;
        }
        if last {
            return Ok((size, hex::encode(hasher.finish().as_ref())));
        }
    }
    Err(VaultError::Io(std::io::Error::other(
        "upload ended before its last chunk",
    )))
}

/// Every chunk buffer one upload may hold: enough for the channel to be full while the
/// reader fills two and the worker holds one.
const UPLOAD_BUFFERS: usize = super::PIPELINE_DEPTH + 4;

/// The upload's chunk buffers, a fixed set going round the pipeline: the worker hands
/// each back once written, so an upload of any size holds at most `UPLOAD_BUFFERS`
/// chunks and allocates none after its first few.
struct Buffers {
    chunk_size: usize,
    made: usize,
    written: tokio::sync::mpsc::Receiver<Vec<u8>>,
}

impl Buffers {
    fn new(chunk_size: usize, written: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            chunk_size,
            made: 0,
            written,
        }
    }

    /// An empty buffer with room for a chunk and the tag the sealer appends (so sealing
    /// never moves it); waits for one to come back once all are made. `None` once the
    /// worker has stopped, whose own error is reported.
    async fn next(&mut self) -> Option<Vec<u8>> {
        let mut buffer = match self.written.try_recv() {
            Ok(buffer) => buffer,
            Err(_) if self.made < UPLOAD_BUFFERS => {
                self.made += 1;
                return Some(Vec::with_capacity(
                    self.chunk_size + crate::vault::stream::TAG_LEN,
                ));
            }
            Err(_) => self.written.recv().await?,
        };
        buffer.clear();
        Some(buffer)
    }
}

/// Cuts the request body into chunks for the hashing stage; a body over the size limit
/// or cut off is an error, and ends the pipeline before its last chunk.
async fn feed_chunks<S, B, E>(
    body: &mut S,
    buffers: &mut Buffers,
    chunks: &tokio::sync::mpsc::Sender<(Vec<u8>, bool)>,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let chunk_size = buffers.chunk_size;
    let Some(mut current) = buffers.next().await else {
        return Ok(());
    };
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
                let Some(next) = buffers.next().await else {
                    return Ok(());
                };
                let next = std::mem::replace(&mut current, next);
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
