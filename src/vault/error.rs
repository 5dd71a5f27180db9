//! What can go wrong in the vault. Integrity failures name the chunk, so an operator can
//! tell a flipped byte from a truncated blob.

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "integrity: chunk {chunk} failed authentication (corrupted, dropped, reordered or truncated data)"
    )]
    ChunkRejected { chunk: u64 },
    #[error("integrity: the blob ends inside its header ({got} of {expected} bytes)")]
    TruncatedHeader { got: usize, expected: usize },
    #[error("integrity: the blob is not a sunset blob, or of an unknown version")]
    BadHeader,
    #[error("integrity: the blob goes on after its final chunk")]
    TrailingData,
    #[error("the wrapped data key {key_id} does not open under KEK epoch {epoch}")]
    UnwrapFailed { key_id: String, epoch: u32 },
    #[error("KEK epoch {0} is not available (destroyed or never created)")]
    UnknownEpoch(u32),
    #[error("HSM: {0}")]
    Hsm(String),
    #[error("object storage: {0}")]
    ObjectStore(String),
    #[error(transparent)]
    KeyFile(#[from] crate::key_file::KeyFileError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
