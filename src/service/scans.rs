//! Traffic scans (AISVS 3.1.5): reading gateway access logs for evidence of who uses
//! which model version, and recording it as observed usage.
//!
//! Exactly once: a scan reads a file from where it last stopped up to the last complete
//! line, and commits what it counted together with the new position, in one transaction.
//! A crash before the commit leaves the old position, so the lines are read again and
//! counted once; nothing after the commit is read twice. Files are known by device and
//! inode, so a rotated (renamed) file is finished where it was left, and a new file at
//! the old name starts from its beginning; a file shorter than its position, or whose
//! first line changed, was truncated or replaced and is read from the start.
//!
//! Rotated files compressed with gzip are read as their text. A compressed copy is a new
//! file (a new inode), so it is also known by its first line: it resumes where the scan
//! stopped in the plain file it was made from, and when both are present in one scan the
//! lines one of them gave are not read again from the other.

use super::ServiceError;
use super::inventory::Usage;
use crate::config::ScanSourceSettings;
use crate::domain::{ConsumerName, EdgeOrigin, ModelName, Version};
use crate::ingest::log_file::{self, Encoding, LogReader};
use crate::ingest::scan::{LineFormat, Seen, Tally};
use crate::store::registry as registry_repo;
use crate::store::scans::{self as repo, Cursor};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The first line is fingerprinted up to this many bytes.
const FINGERPRINT_BYTES: usize = 4096;

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    pub source: String,
    pub files: usize,
    pub bytes: u64,
    pub lines: u64,
    /// Lines that named a model version.
    pub matched: u64,
    /// Lines that were not model requests, or not JSON objects with the two fields.
    pub skipped: u64,
    /// Matched lines whose model or version is not registered, or whose caller is not a
    /// valid consumer name; counted, not recorded.
    pub unknown: u64,
    /// Distinct (consumer, model, version) uses recorded.
    pub uses_recorded: u64,
    /// Files read from the start again because they were truncated or replaced.
    pub restarted: usize,
    /// Matched lines without a readable `time_field`, recorded at the scan's time.
    pub untimed: u64,
    /// Files not read, or not to their end, and why.
    pub rejected: Vec<RejectedFile>,
}

/// A file a scan could not read: neither text nor gzip, unreadable, or damaged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedFile {
    pub path: String,
    pub reason: String,
}

