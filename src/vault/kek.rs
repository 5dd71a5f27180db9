//! Key-encryption keys: data keys are stored only wrapped by one.
//!
//! The KEK lives outside the database, behind [`KeyEncryptionKey`], so a KMS or Vault
//! Transit can take the place of the default [`FileKek`]. KEKs come in numbered epochs:
//! new data keys are wrapped under the newest epoch, and crypto-erasure (issue 6)
//! re-wraps every surviving data key under a fresh epoch and destroys the old one, so
//! that a database backup holding the old wrappings opens nothing.

use super::data_key::DATA_KEY_LEN;
use super::{DataKey, VaultError};
use crate::key_file;
use rand::Rng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use zeroize::Zeroizing;

/// A data key as stored: `nonce || ciphertext || tag` under KEK `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub epoch: u32,
    pub bytes: Vec<u8>,
}

pub trait KeyEncryptionKey: Send + Sync {
    /// The epoch new data keys are wrapped under: the newest one present.
    fn current_epoch(&self) -> u32;

    /// Every epoch whose key is present, oldest first.
    fn epochs(&self) -> Vec<u32>;

    /// Wraps `key` under the current epoch, bound to `key_id` (the data key's identity,
    /// e.g. the artifact it encrypts), so a wrapping cannot be moved to another artifact.
    fn wrap(&self, key: &DataKey, key_id: &str) -> Result<WrappedKey, VaultError>;

    fn unwrap(&self, wrapped: &WrappedKey, key_id: &str) -> Result<DataKey, VaultError>;

    /// Opens `wrapped` and wraps the same data key again under `epoch` (which must be
    /// present): a KEK rotation's unit of work, with no look at the key folder.
    fn rewrap(
        &self,
        wrapped: &WrappedKey,
        key_id: &str,
        epoch: u32,
    ) -> Result<WrappedKey, VaultError>;

    /// Makes sure epoch `epoch` exists, creating its key if absent. Idempotent, so a
    /// rotation that died after creating the key resumes with the same one.
    fn ensure_epoch(&self, epoch: u32) -> Result<(), VaultError>;

    /// Destroys the key of every epoch below `keep_from` and returns those destroyed.
    /// Idempotent. The caller must first have re-wrapped every surviving data key.
    fn destroy_below(&self, keep_from: u32) -> Result<Vec<u32>, VaultError>;

    /// Brings the epochs held in memory in line with the key store: loads epochs another
    /// instance created, and forgets (zeroizes) those another instance destroyed. Every
    /// instance calls it each `inventory.poll_interval_ms`, so a destroyed epoch outlives
    /// its destruction on no instance by more than that.
    fn refresh(&self) -> Result<(), VaultError>;

    /// Where the keys are, for messages (a folder, or a token and label prefix).
    fn describe(&self) -> String;
}

/// KEKs as files `kek-NNNNNNNN.key` (32 bytes, mode 0600) in a folder of the key folder.
///
/// The folder is read again before every wrap, so an instance sharing the folder with
/// the one that rotated wraps new keys under the new epoch and forgets destroyed ones.
pub struct FileKek {
    dir: PathBuf,
    epochs: RwLock<BTreeMap<u32, LessSafeKey>>,
}

impl FileKek {
    /// Opens the KEK folder, creating it and epoch 1 on first use.
    pub fn open_or_create(dir: &Path) -> Result<Self, VaultError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let kek = Self {
            dir: dir.to_owned(),
            epochs: RwLock::new(BTreeMap::new()),
        };
        kek.rescan()?;
        if kek.read().is_empty() {
            kek.ensure_epoch(1)?;
        }
        Ok(kek)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, LessSafeKey>> {
        self.epochs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u32, LessSafeKey>> {
        self.epochs.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the epochs in memory in line with the files: loads new ones, forgets gone ones.
    fn rescan(&self) -> Result<(), VaultError> {
        let mut present = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Some(epoch) = entry?.file_name().to_str().and_then(parse_file_name) {
                present.push(epoch);
            }
        }
        let known: Vec<u32> = self.read().keys().copied().collect();
        if known == present {
            return Ok(());
        }
        let mut epochs = self.write();
        epochs.retain(|e, _| present.contains(e));
        for epoch in present {
            if let std::collections::btree_map::Entry::Vacant(slot) = epochs.entry(epoch) {
                let bytes = key_file::load::<DATA_KEY_LEN>(&self.path_of(epoch))?;
                slot.insert(cipher(&bytes));
            }
        }
        Ok(())
    }

    fn path_of(&self, epoch: u32) -> PathBuf {
        self.dir.join(format!("kek-{epoch:08}.key"))
    }
}

fn parse_file_name(name: &str) -> Option<u32> {
    name.strip_prefix("kek-")?
        .strip_suffix(".key")?
        .parse()
        .ok()
}

fn cipher(bytes: &[u8; DATA_KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, bytes)
            .unwrap_or_else(|_| panic!("AES-256-GCM rejected a 32-byte key")),
    )
}

