//! Writing and reading a blob's file at the speed of the disk: `O_DIRECT` transfers from a
//! thread of their own.
//!
//! Through the page cache, a blob costs a copy of every byte into freshly allocated pages
//! (on a virtual machine the costliest step of an upload, more than hashing it), and its
//! final `fsync` then waits for all of it to reach the disk at once. With `O_DIRECT` the
//! disk reads the sealed bytes straight from our buffers while the pipeline prepares the
//! next ones, so the final sync has only the file's size and extents left to make durable.
//!
//! Reading is the same in reverse: the page cache's copy of a blob just read from the
//! disk costs more than decrypting it, and a thread reading ahead keeps the disk busy
//! while the blob's chunks are decrypted.
//!
//! `O_DIRECT` wants buffers, lengths and offsets aligned to the device's block; whole
//! 1 MiB blocks aligned to 4 KiB satisfy every common device. The last block is padded to
//! the alignment and the file cut back to its true length before the sync. A filesystem
//! that refuses `O_DIRECT` (at open, or at the first write) gets the same bytes through
//! the page cache instead.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// What `O_DIRECT` asks of buffers, offsets and lengths: 4 KiB covers disks with 512-byte
/// and 4 KiB sectors.
const ALIGN: usize = 4096;
/// Bytes gathered before a write: large enough that the disk streams, small enough that
/// three of them per upload cost little.
const BLOCK: usize = 1 << 20;
/// Blocks per writer: one being filled while up to two are on their way to the disk.
const BLOCKS: usize = 3;

/// A 1 MiB buffer starting on a 4 KiB boundary, found inside a slightly larger vector
/// (no custom allocation, hence no `unsafe`).
struct Block {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Option<Self> {
        let raw = vec![0u8; BLOCK + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        (start < ALIGN).then_some(Self { raw, start, len: 0 })
    }

    fn spare(&mut self) -> &mut [u8] {
        &mut self.raw[self.start + self.len..self.start + BLOCK]
    }

    fn filled(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    fn is_full(&self) -> bool {
        self.len == BLOCK
    }

    /// Pads the block with zeros up to the alignment, for the file's last write.
    fn pad(&mut self) {
        let padded = self.len.div_ceil(ALIGN) * ALIGN;
        self.raw[self.start + self.len..self.start + padded].fill(0);
        self.len = padded;
    }
}

/// A file being written, through `O_DIRECT` when the filesystem allows it.
pub(super) enum BlobFile {
    Direct(DirectFile),
    Buffered(std::io::BufWriter<File>),
}

impl BlobFile {
    /// Creates `path` (it must not exist) with mode 0600.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        match options.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => match Block::new() {
                // No thread to be had: the created file goes, as a failed upload's would.
                Some(first) => DirectFile::start(file, path.to_owned(), first)
                    .map(Self::Direct)
                    .inspect_err(|_| {
                        let _ = std::fs::remove_file(path);
                    }),
                None => Self::buffered(path, &options),
            },
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Self::buffered(path, &options),
            Err(e) => Err(e),
        }
    }

    /// The page-cache path. A refused `O_DIRECT` open may have created the file already.
    fn buffered(path: &Path, options: &OpenOptions) -> std::io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = options.open(path)?;
        Ok(Self::Buffered(std::io::BufWriter::with_capacity(
            BLOCK, file,
        )))
    }

    /// Writes what is left and returns the file at its true length, not yet synced.
    pub fn finish(self) -> std::io::Result<File> {
        match self {
            Self::Direct(d) => d.finish(),
            Self::Buffered(b) => b.into_inner().map_err(|e| e.into_error()),
        }
    }
}

impl Write for BlobFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Direct(d) => d.write(buf),
            Self::Buffered(b) => b.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Direct(_) => Ok(()), // whole blocks only; the rest goes at `finish`
            Self::Buffered(b) => b.flush(),
        }
    }
}

/// The filling side of a direct write: full blocks go to the disk thread, which hands
/// them back once written.
pub(super) struct DirectFile {
    current: Option<Block>,
    /// Bytes accepted so far: the file's true length.
    length: u64,
    to_disk: Option<SyncSender<Block>>,
    written: Receiver<Block>,
    disk: Option<JoinHandle<std::io::Result<File>>>,
}

