//! Secret key files on disk: created exclusively with mode 0600, refused when another
//! user could read them, read into memory that is zeroized on drop.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read or create the key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key file {path} does not hold a {expected}-byte key")]
    Malformed { path: PathBuf, expected: usize },
    #[error("the key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
}

/// Writes `bytes` to a new file at `path` (owner-only, synced). Returns `Ok(false)`, and
/// writes nothing, when the file already exists.
pub fn create_new(path: &Path, bytes: &[u8]) -> Result<bool, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(bytes).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

/// Reads a `N`-byte key from `path`, refusing a file that others could read.
pub fn load<const N: usize>(path: &Path) -> Result<Zeroizing<[u8; N]>, KeyFileError> {
    load_unless(path, 0o077)
}

/// Reads a `N`-byte key that is managed outside sunset (a Kubernetes Secret, mounted
/// read-only and readable by the pod's `fsGroup`): its group may read it, others may not.
pub fn load_shared<const N: usize>(path: &Path) -> Result<Zeroizing<[u8; N]>, KeyFileError> {
    load_unless(path, 0o027)
}

/// Reads a `N`-byte key from `path`, refusing a file with any of the `forbidden` mode bits.
fn load_unless<const N: usize>(
    path: &Path,
    forbidden: u32,
) -> Result<Zeroizing<[u8; N]>, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & forbidden != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(N));
    file.read_to_end(&mut bytes).map_err(io)?;
    let mut key = Zeroizing::new([0u8; N]);
    if bytes.len() != N {
        return Err(KeyFileError::Malformed {
            path: path.to_owned(),
            expected: N,
        });
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Destroys the key file at `path`: overwrites it with zeros, syncs, unlinks it and
/// syncs its folder. Returns `Ok(false)` when there was no such file.
///
/// Overwriting is best effort: a copy-on-write file system or an SSD's wear levelling may
/// keep the old bytes in blocks the file no longer owns. That is why key files are tiny
/// and live on their own volume in a hardened deployment (or in a KMS, behind
/// `vault::KeyEncryptionKey`).
pub fn destroy(path: &Path) -> Result<bool, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(4096)];
    file.write_all(&zeros).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::remove_file(path).map_err(io)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_owner_only_and_looser_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        assert!(create_new(&path, &[5u8; 32]).unwrap());
        assert!(!create_new(&path, &[6u8; 32]).unwrap(), "never overwrites");
        assert_eq!(*load::<32>(&path).unwrap(), [5u8; 32]);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            load::<16>(&path),
            Err(KeyFileError::Malformed { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load::<32>(&path),
            Err(KeyFileError::TooOpen { .. })
        ));
        assert!(destroy(&path).unwrap());
        assert!(!path.exists());
        assert!(!destroy(&path).unwrap(), "destroying twice is harmless");
    }
}