fn seal(
    kek: &LessSafeKey,
    epoch: u32,
    key: &DataKey,
    key_id: &str,
) -> Result<WrappedKey, VaultError> {
    // A random 96-bit nonce per wrapping: safe far beyond the number of artifacts
    // one KEK epoch will ever wrap.
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut sealed = key.expose().to_vec();
    let tag = kek
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(epoch, key_id)),
            &mut sealed,
        )
        .map_err(|_| VaultError::UnwrapFailed {
            key_id: key_id.to_owned(),
            epoch,
        })?;
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    bytes.extend_from_slice(tag.as_ref());
    Ok(WrappedKey { epoch, bytes })
}

pub(super) fn aad(epoch: u32, key_id: &str) -> Vec<u8> {
    let mut a = b"sunset/wrapped-data-key/v1\n".to_vec();
    a.extend_from_slice(&epoch.to_be_bytes());
    a.extend_from_slice(key_id.as_bytes());
    a
}

impl KeyEncryptionKey for FileKek {
    fn current_epoch(&self) -> u32 {
        self.read().keys().next_back().copied().unwrap_or(0)
    }

    fn epochs(&self) -> Vec<u32> {
        self.read().keys().copied().collect()
    }

    fn wrap(&self, key: &DataKey, key_id: &str) -> Result<WrappedKey, VaultError> {
        self.rescan()?;
        let epochs = self.read();
        let (&epoch, kek) = epochs
            .iter()
            .next_back()
            .ok_or(VaultError::UnknownEpoch(0))?;
        seal(kek, epoch, key, key_id)
    }

    fn rewrap(
        &self,
        wrapped: &WrappedKey,
        key_id: &str,
        epoch: u32,
    ) -> Result<WrappedKey, VaultError> {
        let key = self.unwrap(wrapped, key_id)?;
        if !self.read().contains_key(&epoch) {
            self.rescan()?;
        }
        let epochs = self.read();
        let kek = epochs.get(&epoch).ok_or(VaultError::UnknownEpoch(epoch))?;
        seal(kek, epoch, &key, key_id)
    }