impl DirectFile {
    fn start(file: File, path: PathBuf, first: Block) -> std::io::Result<Self> {
        let (to_disk, queued) = sync_channel::<Block>(BLOCKS);
        let (give_back, written) = sync_channel::<Block>(BLOCKS);
        for _ in 1..BLOCKS {
            if let Some(spare) = Block::new() {
                let _ = give_back.send(spare);
            }
        }
        let disk = std::thread::Builder::new()
            .name("blob-writer".into())
            .spawn(move || write_blocks(file, &path, &queued, &give_back))?;
        Ok(Self {
            current: Some(first),
            length: 0,
            to_disk: Some(to_disk),
            written,
            disk: Some(disk),
        })
    }

    /// Sends the current block to the disk and takes an empty one back.
    fn hand_over(&mut self, block: Block) -> std::io::Result<()> {
        self.queue(block)?;
        let mut block = self.written.recv().map_err(|_| self.stopped())?;
        block.len = 0;
        self.current = Some(block);
        Ok(())
    }

    fn queue(&mut self, block: Block) -> std::io::Result<()> {
        let queued = self
            .to_disk
            .as_ref()
            .is_some_and(|tx| tx.send(block).is_ok());
        if queued { Ok(()) } else { Err(self.stopped()) }
    }

    /// Closes the queue and waits for the disk thread: the file once every queued block
    /// is written, or what stopped it.
    fn stop(&mut self) -> std::io::Result<File> {
        self.to_disk = None;
        match self.disk.take().map(JoinHandle::join) {
            Some(Ok(written)) => written,
            _ => Err(std::io::Error::other("the blob's disk writer stopped")),
        }
    }

    /// Why the disk thread stopped early.
    fn stopped(&mut self) -> std::io::Error {
        self.stop()
            .err()
            .unwrap_or_else(|| std::io::Error::other("the blob's disk writer stopped"))
    }

    fn finish(mut self) -> std::io::Result<File> {
        let mut last = self
            .current
            .take()
            .ok_or_else(|| std::io::Error::other("blob already finished"))?;
        if last.len > 0 {
            last.pad();
            self.queue(last)?;
        }
        let file = self.stop()?;
        file.set_len(self.length)?;
        Ok(file)
    }
}

impl Write for DirectFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(block) = self.current.as_mut() else {
            return Err(std::io::Error::other("blob already finished"));
        };
        let spare = block.spare();
        let n = spare.len().min(buf.len());
        spare[..n].copy_from_slice(&buf[..n]);
        block.len += n;
        self.length += n as u64;
        if block.is_full()
            && let Some(full) = self.current.take()
        {
            self.hand_over(full)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The disk thread: writes each block in turn and hands it back. A filesystem that takes
/// `O_DIRECT` at open but refuses its writes gets the file reopened through the page cache.
fn write_blocks(
    mut file: File,
    path: &Path,
    queued: &Receiver<Block>,
    give_back: &SyncSender<Block>,
) -> std::io::Result<File> {
    let mut offset = 0u64;
    while let Ok(block) = queued.recv() {
        match file.write_all(block.filled()) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && offset == 0 => {
                file = OpenOptions::new().write(true).open(path)?;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(block.filled())?;
            }
            written => written?,
        }
        offset += block.len as u64;
        let _ = give_back.send(block);
    }
    Ok(file)
}

/// Opens `path` for reading, read ahead by a thread through `O_DIRECT` where the
/// filesystem allows it.
pub(super) fn open_for_reading(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let direct = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path);
    match direct {
        Ok(file) => Ok(Box::new(DirectReader::start(file, path.to_owned())?)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Box::new(File::open(path)?)),
        Err(e) => Err(e),
    }
}

/// The reading side of a direct read: blocks arrive filled from the reading thread and go
/// back to it once consumed. A block shorter than [`BLOCK`] is the file's last.
struct DirectReader {
    current: Option<Block>,
    at: usize,
    filled: Receiver<std::io::Result<Block>>,
    give_back: SyncSender<Block>,
    ended: bool,
}

