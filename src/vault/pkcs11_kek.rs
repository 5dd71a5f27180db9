//! Key-encryption keys on a PKCS#11 token (an HSM, a cloud HSM, SoftHSM2).
//!
//! Each epoch is an AES-256 secret key object labelled `<prefix>-NNNNNNNN`, generated on
//! the token as sensitive and non-extractable: its bytes never leave the HSM. Data keys
//! are sealed and opened inside it (`C_Encrypt`/`C_Decrypt` with AES-GCM, bound to the
//! artifact by the same additional data as the file backend), and destroying an epoch is
//! `C_DestroyObject`, confirmed by looking for the label again.
//!
//! Replicas share the token, not a folder: every instance finds the epochs by label, so a
//! rotation made by one is seen by the others at their next wrap, or within one poll.
//! Two instances creating the same epoch at once each make an object; wrapping uses the
//! one with the lowest id and opening tries each, so nothing wrapped under either is lost,
//! and destroying the epoch destroys both.

use super::data_key::DATA_KEY_LEN;
use super::kek::aad;
use super::{DataKey, KeyEncryptionKey, VaultError, WrappedKey};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand::{Rng, RngExt};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, RwLock};
use zeroize::Zeroizing;

const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;

/// Where the token is and how to log in; the PIN is wiped when dropped.
pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: Zeroizing<String>,
    pub key_label_prefix: String,
}

/// A session held for a call, with the process's turn at the token (dropped after it).
struct SessionGuard<'a> {
    session: std::sync::MutexGuard<'a, Session>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for SessionGuard<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

/// One epoch's key objects on the token, lowest id first.
type Epochs = BTreeMap<u32, Vec<ObjectHandle>>;

pub struct Pkcs11Kek {
    session: Mutex<Session>,
    prefix: String,
    token: String,
    epochs: RwLock<Epochs>,
}

fn hsm(e: CkError) -> VaultError {
    VaultError::Hsm(e.to_string())
}