    fn unwrap(&self, wrapped: &WrappedKey, key_id: &str) -> Result<DataKey, VaultError> {
        if !self.read().contains_key(&wrapped.epoch) {
            // Another instance may have rotated since this one last looked: a wrapping
            // under an epoch it created is read from the folder, not refused.
            self.rescan()?;
        }
        let epochs = self.read();
        let kek = epochs
            .get(&wrapped.epoch)
            .ok_or(VaultError::UnknownEpoch(wrapped.epoch))?;
        let failed = || VaultError::UnwrapFailed {
            key_id: key_id.to_owned(),
            epoch: wrapped.epoch,
        };
        if wrapped.bytes.len() != NONCE_LEN + DATA_KEY_LEN + super::stream::TAG_LEN {
            return Err(failed());
        }
        let (nonce, sealed) = wrapped.bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed())?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = kek
            .open_in_place(
                nonce,
                Aad::from(aad(wrapped.epoch, key_id)),
                buf.as_mut_slice(),
            )
            .map_err(|_| failed())?;
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        key.copy_from_slice(plain);
        Ok(DataKey::from_bytes(key))
    }

    fn ensure_epoch(&self, epoch: u32) -> Result<(), VaultError> {
        let mut epochs = self.write();
        if epochs.contains_key(&epoch) {
            return Ok(());
        }
        let path = self.path_of(epoch);
        let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::rng().fill_bytes(bytes.as_mut());
        if key_file::create_new(&path, bytes.as_ref())? {
            tracing::info!(epoch, "created a key-encryption key");
        } else {
            // Created before a crash, or by an instance sharing the folder.
            bytes = key_file::load::<DATA_KEY_LEN>(&path)?;
        }
        epochs.insert(epoch, cipher(&bytes));
        Ok(())
    }

    fn destroy_below(&self, keep_from: u32) -> Result<Vec<u32>, VaultError> {
        self.rescan()?;
        let mut epochs = self.write();
        let doomed: Vec<u32> = epochs.range(..keep_from).map(|(e, _)| *e).collect();
        for &epoch in &doomed {
            key_file::destroy(&self.path_of(epoch))?;
            epochs.remove(&epoch);
            tracing::warn!(epoch, "destroyed a key-encryption key");
        }
        Ok(doomed)
    }

    fn refresh(&self) -> Result<(), VaultError> {
        self.rescan()
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::stream;

    #[test]
    fn a_wrapped_key_opens_only_for_its_own_key_id_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let kek = FileKek::open_or_create(&dir.path().join("kek")).unwrap();
        assert_eq!(kek.epochs(), vec![1]);
        let key = DataKey::generate();
        let wrapped = kek.wrap(&key, "artifact-1").unwrap();
        assert!(
            !wrapped.bytes.windows(32).any(|w| w == key.expose()),
            "no plaintext key in the wrapping"
        );
        assert!(matches!(
            kek.unwrap(&wrapped, "artifact-2"),
            Err(VaultError::UnwrapFailed { .. })
        ));

        let reopened = FileKek::open_or_create(&dir.path().join("kek")).unwrap();
        let unwrapped = reopened.unwrap(&wrapped, "artifact-1").unwrap();
        let mut sealed = Vec::new();
        stream::seal_stream(&key, b"ctx", 16, &mut &b"some weights"[..], &mut sealed).unwrap();
        let mut out = Vec::new();
        stream::open_stream(&unwrapped, b"ctx", &mut &sealed[..], &mut out).unwrap();
        assert_eq!(out, b"some weights");
    }

    #[test]
    fn without_its_epoch_file_a_wrapping_cannot_be_opened() {
        let dir = tempfile::tempdir().unwrap();
        let kek_dir = dir.path().join("kek");
        let wrapped = FileKek::open_or_create(&kek_dir)
            .unwrap()
            .wrap(&DataKey::generate(), "a")
            .unwrap();
        std::fs::remove_file(kek_dir.join("kek-00000001.key")).unwrap();
        let fresh = FileKek::open_or_create(&kek_dir).unwrap();
        assert!(
            fresh.unwrap(&wrapped, "a").is_err(),
            "a new KEK does not open the old wrapping"
        );
    }

    #[test]
    fn rotation_creates_the_next_epoch_once_and_destroys_the_old_ones_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let kek_dir = dir.path().join("kek");
        let kek = FileKek::open_or_create(&kek_dir).unwrap();
        let key = DataKey::generate();
        let old = kek.wrap(&key, "a").unwrap();
        kek.ensure_epoch(2).unwrap();
        kek.ensure_epoch(2).unwrap();
        // Another instance sharing the folder sees the new epoch at its next wrap.
        let other = FileKek::open_or_create(&kek_dir).unwrap();
        let new = kek.wrap(&key, "a").unwrap();
        assert_eq!((old.epoch, new.epoch), (1, 2));

        assert_eq!(kek.destroy_below(2).unwrap(), vec![1]);
        assert_eq!(kek.destroy_below(2).unwrap(), Vec::<u32>::new());
        assert!(!kek_dir.join("kek-00000001.key").exists());
        assert!(matches!(
            kek.unwrap(&old, "a"),
            Err(VaultError::UnknownEpoch(1))
        ));
        assert!(kek.unwrap(&new, "a").is_ok());
        assert_eq!(other.wrap(&key, "b").unwrap().epoch, 2);
        assert_eq!(other.epochs(), vec![2], "the destroyed epoch is forgotten");
    }

    #[test]
    fn an_instance_opens_wrappings_under_an_epoch_another_created_and_forgets_destroyed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let kek_dir = dir.path().join("kek");
        let rotating = FileKek::open_or_create(&kek_dir).unwrap();
        let following = FileKek::open_or_create(&kek_dir).unwrap();
        let key = DataKey::generate();
        rotating.ensure_epoch(2).unwrap();
        let wrapped = rotating
            .rewrap(&rotating.wrap(&key, "a").unwrap(), "a", 2)
            .unwrap();
        rotating.destroy_below(2).unwrap();

        assert_eq!(following.epochs(), vec![1], "nothing re-read yet");
        let opened = following
            .unwrap(&wrapped, "a")
            .expect("read from the folder on demand");
        assert_eq!(opened.expose(), key.expose());
        assert_eq!(
            following.epochs(),
            vec![2],
            "the destroyed epoch is forgotten with it"
        );

        let other = FileKek::open_or_create(&kek_dir).unwrap();
        rotating.ensure_epoch(3).unwrap();
        rotating.destroy_below(3).unwrap();
        other.refresh().unwrap();
        assert_eq!(other.epochs(), vec![3]);
    }
}