impl DirectReader {
    fn start(file: File, path: PathBuf) -> std::io::Result<Self> {
        let (give_back, empty) = sync_channel::<Block>(BLOCKS);
        let (send_filled, filled) = sync_channel(BLOCKS);
        for _ in 0..BLOCKS {
            let block = Block::new().ok_or_else(|| std::io::Error::other("no aligned buffer"))?;
            let _ = give_back.send(block);
        }
        std::thread::Builder::new()
            .name("blob-reader".into())
            .spawn(move || read_blocks(file, &path, &empty, &send_filled))?;
        Ok(Self {
            current: None,
            at: 0,
            filled,
            give_back,
            ended: false,
        })
    }
}

impl Read for DirectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(block) = &self.current {
                let left = &block.filled()[self.at..];
                if !left.is_empty() {
                    let n = left.len().min(buf.len());
                    buf[..n].copy_from_slice(&left[..n]);
                    self.at += n;
                    return Ok(n);
                }
            }
            if self.ended {
                return Ok(0);
            }
            if let Some(used) = self.current.take() {
                let _ = self.give_back.send(used);
            }
            let block = self
                .filled
                .recv()
                .map_err(|_| std::io::Error::other("the blob's disk reader stopped"))??;
            self.ended = block.len < BLOCK;
            self.at = 0;
            self.current = Some(block);
        }
    }
}

/// The reading thread: fills each empty block from the file in turn. A filesystem that
/// takes `O_DIRECT` at open but refuses its reads gets the file reopened through the page
/// cache.
fn read_blocks(
    mut file: File,
    path: &Path,
    empty: &Receiver<Block>,
    filled: &SyncSender<std::io::Result<Block>>,
) {
    let mut offset = 0u64;
    while let Ok(mut block) = empty.recv() {
        let mut read = fill_block(&mut file, &mut block);
        if offset == 0 && matches!(&read, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
            read = File::open(path).and_then(|f| {
                file = f;
                fill_block(&mut file, &mut block)
            });
        }
        let last = !matches!(read, Ok(BLOCK));
        offset += block.len as u64;
        if filled.send(read.map(|_| block)).is_err() || last {
            return;
        }
    }
}

/// Reads until the block is full or the file ends; returns the bytes read.
fn fill_block(file: &mut File, block: &mut Block) -> std::io::Result<usize> {
    block.len = 0;
    while !block.is_full() {
        match file.read(block.spare()) {
            Ok(0) => break,
            Ok(n) => block.len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(block.len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes, so a misplaced block shows as a mismatch.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 4093) as u8).collect()
    }

    fn write_in_pieces(file: &mut BlobFile, data: &[u8]) {
        let pieces = [1, 12, 4095, 65_552, 1 << 20, 3 * (1 << 20) + 7];
        let mut at = 0;
        for piece in pieces.iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + piece).min(data.len());
            file.write_all(&data[at..end]).unwrap();
            at = end;
        }
    }

    /// Whether the folder's filesystem takes `O_DIRECT`, asked independently of the code
    /// under test.
    fn takes_direct(dir: &Path) -> bool {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.join("probe"))
            .is_ok()
    }

    #[test]
    fn every_length_reads_back_exactly_on_either_path() {
        let dir = tempfile::tempdir().unwrap();
        let direct = takes_direct(dir.path());
        for (i, len) in [
            0,
            1,
            4095,
            4096,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            5 * BLOCK + 12_345,
        ]
        .into_iter()
        .enumerate()
        {
            let data = pattern(len);
            for buffered in [false, true] {
                let path = dir.path().join(format!("{i}-{buffered}"));
                let mut file = if buffered {
                    let mut options = OpenOptions::new();
                    options.write(true).create_new(true).mode(0o600);
                    BlobFile::buffered(&path, &options).unwrap()
                } else {
                    BlobFile::create(&path).unwrap()
                };
                if !buffered {
                    assert_eq!(matches!(file, BlobFile::Direct(_)), direct);
                }
                write_in_pieces(&mut file, &data);
                let file = file.finish().unwrap();
                file.sync_all().unwrap();
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    data,
                    "{len} bytes, buffered {buffered}"
                );
                let mut read = Vec::new();
                open_for_reading(&path)
                    .unwrap()
                    .read_to_end(&mut read)
                    .unwrap();
                assert_eq!(read, data, "{len} bytes read back");
            }
        }
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken");
        std::fs::write(&path, b"earlier").unwrap();
        let err = BlobFile::create(&path).err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier");
    }
}