/// How far a scan has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl super::Inventory<'_> {
    pub fn scan_sources(&self) -> &[ScanSourceSettings] {
        &self.inner.scan.sources
    }

    fn scan_source(&self, name: &str) -> Result<&ScanSourceSettings, ServiceError> {
        self.scan_sources()
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .scan_sources()
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                ServiceError::NotFound(format!(
                    "no scan source named {name}; configured: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    /// Runs the scheduled scan of `source` for `tick` unless another instance has
    /// claimed it; `None` when it was claimed elsewhere.
    pub async fn run_scheduled_scan(
        &self,
        source: &str,
        tick: chrono::DateTime<chrono::Utc>,
        instance: &str,
    ) -> Result<Option<ScanReport>, ServiceError> {
        self.scan_source(source)?;
        if !self
            .claim_tick(&format!("scan:{source}"), tick, instance)
            .await?
        {
            return Ok(None);
        }
        self.run_scan(source, &|_| {}).await.map(Some)
    }

    /// Scans one source's files from where it stopped.
    pub async fn run_scan(
        &self,
        source: &str,
        progress: &(dyn Fn(ScanProgress) + Send + Sync),
    ) -> Result<ScanReport, ServiceError> {
        let settings = self.scan_source(source)?.clone();
        let format = line_format(&settings)?;
        let mut report = ScanReport {
            source: source.to_owned(),
            ..ScanReport::default()
        };
        // Plan first, so the progress bar knows the total.
        let plans = self.plan_scan(&settings, &mut report).await?;
        let total: u64 = plans
            .iter()
            .map(|p| p.len.saturating_sub(p.cursor.offset))
            .sum();
        let mut read = Progress {
            done: 0,
            total,
            report: progress,
        };
        read.tell();
        // Where each first line's text was read to, and whether from a compressed copy.
        let mut ends: HashMap<String, (u64, Encoding)> = HashMap::new();
        for mut p in plans {
            if let Some(&(end, seen_in)) = ends.get(&p.cursor.fingerprint)
                && (seen_in == Encoding::Gzip || p.encoding == Encoding::Gzip)
                && end > p.cursor.offset
            {
                // The same lines, already read from the other copy this scan.
                p.cursor.offset = end;
                self.commit_scan(source, &p.cursor, &Tally::default())
                    .await?;
            }
            if let Err(reason) = self
                .read_file(source, &mut p, &format, &mut report, &mut read)
                .await?
            {
                report.reject(&p.path, reason);
            }
            let end = ends
                .entry(p.cursor.fingerprint.clone())
                .or_insert((0, p.encoding));
            if p.cursor.offset >= end.0 {
                *end = (p.cursor.offset, p.encoding);
            }
        }
        tracing::info!(
            source,
            files = report.files,
            lines = report.lines,
            matched = report.matched,
            unknown = report.unknown,
            rejected = report.rejected.len(),
            "scan finished"
        );
        crate::prometheus::record_scan(source, report.lines, report.unknown);
        // Traffic during a notice period is evidence: it finds new dependents and keeps
        // known ones from counting as quiet.
        if report.matched > 0
            && let Err(e) = self
                .retirements()
                .check_retirements(crate::domain::FoundBy::Scan)
                .await
        {
            tracing::warn!(error = %e, "checking pending retirements after a scan failed");
        }
        Ok(report)
    }

    /// Where to start in each file of `settings`; files that cannot be read are reported.
    async fn plan_scan(
        &self,
        settings: &ScanSourceSettings,
        report: &mut ScanReport,
    ) -> Result<Vec<Plan>, ServiceError> {
        let cursors: HashMap<String, Cursor> = repo::cursors(self.store().reader(), &settings.name)
            .await?
            .into_iter()
            .map(|c| (c.file_id.clone(), c))
            .collect();
        let mut plans = Vec::new();
        for path in expand(&settings.paths) {
            match plan(&path, &cursors) {
                Ok(Some(p)) => plans.push(p),
                Ok(None) => {}
                Err(reason) => report.reject(&path, reason),
            }
        }
        report.files = plans.len();
        report.restarted = plans.iter().filter(|p| p.restarted).count();
        Ok(plans)
    }

    /// Reads one file from its cursor to its last complete line, committing chunk by
    /// chunk; `Ok(Err(reason))` when the file could not be read (to its end).
    async fn read_file(
        &self,
        source: &str,
        p: &mut Plan,
        format: &LineFormat,
        report: &mut ScanReport,
        read: &mut Progress<'_>,
    ) -> Result<Result<(), String>, ServiceError> {
        let (path, encoding, offset) = (p.path.clone(), p.encoding, p.cursor.offset);
        let opened = tokio::task::spawn_blocking(move || LogReader::open(&path, encoding, offset))
            .await
            .map_err(ServiceError::internal)?;
        let mut reader = match opened {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.to_string())),
        };
        loop {
            let format = format.clone();
            let (back, chunk) = tokio::task::spawn_blocking(move || {
                let chunk = reader.read_chunk(&format);
                (reader, chunk)
            })
            .await
            .map_err(ServiceError::internal)?;
            reader = back;
            let (tally, consumed) = match chunk {
                Ok(c) => c,
                Err(e) => return Ok(Err(describe_read_error(p.encoding, &e))),
            };
            if consumed == 0 {
                return Ok(Ok(()));
            }
            p.cursor.offset += consumed;
            let committed = self.commit_scan(source, &p.cursor, &tally).await?;
            report.bytes += consumed;
            report.lines += tally.lines;
            report.matched += tally.matched();
            report.skipped += tally.skipped_total();
            report.untimed += tally.untimed;
            report.unknown += committed.lines;
            report.uses_recorded += committed.recorded;
            read.done += consumed;
            read.tell();
        }
    }

    /// Records a chunk's uses and the file's new position in one transaction.
    async fn commit_scan(
        &self,
        source: &str,
        cursor: &Cursor,
        tally: &Tally,
    ) -> Result<Committed, ServiceError> {
        let origin_name = source;
        let committed = in_write_tx!(self, |tx| {
            let now = self.now();
            let mut out = Committed::default();
            let mut models: HashMap<&str, Option<(i64, ModelName, crate::domain::TeamName)>> =
                HashMap::new();
            for seen in tally.uses() {
                let Seen {
                    caller,
                    model,
                    version,
                    count,
                    ..
                } = seen;
                let resolved = match models.get(model) {
                    Some(r) => r.clone(),
                    None => {
                        let found = match ModelName::parse(model) {
                            Ok(name) => registry_repo::find_model(tx.conn(), &name)
                                .await?
                                .map(|(id, m)| (id.0, name, m.owner_team)),
                            Err(_) => None,
                        };
                        models.insert(model, found.clone());
                        found
                    }
                };
                let (Some((model_id, model_name, team)), Ok(consumer), Ok(version)) = (
                    resolved,
                    ConsumerName::parse(caller),
                    Version::parse(version),
                ) else {
                    out.lines += count;
                    continue;
                };
                if registry_repo::find_version(
                    tx.conn(),
                    registry_repo::ModelId(model_id),
                    &model_name,
                    version,
                )
                .await?
                .is_none()
                {
                    out.lines += count;
                    continue;
                }
                let usage = Usage {
                    consumer: &consumer,
                    model: &model_name,
                    model_id,
                    model_team: &team,
                    version,
                    origin: EdgeOrigin::Scan,
                    origin_name,
                    count,
                    span: traffic_span(&seen, now),
                };
                self.record_usage(tx, now, usage).await?;
                out.recorded += 1;
            }
            repo::save_cursor(tx.conn(), source, cursor, now).await?;
            Ok(out)
        })?;
        if committed.recorded > 0 {
            self.after_inventory_commit().await;
        }
        Ok(committed)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Committed {
    /// Matched lines not recorded (unknown model, version or caller).
    lines: u64,
    recorded: u64,
}

fn line_format(settings: &ScanSourceSettings) -> Result<LineFormat, ServiceError> {
    let format = LineFormat::new(
        &settings.caller_field,
        &settings.path_field,
        &settings.path_pattern,
    )
    .map_err(ServiceError::internal)?;
    Ok(match &settings.time_field {
        Some(field) => format.with_time_field(field),
        None => format,
    })
}

impl ScanReport {
    fn reject(&mut self, path: &Path, reason: String) {
        tracing::warn!(source = %self.source, file = %path.display(), %reason, "a log file was not read");
        self.rejected.push(RejectedFile {
            path: path.display().to_string(),
            reason,
        });
    }
}

/// When a use's traffic happened: the times its lines carried, never later than now, and
/// now for lines that carried none (they may be current traffic, which holds a
/// retirement back rather than letting it pass).
fn traffic_span(
    seen: &Seen<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let (first, last) = seen.span?;
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or(now)
            .min(now)
    };
    Some((at(first), if seen.untimed { now } else { at(last) }))
}

fn describe_read_error(encoding: Encoding, e: &std::io::Error) -> String {
    match (encoding, e.kind()) {
        (Encoding::Gzip, std::io::ErrorKind::UnexpectedEof) => {
            "the gzip stream ends early (still being compressed, or cut short); read up to there"
                .into()
        }
        (Encoding::Gzip, _) => format!("the gzip stream is damaged: {e}; read up to there"),
        _ => e.to_string(),
    }
}

/// Bytes read against the planned total, told to the caller's progress bar.
struct Progress<'a> {
    done: u64,
    total: u64,
    report: &'a (dyn Fn(ScanProgress) + Send + Sync),
}

