//! Chunked authenticated encryption for artifacts of any size, in the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway and Vizár, 2015), as age and Tink's streaming AEAD use it.
//!
//! ```text
//! blob  = header || chunk_0 || chunk_1 || … || chunk_n
//! header = "SUNSETb1" || chunk_size (u32, big endian)                      12 bytes
//! chunk_i = AES-256-GCM(data key, nonce_i, aad = header || context, plaintext_i) || tag
//! nonce_i = 0x000000 || i (u64, big endian) || last (0x01 for chunk_n, else 0x00)
//! ```
//!
//! Every chunk but the last holds exactly `chunk_size` bytes of plaintext; the last holds
//! 0 to `chunk_size` bytes (0 only when the whole plaintext is empty). Because the index
//! and the last-chunk flag are in the nonce, a flipped byte, a dropped or repeated or
//! reordered chunk, and a blob cut short at any point all fail authentication. A cut at a
//! chunk boundary leaves a final chunk that was not sealed as last. The header travels in
//! the associated data, so the chunk size cannot be changed either; the caller's context
//! (the artifact's identity) binds a blob to the artifact it belongs to.
//!
//! A data key encrypts exactly one blob, so counter nonces never repeat under a key.

use super::{DataKey, VaultError};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::io::{Read, Write};

pub const MAGIC: &[u8; 8] = b"SUNSETb1";
pub const HEADER_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// 1 MiB: each chunk costs a hand-off between threads and an HTTP frame, which at 64 KiB
/// took a tenth of a download's CPU; a few chunks in flight per transfer still keep memory
/// flat. Blobs written with another size (64 KiB before) carry it in their header.
pub const DEFAULT_CHUNK_SIZE: u32 = 1024 * 1024;
/// Bounds what a header may ask a reader to buffer.
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

fn cipher(key: &DataKey) -> LessSafeKey {
    // A 32-byte key is exactly what AES-256-GCM takes, so this cannot fail.
    let unbound =
        UnboundKey::new(&AES_256_GCM, key.expose()).unwrap_or_else(|_| unreachable_key_length());
    LessSafeKey::new(unbound)
}

#[cold]
fn unreachable_key_length() -> UnboundKey {
    panic!("AES-256-GCM rejected a 32-byte key")
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn header(chunk_size: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&chunk_size.to_be_bytes());
    h
}

/// Encrypts one blob, chunk by chunk.
pub struct Sealer {
    key: LessSafeKey,
    aad: Vec<u8>,
    chunk_size: usize,
    next: u64,
    finished: bool,
}

impl Sealer {
    /// Returns the sealer and the header to write before the first chunk.
    pub fn new(key: &DataKey, context: &[u8], chunk_size: u32) -> (Self, [u8; HEADER_LEN]) {
        let chunk_size = chunk_size.clamp(1, MAX_CHUNK_SIZE);
        let header = header(chunk_size);
        let mut aad = header.to_vec();
        aad.extend_from_slice(context);
        let sealer = Self {
            key: cipher(key),
            aad,
            chunk_size: chunk_size as usize,
            next: 0,
            finished: false,
        };
        (sealer, header)
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Encrypts `chunk` in place and appends its tag. Every chunk but the last must be
    /// exactly `chunk_size` bytes.
    pub fn seal_chunk(&mut self, chunk: &mut Vec<u8>, last: bool) {
        assert!(!self.finished, "a blob has one final chunk");
        assert!(
            chunk.len() == self.chunk_size || (last && chunk.len() <= self.chunk_size),
            "only the last chunk may be shorter than the chunk size"
        );
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(self.next, last), Aad::from(&self.aad), chunk)
            .unwrap_or_else(|_| unreachable_seal());
        chunk.extend_from_slice(tag.as_ref());
        self.next += 1;
        self.finished = last;
    }
}

#[cold]
fn unreachable_seal() -> ring::aead::Tag {
    panic!("AES-256-GCM refused to seal a chunk within its size limit")
}

/// Decrypts one blob, chunk by chunk; a chunk is released only once authenticated.
pub struct Opener {
    key: LessSafeKey,
    aad: Vec<u8>,
    chunk_size: usize,
    next: u64,
    finished: bool,
}