/// A module is initialised once per process (`C_Initialize` twice is an error), and stays
/// loaded: each instance of the vault in the process opens sessions on the same context.
fn context(module: &Path) -> Result<Pkcs11, VaultError> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = loaded.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        VaultError::Hsm(format!(
            "cannot load the PKCS#11 library {}: {e}",
            module.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(hsm(e)),
    }
    loaded.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

impl Pkcs11Kek {
    /// Logs in to the token labelled `token_label` and finds its epochs, creating epoch 1
    /// on first use.
    pub fn open(config: &Pkcs11Config) -> Result<Self, VaultError> {
        let kek = Self::connect(config)?;
        kek.rescan()?;
        if kek.read().is_empty() {
            kek.ensure_epoch(1)?;
        }
        Ok(kek)
    }

    fn connect(config: &Pkcs11Config) -> Result<Self, VaultError> {
        let ctx = context(&config.module)?;
        let slot = ctx
            .get_slots_with_token()
            .map_err(hsm)?
            .into_iter()
            .find(|slot| {
                ctx.get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim_end() == config.token_label)
            })
            .ok_or_else(|| {
                VaultError::Hsm(format!(
                    "no token labelled {:?} in {}",
                    config.token_label,
                    config.module.display()
                ))
            })?;
        let session = ctx.open_rw_session(slot).map_err(hsm)?;
        let pin = AuthPin::from(config.pin.as_str().to_owned());
        match session.login(UserType::User, Some(&pin)) {
            // Login is per process and token: another instance in this process did it.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(VaultError::Hsm(format!(
                    "the PIN for token {:?} is incorrect",
                    config.token_label
                )));
            }
            Err(e) => return Err(hsm(e)),
        }
        Ok(Self {
            session: Mutex::new(session),
            prefix: config.key_label_prefix.clone(),
            token: config.token_label.clone(),
            epochs: RwLock::new(BTreeMap::new()),
        })
    }

    /// This instance's session, and the process's turn at the token. Calls on one
    /// session are one at a time anyway (PKCS#11 sessions are not for concurrent use);
    /// the process-wide turn also keeps several instances in one process (the test
    /// suite's, a benchmark's) from calling into the token at once, which SoftHSM2's
    /// file-backed object store does not survive (`CKR_GENERAL_ERROR` from
    /// `C_GenerateKey` while another session searched). A serving process holds one
    /// instance, so the turn costs it nothing.
    fn session(&self) -> SessionGuard<'_> {
        static TOKEN: Mutex<()> = Mutex::new(());
        let turn = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
        SessionGuard {
            session: self.session.lock().unwrap_or_else(|p| p.into_inner()),
            _turn: turn,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Epochs> {
        self.epochs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn label(&self, epoch: u32) -> String {
        format!("{}-{epoch:08}", self.prefix)
    }

    fn epoch_of(&self, label: &[u8]) -> Option<u32> {
        std::str::from_utf8(label)
            .ok()?
            .strip_prefix(&self.prefix)?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// The epochs' objects as the token holds them now.
    fn find(&self) -> Result<Epochs, VaultError> {
        let session = self.session();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
        ];
        let mut found: BTreeMap<u32, Vec<(Vec<u8>, ObjectHandle)>> = BTreeMap::new();
        for handle in session.find_objects(&template).map_err(hsm)? {
            let attributes =
                match session.get_attributes(handle, &[AttributeType::Label, AttributeType::Id]) {
                    Ok(attributes) => attributes,
                    // Destroyed since the search (by another instance, or another
                    // deployment sharing the token): not one of ours any more.
                    Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => continue,
                    Err(e) => return Err(hsm(e)),
                };
            let (mut epoch, mut id) = (None, Vec::new());
            for attribute in attributes {
                match attribute {
                    Attribute::Label(label) => epoch = self.epoch_of(&label),
                    Attribute::Id(bytes) => id = bytes,
                    _ => {}
                }
            }
            if let Some(epoch) = epoch {
                found.entry(epoch).or_default().push((id, handle));
            }
        }
        Ok(found
            .into_iter()
            .map(|(epoch, mut objects)| {
                objects.sort_by_key(|(id, _)| id.clone());
                (epoch, objects.into_iter().map(|(_, h)| h).collect())
            })
            .collect())
    }

    /// The objects labelled for `epoch`, lowest id first: one search by exact label,
    /// which the token answers without a call per object of other epochs or deployments.
    fn find_epoch(&self, epoch: u32) -> Result<Vec<ObjectHandle>, VaultError> {
        let session = self.session();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Label(self.label(epoch).into_bytes()),
        ];
        let mut objects = Vec::new();
        for handle in session.find_objects(&template).map_err(hsm)? {
            match session.get_attributes(handle, &[AttributeType::Id]) {
                Ok(attributes) => {
                    let id = attributes.into_iter().find_map(|a| match a {
                        Attribute::Id(bytes) => Some(bytes),
                        _ => None,
                    });
                    objects.push((id.unwrap_or_default(), handle));
                }
                Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => continue,
                Err(e) => return Err(hsm(e)),
            }
        }
        objects.sort_by_key(|(id, _)| id.clone());
        Ok(objects.into_iter().map(|(_, h)| h).collect())
    }

    /// Brings the epochs in line with the token. Epochs are contiguous (a rotation adds
    /// the next, a destruction removes those below), so each epoch held is looked up by
    /// its label (gone when destroyed elsewhere) and the ones above it until one is
    /// missing (made by another instance). Only an instance holding none searches every
    /// key on the token: a shared token holds many, and a search that reads each one's
    /// label on every wrap made a busy token slow.
    fn rescan(&self) -> Result<(), VaultError> {
        let known: Vec<u32> = self.read().keys().copied().collect();
        let Some(&highest) = known.last() else {
            let found = self.find()?;
            *self.epochs.write().unwrap_or_else(|p| p.into_inner()) = found;
            return Ok(());
        };
        let mut now = Epochs::new();
        for epoch in known {
            let handles = self.find_epoch(epoch)?;
            if !handles.is_empty() {
                now.insert(epoch, handles);
            }
        }
        for epoch in highest + 1.. {
            let handles = self.find_epoch(epoch)?;
            if handles.is_empty() {
                break;
            }
            now.insert(epoch, handles);
        }
        *self.epochs.write().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(())
    }

    fn handles(&self, epoch: u32) -> Result<Vec<ObjectHandle>, VaultError> {
        if let Some(h) = self.read().get(&epoch) {
            return Ok(h.clone());
        }
        // Another instance may have created it since this one last looked.
        self.rescan()?;
        self.read()
            .get(&epoch)
            .cloned()
            .ok_or(VaultError::UnknownEpoch(epoch))
    }

    fn seal(
        &self,
        handle: ObjectHandle,
        epoch: u32,
        key: &DataKey,
        key_id: &str,
    ) -> Result<WrappedKey, VaultError> {
        let mut iv = [0u8; IV_LEN];
        rand::rng().fill_bytes(&mut iv);
        let aad = aad(epoch, key_id);
        let mut params_iv = iv;
        let params = GcmParams::new(&mut params_iv, &aad, TAG_BITS.into()).map_err(hsm)?;
        let sealed = self
            .session()
            .encrypt(&Mechanism::AesGcm(params), handle, key.expose())
            .map_err(hsm)?;
        let mut bytes = iv.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(WrappedKey { epoch, bytes })
    }

    fn open_with(
        &self,
        handle: ObjectHandle,
        wrapped: &WrappedKey,
        key_id: &str,
    ) -> Option<DataKey> {
        if wrapped.bytes.len() != IV_LEN + DATA_KEY_LEN + super::stream::TAG_LEN {
            return None;
        }
        let (iv, sealed) = wrapped.bytes.split_at(IV_LEN);
        let mut iv: [u8; IV_LEN] = iv.try_into().ok()?;
        let aad = aad(wrapped.epoch, key_id);
        let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into()).ok()?;
        let plain = Zeroizing::new(
            self.session()
                .decrypt(&Mechanism::AesGcm(params), handle, sealed)
                .ok()?,
        );
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        (plain.len() == DATA_KEY_LEN).then(|| {
            key.copy_from_slice(&plain);
            DataKey::from_bytes(key)
        })
    }

    fn generate(&self, epoch: u32) -> Result<(), VaultError> {
        let id: [u8; 16] = rand::rng().random();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(self.label(epoch).into_bytes()),
            Attribute::Id(id.to_vec()),
        ];
        self.session()
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(hsm)?;
        tracing::info!(epoch, token = %self.token, "created a key-encryption key on the HSM");
        Ok(())
    }
}