impl Progress<'_> {
    fn tell(&self) {
        (self.report)(ScanProgress {
            bytes_done: self.done.min(self.total),
            bytes_total: self.total,
        });
    }
}

struct Plan {
    path: PathBuf,
    encoding: Encoding,
    /// The file's length, or for a compressed file an estimate of its text's.
    len: u64,
    cursor: Cursor,
    restarted: bool,
}

/// Every file the patterns name, each once, in a stable order.
fn expand(patterns: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in patterns {
        match glob::glob(p) {
            Ok(paths) => out.extend(paths.filter_map(Result::ok).filter(|p| p.is_file())),
            Err(e) => tracing::warn!(pattern = %p, error = %e, "invalid scan path pattern"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Where to start reading `path`; `None` while it holds no complete line, `Err` with the
/// reason for a file that cannot be read as a log.
fn plan(path: &Path, cursors: &HashMap<String, Cursor>) -> Result<Option<Plan>, String> {
    let head = log_file::head(path, FINGERPRINT_BYTES)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let file_id = format!("{}:{}", head.meta.dev(), head.meta.ino());
    let text = &head.text;
    let first_line = match text.iter().position(|b| *b == b'\n') {
        Some(end) => &text[..end],
        // A first line longer than the fingerprint window is fingerprinted by its start.
        None if text.len() == FINGERPRINT_BYTES => &text[..],
        // A compressed file is finished: a single unterminated line is still a line.
        None if head.encoding == Encoding::Gzip && !text.is_empty() => &text[..],
        None => return Ok(None),
    };
    Ok(Some(start(
        path,
        (head.encoding, head.text_len),
        file_id,
        fingerprint(first_line),
        cursors,
    )))
}

fn start(
    path: &Path,
    (encoding, len): (Encoding, u64),
    file_id: String,
    fingerprint: String,
    cursors: &HashMap<String, Cursor>,
) -> Plan {
    let known = cursors.get(&file_id);
    let (mut offset, restarted) = match known {
        // A compressed file's length is an estimate, and it does not shrink in place.
        Some(c)
            if c.fingerprint == fingerprint && (c.offset <= len || encoding == Encoding::Gzip) =>
        {
            (c.offset, false)
        }
        Some(_) => (0, true),
        None => (0, false),
    };
    if encoding == Encoding::Gzip {
        // A compressed copy of a file already read resumes where that file stopped.
        let copied = cursors
            .values()
            .filter(|c| c.fingerprint == fingerprint)
            .map(|c| c.offset)
            .max();
        offset = offset.max(copied.unwrap_or(0));
    }
    Plan {
        path: path.to_owned(),
        encoding,
        len,
        cursor: Cursor {
            file_id,
            path: path.display().to_string(),
            fingerprint,
            offset,
        },
        restarted,
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
