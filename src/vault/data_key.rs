//! Per-artifact data keys.

use rand::Rng;
use zeroize::Zeroizing;

pub const DATA_KEY_LEN: usize = 32;

/// A fresh random 256-bit key for one artifact. Zeroized on drop; `Debug` never shows it.
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::rng().fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    pub(super) fn from_bytes(bytes: Zeroizing<[u8; DATA_KEY_LEN]>) -> Self {
        Self(bytes)
    }

    pub(super) fn expose(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}