/// The epochs whose key objects are on the token now, looked up in a session of its own
/// (no epoch is created): what an operator or a test checks after a destruction.
pub fn epochs_on_token(config: &Pkcs11Config) -> Result<Vec<u32>, VaultError> {
    let kek = Pkcs11Kek::connect(config)?;
    Ok(kek.find()?.into_keys().collect())
}

impl KeyEncryptionKey for Pkcs11Kek {
    fn current_epoch(&self) -> u32 {
        self.read().keys().next_back().copied().unwrap_or(0)
    }

    fn epochs(&self) -> Vec<u32> {
        self.read().keys().copied().collect()
    }

    fn wrap(&self, key: &DataKey, key_id: &str) -> Result<WrappedKey, VaultError> {
        self.rescan()?;
        let (epoch, handle) = self
            .read()
            .iter()
            .next_back()
            .and_then(|(e, h)| Some((*e, *h.first()?)))
            .ok_or(VaultError::UnknownEpoch(0))?;
        self.seal(handle, epoch, key, key_id)
    }

    fn unwrap(&self, wrapped: &WrappedKey, key_id: &str) -> Result<DataKey, VaultError> {
        for handle in self.handles(wrapped.epoch)? {
            if let Some(key) = self.open_with(handle, wrapped, key_id) {
                return Ok(key);
            }
        }
        // A handle may have gone stale (the object destroyed by another instance):
        // look again once before answering that the wrapping does not open.
        self.rescan()?;
        if !self.read().contains_key(&wrapped.epoch) {
            return Err(VaultError::UnknownEpoch(wrapped.epoch));
        }
        Err(VaultError::UnwrapFailed {
            key_id: key_id.to_owned(),
            epoch: wrapped.epoch,
        })
    }

    fn rewrap(
        &self,
        wrapped: &WrappedKey,
        key_id: &str,
        epoch: u32,
    ) -> Result<WrappedKey, VaultError> {
        let key = self.unwrap(wrapped, key_id)?;
        let handle = *self
            .handles(epoch)?
            .first()
            .ok_or(VaultError::UnknownEpoch(epoch))?;
        self.seal(handle, epoch, &key, key_id)
    }

    fn ensure_epoch(&self, epoch: u32) -> Result<(), VaultError> {
        self.rescan()?;
        if self.read().contains_key(&epoch) {
            return Ok(());
        }
        self.generate(epoch)?;
        self.rescan()
    }

    fn destroy_below(&self, keep_from: u32) -> Result<Vec<u32>, VaultError> {
        self.rescan()?;
        let doomed: Epochs = self
            .read()
            .range(..keep_from)
            .map(|(e, h)| (*e, h.clone()))
            .collect();
        for (epoch, handles) in &doomed {
            for handle in handles {
                match self.session().destroy_object(*handle) {
                    // Destroyed by another instance in the meantime.
                    Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                    Err(e) => return Err(hsm(e)),
                }
            }
            tracing::warn!(epoch, token = %self.token, "destroyed a key-encryption key on the HSM");
        }
        self.rescan()?;
        if let Some(left) = self.read().range(..keep_from).next() {
            return Err(VaultError::Hsm(format!(
                "KEK epoch {} is still on the token after C_DestroyObject",
                left.0
            )));
        }
        Ok(doomed.into_keys().collect())
    }

