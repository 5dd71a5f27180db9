//! A log file read the way it was written: plain text, or compressed by logrotate with
//! gzip. Anything else (another compressor, binary content) is named, never read as text.
//!
//! Offsets are in the file's text, decompressed: a rotated file compressed later keeps
//! its lines at the same offsets, so a scan resumes a compressed copy where it stopped in
//! the plain file.

use super::scan::{LineFormat, Tally};
use flate2::read::MultiGzDecoder;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read and committed at a time: bounds memory and the work a crash repeats.
pub const CHUNK: usize = 8 * 1024 * 1024;
/// A "line" longer than this is not one; see [`LogReader::read_chunk`].
const MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Text,
    Gzip,
}

/// Why a file is not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotALog {
    #[error("compressed with {0}; only plain text and gzip are read")]
    Compressed(&'static str),
    #[error("not text: its first bytes hold a NUL byte")]
    Binary,
}

/// What a file holds, judged by its first bytes (as stored, before any decompression).
pub fn encoding(head: &[u8]) -> Result<Encoding, NotALog> {
    const OTHERS: [(&[u8], &str); 6] = [
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"BZh", "bzip2"),
        (b"\x04\x22\x4d\x18", "lz4"),
        (b"PK\x03\x04", "zip"),
        (b"\x5d\x00\x00", "lzma"),
    ];
    if head.starts_with(b"\x1f\x8b") {
        return Ok(Encoding::Gzip);
    }
    if let Some((_, name)) = OTHERS.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Err(NotALog::Compressed(name));
    }
    if memchr::memchr(0, head).is_some() {
        return Err(NotALog::Binary);
    }
    Ok(Encoding::Text)
}

/// A log file as a scan first sees it, read through one open: who it is, how it is
/// written, and the start of its text.
pub struct Head {
    pub meta: std::fs::Metadata,
    pub encoding: Encoding,
    /// Up to the first `n` bytes of the text (decompressed).
    pub text: Vec<u8>,
    /// The text's length: the file's, or for gzip what its trailer records (modulo
    /// 4 GiB, and of the last member only: an estimate, for a progress bar).
    pub text_len: u64,
}

/// The [`Head`] of `path` with up to `n` bytes of text; `Ok(Err(_))` for a file that is
/// not a log.
pub fn head(path: &Path, n: usize) -> io::Result<Result<Head, NotALog>> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut file, &mut magic)?;
    let encoding = match encoding(&magic[..got]) {
        Ok(e) => e,
        Err(e) => return Ok(Err(e)),
    };
    let text_len = match encoding {
        Encoding::Text => meta.len(),
        Encoding::Gzip => gzip_trailer_len(&mut file).unwrap_or(meta.len()),
    };
    file.seek(SeekFrom::Start(0))?;
    let mut text = vec![0u8; n];
    let got = read_up_to(&mut open_text(file, encoding), &mut text)?;
    text.truncate(got);
    // Text logs hold no NUL; the heuristic grep and git use for "binary".
    if memchr::memchr(0, &text).is_some() {
        return Ok(Err(NotALog::Binary));
    }
    Ok(Ok(Head {
        meta,
        encoding,
        text,
        text_len,
    }))
}

fn gzip_trailer_len(file: &mut std::fs::File) -> io::Result<u64> {
    file.seek(SeekFrom::End(-4))?;
    let mut size = [0u8; 4];
    file.read_exact(&mut size)?;
    Ok(u64::from(u32::from_le_bytes(size)))
}

fn open_text(file: std::fs::File, encoding: Encoding) -> Box<dyn Read + Send> {
    match encoding {
        Encoding::Text => Box::new(file),
        // Multi-member: `cat a.gz b.gz` and some rotators' appends are one stream.
        Encoding::Gzip => Box::new(MultiGzDecoder::new(io::BufReader::new(file))),
    }
}

pub fn read_up_to<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One file's text from an offset on, read chunk by chunk.
pub struct LogReader {
    text: Box<dyn Read + Send>,
    /// Bytes read past the last complete line, the start of the next chunk.
    pending: Vec<u8>,
    /// A compressed file is finished: its last line counts without a newline.
    finished: bool,
}

