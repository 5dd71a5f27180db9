//! Where ciphertext blobs live: a folder under the data dir by default, or a bucket of
//! S3-compatible object storage (`object_blob_store.rs`), behind one trait.
//!
//! In the folder, a blob is written to a temporary file and renamed into place only when
//! complete and synced, so a failed or abandoned upload leaves nothing behind. The file is
//! written with `O_DIRECT` where the filesystem allows it (`direct_file.rs`).

use super::VaultError;
use super::direct_file::BlobFile;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The methods are async (object storage answers over the network); what they return
/// reads and writes blocking, from the vault's `spawn_blocking` workers.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// Starts a new blob; it becomes visible only through [`BlobWriter::finish`].
    async fn begin(&self, blob_id: &str) -> Result<Box<dyn BlobWriter>, VaultError>;
    /// A missing blob is an `Io` error of kind `NotFound`, whatever the store.
    async fn open(&self, blob_id: &str) -> Result<Box<dyn Read + Send>, VaultError>;
    /// Removing a missing blob succeeds.
    async fn remove(&self, blob_id: &str) -> Result<(), VaultError>;
    /// Every finished blob's id, for restores and audits of what the store holds.
    async fn list(&self) -> Result<Vec<String>, VaultError>;
    /// Where the blobs are, for messages (a folder, or `s3://bucket/prefix`).
    fn describe(&self) -> String;
}

pub trait BlobWriter: Write + Send {
    /// Makes the blob durable and visible under its id. Dropping a writer without
    /// finishing it discards what was written.
    fn finish(self: Box<Self>) -> Result<(), VaultError>;

    /// Discards what was written and waits until it is gone (a multipart upload
    /// aborted); dropping does the same without waiting.
    fn abort(self: Box<Self>) -> Result<(), VaultError>;
}

/// Blob ids are generated hex strings; anything else is refused before touching storage.
pub(super) fn check_blob_id(blob_id: &str) -> Result<(), VaultError> {
    if blob_id.len() < 4 || blob_id.len() > 64 || !blob_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VaultError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "malformed blob id",
        )));
    }
    Ok(())
}

/// Blobs as files `blobs/<first two hex digits>/<blob id>`. Uploads are written under
/// `blobs/tmp/<this process>/` and renamed into place when complete: each process has a
/// folder of its own, so replicas sharing the folder never touch each other's uploads.
pub struct FsBlobStore {
    root: PathBuf,
    /// This process's folder of uploads in progress.
    temp: PathBuf,
}

/// A temporary folder's name: host, process and a random part (two stores in one
/// process, as tests run them, each get their own).
fn temp_folder_name() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(['/', '.'], "_"))
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Whether a temporary folder belongs to a process that cannot finish its uploads: one
/// of this host that no longer runs, or one untouched for a day (another host's, which
/// cannot be seen from here, or an old-style leftover).
fn abandoned(entry: &fs::DirEntry) -> bool {
    let name = entry.file_name().to_string_lossy().into_owned();
    let our_host = temp_folder_name();
    let host_of = |n: &str| n.split('.').next().map(str::to_owned);
    if let (Some(host), Some(pid)) = (host_of(&name), name.split('.').nth(1))
        && host_of(&our_host) == Some(host)
        && pid.parse::<u32>().is_ok()
    {
        return !Path::new("/proc").join(pid).exists();
    }
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600))
}

