//! Where ciphertext blobs live: a folder under the data dir by default, behind a trait
//! so object storage can take its place.
//!
//! A blob is written to a temporary file and renamed into place only when complete and
//! synced, so a failed or abandoned upload leaves nothing behind.

use super::VaultError;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub trait BlobStore: Send + Sync {
    /// Starts a new blob; it becomes visible only through [`BlobWriter::finish`].
    fn begin(&self, blob_id: &str) -> Result<Box<dyn BlobWriter>, VaultError>;
    fn open(&self, blob_id: &str) -> Result<Box<dyn Read + Send>, VaultError>;
    fn remove(&self, blob_id: &str) -> Result<(), VaultError>;
}

pub trait BlobWriter: Write + Send {
    /// Makes the blob durable and visible under its id. Dropping a writer without
    /// finishing it discards what was written.
    fn finish(self: Box<Self>) -> Result<(), VaultError>;
}

/// Blobs as files `blobs/<first two hex digits>/<blob id>`.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn open_or_create(root: &Path) -> Result<Self, VaultError> {
        for dir in [root.to_owned(), root.join("tmp")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        // Leftovers of uploads cut off by a crash are never finished blobs.
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Blob ids are generated hex strings; anything else is refused before touching disk.
    fn final_path(&self, blob_id: &str) -> Result<PathBuf, VaultError> {
        if blob_id.len() < 4
            || blob_id.len() > 64
            || !blob_id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(VaultError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "malformed blob id",
            )));
        }
        Ok(self.root.join(&blob_id[..2]).join(blob_id))
    }

    /// Where a blob's file is, for tests and tooling that inspect blobs at rest.
    pub fn path_of(&self, blob_id: &str) -> Option<PathBuf> {
        self.final_path(blob_id).ok()
    }
}

impl BlobStore for FsBlobStore {
    fn begin(&self, blob_id: &str) -> Result<Box<dyn BlobWriter>, VaultError> {
        let target = self.final_path(blob_id)?;
        let temp = self.root.join("tmp").join(format!("{blob_id}.part"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        Ok(Box::new(FsBlobWriter {
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            temp,
            target,
        }))
    }

    fn open(&self, blob_id: &str) -> Result<Box<dyn Read + Send>, VaultError> {
        Ok(Box::new(File::open(self.final_path(blob_id)?)?))
    }

    fn remove(&self, blob_id: &str) -> Result<(), VaultError> {
        match fs::remove_file(self.final_path(blob_id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

struct FsBlobWriter {
    file: Option<std::io::BufWriter<File>>,
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
        let file = file.into_inner().map_err(|e| e.into_error())?;
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

    #[test]
    fn a_blob_appears_only_when_finished_and_an_abandoned_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open_or_create(dir.path()).unwrap();
        let mut w = store.begin("abcdef01").unwrap();
        w.write_all(b"ciphertext").unwrap();
        assert!(store.open("abcdef01").is_err(), "invisible before finish");
        w.finish().unwrap();
        let mut read = String::new();
        store
            .open("abcdef01")
            .unwrap()
            .read_to_string(&mut read)
            .unwrap();
        assert_eq!(read, "ciphertext");

        let mut abandoned = store.begin("abcdef02").unwrap();
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        assert!(store.open("abcdef02").is_err());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(store.begin("../../etc").is_err());
    }
}