    fn refresh(&self) -> Result<(), VaultError> {
        self.rescan()
    }

    fn describe(&self) -> String {
        format!("PKCS#11 token {:?} (keys {}-*)", self.token, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    //! On the SoftHSM2 token `tests/run` initialises (see `testing::fleet_vault`).
    use super::*;

    fn config() -> (Pkcs11Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let settings = crate::testing::fleet_vault(dir.path());
        (
            crate::vault::pkcs11_config(&settings.kek).expect("config"),
            dir,
        )
    }

    #[test]
    fn an_epoch_key_never_leaves_the_token_and_a_wrapping_opens_only_for_its_key_id() {
        let (config, _dir) = config();
        let kek = Pkcs11Kek::open(&config).expect("open");
        assert_eq!(kek.epochs(), vec![1]);
        let handle = kek.handles(1).expect("epoch 1")[0];
        let attributes = kek
            .session()
            .get_attributes(
                handle,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Token,
                ],
            )
            .expect("attributes");
        for attribute in attributes {
            match attribute {
                Attribute::Sensitive(v) | Attribute::NeverExtractable(v) | Attribute::Token(v) => {
                    assert!(v, "{attribute:?}")
                }
                Attribute::Extractable(v) => assert!(!v, "non-extractable"),
                other => panic!("unexpected {other:?}"),
            }
        }
        let value = kek
            .session()
            .get_attributes(handle, &[AttributeType::Value]);
        assert!(
            !matches!(value.as_deref(), Ok([Attribute::Value(_)])),
            "the key's value cannot be read: {value:?}"
        );

        let key = DataKey::generate();
        let wrapped = kek.wrap(&key, "artifact-1").expect("wrap");
        assert_eq!(wrapped.bytes.len(), IV_LEN + DATA_KEY_LEN + 16);
        assert!(!wrapped.bytes.windows(32).any(|w| w == key.expose()));
        assert_eq!(
            kek.unwrap(&wrapped, "artifact-1").expect("unwrap").expose(),
            key.expose()
        );
        assert!(matches!(
            kek.unwrap(&wrapped, "artifact-2"),
            Err(VaultError::UnwrapFailed { .. })
        ));
    }

    #[test]
    fn a_rotation_through_one_instance_is_followed_by_another_and_destruction_is_confirmed() {
        let (config, _dir) = config();
        let rotating = Pkcs11Kek::open(&config).expect("open");
        let following = Pkcs11Kek::open(&config).expect("open");
        let key = DataKey::generate();
        let old = following.wrap(&key, "a").expect("wrap");
        rotating.ensure_epoch(2).expect("epoch 2");
        rotating.ensure_epoch(2).expect("idempotent");
        assert_eq!(epochs_on_token(&config).expect("token"), vec![1, 2]);
        let new = following.wrap(&key, "a").expect("wrap");
        assert_eq!(
            (old.epoch, new.epoch),
            (1, 2),
            "the other instance wraps under 2"
        );
        let moved = rotating.rewrap(&old, "a", 2).expect("rewrap");

        assert_eq!(rotating.destroy_below(2).expect("destroy"), vec![1]);
        assert_eq!(rotating.destroy_below(2).expect("again"), Vec::<u32>::new());
        assert_eq!(epochs_on_token(&config).expect("token"), vec![2]);
        assert!(matches!(
            following.unwrap(&old, "a"),
            Err(VaultError::UnknownEpoch(1))
        ));
        assert_eq!(
            following.epochs(),
            vec![2],
            "the destroyed epoch is forgotten"
        );
        assert_eq!(
            following.unwrap(&moved, "a").expect("opens").expose(),
            key.expose()
        );
    }

    #[test]
    fn a_pin_file_that_cannot_be_read_is_named_and_the_pin_never_printed() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut settings = crate::testing::fleet_vault(dir.path()).kek;
        settings.pin_file = Some(dir.path().join("no-such-pin"));
        let Err(e) = crate::vault::pkcs11_config(&settings) else {
            panic!("a missing PIN file was accepted");
        };
        assert!(e.to_string().contains("no-such-pin"), "{e}");
        std::fs::write(dir.path().join("pin"), "s3cret-pin-value\n").expect("pin");
        settings.pin_file = Some(dir.path().join("pin"));
        let config = crate::vault::pkcs11_config(&settings).expect("config");
        assert_eq!(config.pin.as_str(), "s3cret-pin-value");
        assert!(!format!("{:?}", settings).contains("s3cret"));
    }
}