impl FsBlobStore {
    pub fn open_or_create(root: &Path) -> Result<Self, VaultError> {
        let temp = root.join("tmp").join(temp_folder_name());
        for dir in [root.to_owned(), root.join("tmp"), temp.clone()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        // Leftovers of uploads cut off by a crash are never finished blobs; uploads of
        // processes still running are theirs.
        for entry in fs::read_dir(root.join("tmp"))? {
            let entry = entry?;
            if entry.path() != temp && abandoned(&entry) {
                let _ = if entry.file_type()?.is_dir() {
                    fs::remove_dir_all(entry.path())
                } else {
                    fs::remove_file(entry.path())
                };
            }
        }
        Ok(Self {
            root: root.to_owned(),
            temp,
        })
    }

    fn final_path(&self, blob_id: &str) -> Result<PathBuf, VaultError> {
        check_blob_id(blob_id)?;
        Ok(self.root.join(&blob_id[..2]).join(blob_id))
    }

    /// Where a blob's file is, for tests and tooling that inspect blobs at rest.
    pub fn path_of(&self, blob_id: &str) -> Option<PathBuf> {
        self.final_path(blob_id).ok()
    }
}

// Local file operations are quick enough to run inline; the writes and reads of a
// blob's bytes happen in the callers' blocking workers.
#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn begin(&self, blob_id: &str) -> Result<Box<dyn BlobWriter>, VaultError> {
        let target = self.final_path(blob_id)?;
        let temp = self.temp.join(format!("{blob_id}.part"));
        let file = BlobFile::create(&temp)?;
        Ok(Box::new(FsBlobWriter {
            file: Some(file),
            temp,
            target,
        }))
    }

    async fn open(&self, blob_id: &str) -> Result<Box<dyn Read + Send>, VaultError> {
        Ok(super::direct_file::open_for_reading(
            &self.final_path(blob_id)?,
        )?)
    }

    async fn remove(&self, blob_id: &str) -> Result<(), VaultError> {
        match fs::remove_file(self.final_path(blob_id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<String>, VaultError> {
        let mut ids = Vec::new();
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            let name = shard.file_name();
            let name = name.to_string_lossy();
            if name.len() != 2 || !shard.file_type()?.is_dir() {
                continue;
            }
            for blob in fs::read_dir(shard.path())? {
                let id = blob?.file_name().to_string_lossy().into_owned();
                if check_blob_id(&id).is_ok() && id.starts_with(name.as_ref()) {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

struct FsBlobWriter {
    file: Option<BlobFile>,
    temp: PathBuf,
    target: PathBuf,
}

impl Write for FsBlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("blob already finished")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl BlobWriter for FsBlobWriter {
    fn finish(mut self: Box<Self>) -> Result<(), VaultError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("blob already finished"))?;
        let file = file.finish()?;
        file.sync_all()?;
        let dir = self
            .target
            .parent()
            .ok_or_else(|| std::io::Error::other("blob path has no folder"))?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        fs::rename(&self.temp, &self.target)?;
        // The rename is durable only once the folder holding it is synced.
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    fn abort(self: Box<Self>) -> Result<(), VaultError> {
        Ok(()) // Dropping removes the temporary file.
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blob_appears_only_when_finished_and_an_abandoned_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open_or_create(dir.path()).unwrap();
        let mut w = store.begin("abcdef01").await.unwrap();
        w.write_all(b"ciphertext").unwrap();
        assert!(
            store.open("abcdef01").await.is_err(),
            "invisible before finish"
        );
        w.finish().unwrap();
        let mut read = String::new();
        store
            .open("abcdef01")
            .await
            .unwrap()
            .read_to_string(&mut read)
            .unwrap();
        assert_eq!(read, "ciphertext");

        let mut abandoned = store.begin("abcdef02").await.unwrap();
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        assert!(store.open("abcdef02").await.is_err());
        assert_eq!(fs::read_dir(&store.temp).unwrap().count(), 0);
        assert!(store.begin("../../etc").await.is_err());
    }

    #[tokio::test]
    async fn a_second_store_on_the_folder_keeps_the_first_ones_uploads_and_clears_the_dead() {
        let dir = tempfile::tempdir().unwrap();
        let first = FsBlobStore::open_or_create(dir.path()).unwrap();
        let mut upload = first.begin("abcdef03").await.unwrap();
        upload.write_all(b"in flight").unwrap();
        // A replica of a process that died (no such pid) left an upload behind.
        let dead = dir.path().join("tmp").join(temp_folder_name().replacen(
            &format!(".{}.", std::process::id()),
            ".4194304999.",
            1,
        ));
        fs::create_dir_all(&dead).unwrap();
        fs::write(dead.join("abcdef04.part"), b"never finished").unwrap();

        let second = FsBlobStore::open_or_create(dir.path()).unwrap();
        assert_ne!(first.temp, second.temp);
        assert!(!dead.exists(), "the dead process's uploads are cleared");
        upload.write_all(b" and finished").unwrap();
        upload.finish().unwrap();
        let mut read = String::new();
        second
            .open("abcdef03")
            .await
            .unwrap()
            .read_to_string(&mut read)
            .unwrap();
        assert_eq!(read, "in flight and finished");
    }
}