impl Opener {
    pub fn new(key: &DataKey, context: &[u8], header: &[u8]) -> Result<Self, VaultError> {
        if header.len() < HEADER_LEN {
            return Err(VaultError::TruncatedHeader {
                got: header.len(),
                expected: HEADER_LEN,
            });
        }
        if &header[..8] != MAGIC {
            return Err(VaultError::BadHeader);
        }
        let chunk_size = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(VaultError::BadHeader);
        }
        let mut aad = header[..HEADER_LEN].to_vec();
        aad.extend_from_slice(context);
        Ok(Self {
            key: cipher(key),
            aad,
            chunk_size: chunk_size as usize,
            next: 0,
            finished: false,
        })
    }

    /// Bytes of one full ciphertext chunk.
    pub fn sealed_chunk_len(&self) -> usize {
        self.chunk_size + TAG_LEN
    }

    /// Authenticates and decrypts `chunk` in place, removing its tag.
    pub fn open_chunk(&mut self, chunk: &mut Vec<u8>, last: bool) -> Result<(), VaultError> {
        let index = self.next;
        if self.finished || chunk.len() < TAG_LEN || chunk.len() > self.sealed_chunk_len() {
            return Err(VaultError::ChunkRejected { chunk: index });
        }
        let plain_len = self
            .key
            .open_in_place(nonce(index, last), Aad::from(&self.aad), chunk)
            .map_err(|_| VaultError::ChunkRejected { chunk: index })?
            .len();
        if !last && plain_len != self.chunk_size {
            return Err(VaultError::ChunkRejected { chunk: index });
        }
        chunk.truncate(plain_len);
        self.next += 1;
        self.finished = last;
        Ok(())
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Reads up to `buf.len()` bytes, stopping early only at end of input.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Splits a reader into `size`-byte chunks, reading one chunk ahead so that each chunk
/// comes with whether it is the last. Empty input yields one empty last chunk.
pub struct Chunks<R> {
    reader: R,
    size: usize,
    ahead: Option<Vec<u8>>,
    done: bool,
    /// Buffers handed back by whoever consumed earlier chunks: a large buffer reused costs
    /// neither an allocation nor the kernel's zeroing of fresh pages.
    spare: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
}

impl<R: Read> Chunks<R> {
    pub fn new(reader: R, size: usize) -> Self {
        Self {
            reader,
            size,
            ahead: None,
            done: false,
            spare: None,
        }
    }

    /// Takes buffers for the chunks to come from `spare` when it has any.
    pub fn reusing(mut self, spare: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        self.spare = Some(spare);
        self
    }

    fn read_one(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = self
            .spare
            .as_ref()
            .and_then(|s| s.try_recv().ok())
            .unwrap_or_default();
        // Every byte up to `n` is overwritten by the read, the rest cut off after it.
        buf.resize(self.size, 0);
        let n = fill(&mut self.reader, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The next chunk and whether it is the last; `None` after the last.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<(Vec<u8>, bool)>> {
        if self.done {
            return Ok(None);
        }
        let current = match self.ahead.take() {
            Some(c) => c,
            None => self.read_one()?,
        };
        let last = current.len() < self.size || {
            let next = self.read_one()?;
            let empty = next.is_empty();
            self.ahead = Some(next);
            empty
        };
        self.done = last;
        Ok(Some((current, last)))
    }
}

/// Encrypts all of `plaintext` into `sealed`; returns the plaintext length.
pub fn seal_stream(
    key: &DataKey,
    context: &[u8],
    chunk_size: u32,
    plaintext: &mut impl Read,
    sealed: &mut impl Write,
) -> Result<u64, VaultError> {
    let (mut sealer, header) = Sealer::new(key, context, chunk_size);
    sealed.write_all(&header)?;
    let mut chunks = Chunks::new(plaintext, sealer.chunk_size());
    let mut total = 0u64;
    while let Some((mut chunk, last)) = chunks.next_chunk()? {
        total += chunk.len() as u64;
        sealer.seal_chunk(&mut chunk, last);
        sealed.write_all(&chunk)?;
    }
    Ok(total)
}

/// Decrypts all of `sealed` into `plaintext`, authenticating every chunk before it is
/// written; returns the plaintext length. Fails on any corruption, truncation or
/// trailing data.
pub fn open_stream(
    key: &DataKey,
    context: &[u8],
    sealed: &mut impl Read,
    plaintext: &mut impl Write,
) -> Result<u64, VaultError> {
    let mut header = [0u8; HEADER_LEN];
    let got = fill(sealed, &mut header)?;
    if got < HEADER_LEN {
        return Err(VaultError::TruncatedHeader {
            got,
            expected: HEADER_LEN,
        });
    }
    let mut opener = Opener::new(key, context, &header)?;
    let mut chunks = Chunks::new(sealed, opener.sealed_chunk_len());
    let mut total = 0u64;
    while let Some((mut chunk, last)) = chunks.next_chunk()? {
        opener.open_chunk(&mut chunk, last)?;
        total += chunk.len() as u64;
        plaintext.write_all(&chunk)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONTEXT: &[u8] = b"fraud-scorer@1.0.0/model.safetensors";

    fn seal(key: &DataKey, plaintext: &[u8], chunk: u32) -> Vec<u8> {
        let mut out = Vec::new();
        seal_stream(key, CONTEXT, chunk, &mut &plaintext[..], &mut out).unwrap();
        out
    }

    fn open(key: &DataKey, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut out = Vec::new();
        open_stream(key, CONTEXT, &mut &sealed[..], &mut out).map(|_| out)
    }

    #[test]
    fn round_trips_at_every_length_around_chunk_boundaries() {
        let key = DataKey::generate();
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 64, 100] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = seal(&key, &plaintext, 16);
            let chunks = len.div_ceil(16).max(1);
            assert_eq!(
                sealed.len(),
                HEADER_LEN + len + chunks * TAG_LEN,
                "len {len}"
            );
            assert_eq!(open(&key, &sealed).unwrap(), plaintext, "len {len}");
        }
    }

    #[test]
    fn chunks_read_into_reused_buffers_carry_nothing_of_their_past() {
        let input: Vec<u8> = (0..100u8).collect();
        let (home, spare) = std::sync::mpsc::sync_channel(4);
        let mut chunks = Chunks::new(&input[..], 16).reusing(spare);
        let mut read = Vec::new();
        while let Some((chunk, last)) = chunks.next_chunk().unwrap() {
            assert_eq!(chunk.len(), if last { 4 } else { 16 });
            read.extend_from_slice(&chunk);
            // Buffers come back longer, shorter and full of stale bytes.
            let _ = home.try_send(vec![0xAA; 40]);
            let _ = home.try_send(chunk);
        }
        assert_eq!(read, input);
    }

    #[test]
    fn the_ciphertext_does_not_contain_the_plaintext() {
        let key = DataKey::generate();
        let plaintext = b"weights weights weights weights weights".repeat(100);
        let sealed = seal(&key, &plaintext, 64);
        assert!(
            !sealed
                .windows(16)
                .any(|w| plaintext.windows(16).any(|p| p == w))
        );
    }

    #[test]
    fn another_key_or_another_context_cannot_open_it() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"hello", 16);
        assert!(matches!(
            open(&DataKey::generate(), &sealed),
            Err(VaultError::ChunkRejected { chunk: 0 })
        ));
        let mut out = Vec::new();
        let err =
            open_stream(&key, b"other-model@1.0.0/x", &mut &sealed[..], &mut out).unwrap_err();
        assert!(matches!(err, VaultError::ChunkRejected { chunk: 0 }));
    }

    #[test]
    fn a_blob_cut_at_a_chunk_boundary_is_refused() {
        let key = DataKey::generate();
        let plaintext = vec![7u8; 64];
        let sealed = seal(&key, &plaintext, 16);
        let cut = HEADER_LEN + 3 * (16 + TAG_LEN);
        assert!(matches!(
            open(&key, &sealed[..cut]),
            Err(VaultError::ChunkRejected { chunk: 2 })
        ));
        assert!(matches!(
            open(&key, &sealed[..5]),
            Err(VaultError::TruncatedHeader { .. })
        ));
    }

    #[test]
    fn data_after_the_final_chunk_is_refused() {
        let key = DataKey::generate();
        let mut sealed = seal(&key, &[1u8; 40], 16);
        sealed.extend_from_slice(&[0u8; 32]);
        assert!(open(&key, &sealed).is_err());
    }

    #[derive(Debug, Clone)]
    enum Damage {
        Flip { at: usize, bit: u8 },
        DropChunk(usize),
        SwapChunks(usize, usize),
        Truncate(usize),
        DuplicateChunk(usize),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
            any::<usize>().prop_map(Damage::DropChunk),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::SwapChunks(a, b)),
            any::<usize>().prop_map(Damage::Truncate),
            any::<usize>().prop_map(Damage::DuplicateChunk),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// A reader gets the exact plaintext or an error, never altered bytes.
        #[test]
        fn any_damage_is_detected(plaintext in proptest::collection::vec(any::<u8>(), 0..200), d in damage()) {
            let key = DataKey::generate();
            let chunk = 16usize;
            let sealed = seal(&key, &plaintext, chunk as u32);
            let body = &sealed[HEADER_LEN..];
            let chunks: Vec<Vec<u8>> = body.chunks(chunk + TAG_LEN).map(<[u8]>::to_vec).collect();
            let n = chunks.len();
            let rebuild = |cs: Vec<Vec<u8>>| { let mut v = sealed[..HEADER_LEN].to_vec(); for c in cs { v.extend(c); } v };
            let damaged = match d {
                Damage::Flip { at, bit } => { let mut s = sealed.clone(); let i = at % s.len(); s[i] ^= 1 << bit; s }
                Damage::DropChunk(i) => { prop_assume!(n > 1); let mut cs = chunks.clone(); cs.remove(i % n); rebuild(cs) }
                Damage::SwapChunks(a, b) => { let (a, b) = (a % n, b % n); prop_assume!(chunks[a] != chunks[b]); let mut cs = chunks.clone(); cs.swap(a, b); rebuild(cs) }
                Damage::Truncate(at) => { let cut = at % sealed.len(); sealed[..cut].to_vec() }
                Damage::DuplicateChunk(i) => { let mut cs = chunks.clone(); let c = cs[i % n].clone(); cs.insert(i % n, c); rebuild(cs) }
            };
            prop_assert!(open(&key, &damaged).is_err());
            prop_assert_eq!(open(&key, &sealed).unwrap(), plaintext);
        }
    }
}