impl LogReader {
    pub fn open(path: &Path, encoding: Encoding, offset: u64) -> io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let text = match encoding {
            Encoding::Text => {
                file.seek(SeekFrom::Start(offset))?;
                open_text(file, encoding)
            }
            Encoding::Gzip => {
                let mut text = open_text(file, encoding);
                // A stream cannot seek: decompress up to where the last scan stopped.
                io::copy(&mut (&mut text).take(offset), &mut io::sink())?;
                text
            }
        };
        Ok(Self {
            text,
            pending: Vec::new(),
            finished: encoding == Encoding::Gzip,
        })
    }

    /// Reads up to [`CHUNK`] bytes and tallies the complete lines in them; returns the
    /// tally and how many bytes those lines took (0 at the end). A line longer than a
    /// chunk is read whole, up to a limit past which it counts as one malformed line.
    pub fn read_chunk(&mut self, format: &LineFormat) -> io::Result<(Tally, u64)> {
        let mut buf = std::mem::take(&mut self.pending);
        let mut target = CHUNK;
        let at_end = loop {
            let at_end = fill(&mut self.text, &mut buf, target)?;
            if at_end || memchr::memrchr(b'\n', &buf).is_some() || target >= MAX_LINE {
                break at_end;
            }
            target *= 2;
        };
        let mut tally = Tally::default();
        let end = match memchr::memrchr(b'\n', &buf) {
            _ if at_end && self.finished => buf.len(),
            Some(i) => i + 1,
            None if buf.len() >= MAX_LINE => {
                // Not a log line anyone wrote on purpose: counted as one malformed line
                // and passed over, so the file can be read on.
                tally.add_line(format, b"");
                return Ok((tally, buf.len() as u64));
            }
            None => 0,
        };
        tally.add_lines(format, &buf[..end]);
        self.pending = buf.split_off(end);
        Ok((tally, end as u64))
    }
}

/// Reads into `buf` until it holds `target` bytes; whether the text ended first.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, target: usize) -> io::Result<bool> {
    let start = buf.len();
    if start >= target {
        return Ok(false);
    }
    buf.resize(target, 0);
    let got = read_up_to(r, &mut buf[start..]);
    let got = match got {
        Ok(n) => n,
        Err(e) => {
            buf.truncate(start);
            return Err(e);
        }
    };
    buf.truncate(start + got);
    Ok(start + got < target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::scan::tests::format;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn line(caller: &str) -> String {
        format!("{{\"client\":\"{caller}\",\"path\":\"/v1/models/m/versions/1.0.0/p\"}}\n")
    }

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn encodings_are_told_by_their_first_bytes() {
        assert_eq!(encoding(b"{\"a\":1}"), Ok(Encoding::Text));
        assert_eq!(encoding(b""), Ok(Encoding::Text));
        assert_eq!(encoding(&gzip(b"x")), Ok(Encoding::Gzip));
        assert_eq!(
            encoding(b"\x28\xb5\x2f\xfd\x00"),
            Err(NotALog::Compressed("zstd"))
        );
        assert_eq!(encoding(b"BZh91AY"), Err(NotALog::Compressed("bzip2")));
        assert_eq!(encoding(b"\x7fELF\x02\x01\x01\x00"), Err(NotALog::Binary));
    }

    #[test]
    fn a_gzip_file_is_read_from_an_offset_in_its_text_with_its_last_line_unterminated() {
        let dir = tempfile::tempdir().unwrap();
        let text = line("a") + &line("b") + &line("c");
        let unterminated = text.trim_end();
        let path = dir.path().join("access.jsonl.1.gz");
        // Two members, as `cat` of two gzip files makes.
        let mut bytes = gzip(line("a").as_bytes());
        bytes.extend(gzip(&unterminated.as_bytes()[line("a").len()..]));
        std::fs::write(&path, bytes).unwrap();

        let head = head(&path, 4096).unwrap().unwrap();
        assert_eq!(head.encoding, Encoding::Gzip);
        assert_eq!(head.text, unterminated.as_bytes());

        let offset = line("a").len() as u64;
        let mut r = LogReader::open(&path, Encoding::Gzip, offset).unwrap();
        let (tally, consumed) = r.read_chunk(&format()).unwrap();
        assert_eq!(consumed, unterminated.len() as u64 - offset);
        assert_eq!(tally.count("a", "m", "1.0.0"), 0);
        assert_eq!(tally.count("b", "m", "1.0.0"), 1);
        assert_eq!(tally.count("c", "m", "1.0.0"), 1);
        assert_eq!(r.read_chunk(&format()).unwrap().1, 0);
    }

    #[test]
    fn a_nul_anywhere_in_the_head_is_binary_not_only_in_the_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.jsonl.db");
        let mut bytes = line("a").into_bytes();
        bytes.extend_from_slice(b"\x00\x01\x02 page of a database");
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(head(&path, 4096).unwrap(), Err(NotALog::Binary)));
    }

    #[test]
    fn a_plain_file_keeps_its_unfinished_line_for_the_next_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.jsonl");
        std::fs::write(&path, line("a") + "{\"client\":\"b\",\"pa").unwrap();
        let mut r = LogReader::open(&path, Encoding::Text, 0).unwrap();
        let (tally, consumed) = r.read_chunk(&format()).unwrap();
        assert_eq!((tally.lines, consumed), (1, line("a").len() as u64));
        assert_eq!(r.read_chunk(&format()).unwrap().1, 0);
    }

    #[test]
    fn a_damaged_gzip_stream_is_an_error_not_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.jsonl.2.gz");
        let mut bytes = gzip(line("a").repeat(1000).as_bytes());
        let cut = bytes.len() / 2;
        bytes.truncate(cut);
        std::fs::write(&path, bytes).unwrap();
        let mut r = LogReader::open(&path, Encoding::Gzip, 0).unwrap();
        let mut outcome = Ok(1);
        while let Ok(1..) = outcome {
            outcome = r.read_chunk(&format()).map(|(_, n)| n);
        }
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
