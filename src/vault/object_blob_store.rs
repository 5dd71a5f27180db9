//! Blobs in S3-compatible object storage, through the `object_store` crate.
//!
//! A blob is a multipart upload that becomes an object only when completed, so a failed
//! or abandoned upload leaves no object; it is aborted (its parts deleted) at once, and a
//! bucket lifecycle rule for incomplete multipart uploads catches a process killed
//! mid-upload. Parts are sent while the sealer goes on, at most [`PARTS_IN_FLIGHT`] at a
//! time, so an upload holds at most that many parts in memory whatever its size.
//!
//! The writer and reader are blocking (the vault's workers run on `spawn_blocking`
//! threads) and drive the async client through the runtime's handle.

use super::VaultError;
use super::blob_store::{BlobStore, BlobWriter, check_blob_id};
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::io::{Read, Write};
use std::sync::Arc;
use tokio::runtime::Handle;

/// Bytes per uploaded part: above S3's 5 MiB minimum, and 10,000 of them (S3's limit)
/// make 80 GiB, beyond any model artifact we expect.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploading at once per blob.
pub const PARTS_IN_FLIGHT: usize = 4;

pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// `s3://bucket/prefix`, for messages.
    url: String,
}

impl ObjectBlobStore {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: String) -> Self {
        Self {
            store,
            prefix: ObjectPath::from(prefix),
            url,
        }
    }

    /// `prefix/ab/abcdef…`, as the folder store lays blobs out.
    fn location(&self, blob_id: &str) -> Result<ObjectPath, VaultError> {
        check_blob_id(blob_id)?;
        Ok(self.prefix.clone().join(&blob_id[..2]).join(blob_id))
    }
}

fn io_error(e: object_store::Error) -> VaultError {
    let kind = match e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        _ => std::io::ErrorKind::Other,
    };
    VaultError::Io(std::io::Error::new(kind, e))
}

#[async_trait::async_trait]
impl BlobStore for ObjectBlobStore {
    async fn begin(&self, blob_id: &str) -> Result<Box<dyn BlobWriter>, VaultError> {
        let location = self.location(blob_id)?;
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(io_error)?;
        Ok(Box::new(ObjectBlobWriter {
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
            handle: Handle::current(),
        }))
    }

    async fn open(&self, blob_id: &str) -> Result<Box<dyn Read + Send>, VaultError> {
        let found = self
            .store
            .get(&self.location(blob_id)?)
            .await
            .map_err(io_error)?;
        Ok(Box::new(ObjectBlobReader {
            body: found.into_stream(),
            current: bytes::Bytes::new(),
            handle: Handle::current(),
        }))
    }

    async fn remove(&self, blob_id: &str) -> Result<(), VaultError> {
        // S3 answers a delete of a missing key with success, as the trait asks.
        match self.store.delete(&self.location(blob_id)?).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn list(&self) -> Result<Vec<String>, VaultError> {
        let mut listed = self.store.list(Some(&self.prefix));
        let mut ids = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(io_error)?;
            if let Some(id) = meta.location.filename()
                && check_blob_id(id).is_ok()
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

struct ObjectBlobWriter {
    upload: Option<WriteMultipart>,
    handle: Handle,
}

impl ObjectBlobWriter {
    fn upload(&mut self) -> std::io::Result<&mut WriteMultipart> {
        self.upload
            .as_mut()
            .ok_or_else(|| std::io::Error::other("blob already finished"))
    }
}

impl Write for ObjectBlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let handle = self.handle.clone();
        let upload = self.upload()?;
        handle
            .block_on(upload.wait_for_capacity(PARTS_IN_FLIGHT))
            .map_err(std::io::Error::other)?;
        // A full part starts uploading as a task on the runtime.
        let _runtime = handle.enter();
        upload.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobWriter for ObjectBlobWriter {
    fn finish(mut self: Box<Self>) -> Result<(), VaultError> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| VaultError::Io(std::io::Error::other("blob already finished")))?;
        // `finish` aborts the upload itself when a part or the completion fails.
        self.handle.block_on(upload.finish()).map_err(io_error)?;
        Ok(())
    }

    fn abort(mut self: Box<Self>) -> Result<(), VaultError> {
        match self.upload.take() {
            Some(upload) => self.handle.block_on(upload.abort()).map_err(io_error),
            None => Ok(()),
        }
    }
}

impl Drop for ObjectBlobWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Dropped without finishing (the request went away): abort without blocking
            // whoever dropped it, which may be the runtime itself.
            self.handle.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "could not abort an abandoned multipart upload; a bucket lifecycle rule removes it");
                }
            });
        }
    }
}

struct ObjectBlobReader {
    body: futures_util::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    current: bytes::Bytes,
    handle: Handle,
}

impl Read for ObjectBlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.handle.block_on(self.body.next()) {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
