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

use super::inventory::Usage;
use super::{ServiceError, Services};
use crate::config::ScanSourceSettings;
use crate::domain::{ConsumerName, EdgeOrigin, ModelName, Version};
use crate::ingest::scan::{LineFormat, Tally, read_chunk, read_up_to};
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
}

/// How far a scan has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl Services {
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
        let format = LineFormat::new(
            &settings.caller_field,
            &settings.path_field,
            &settings.path_pattern,
        )
        .map_err(ServiceError::internal)?;
        let files = expand(&settings.paths);
        let cursors: HashMap<String, Cursor> = repo::cursors(self.store().reader(), source)
            .await?
            .into_iter()
            .map(|c| (c.file_id.clone(), c))
            .collect();

        // Plan first, so the progress bar knows the total.
        let mut plans = Vec::new();
        for path in files {
            match plan(&path, &cursors) {
                Ok(Some(p)) => plans.push(p),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read a log file; skipping it")
                }
            }
        }
        let mut report = ScanReport {
            source: source.to_owned(),
            files: plans.len(),
            restarted: plans.iter().filter(|p| p.restarted).count(),
            ..ScanReport::default()
        };
        let total: u64 = plans
            .iter()
            .map(|p| p.len.saturating_sub(p.cursor.offset))
            .sum();
        let mut done = 0u64;
        progress(ScanProgress {
            bytes_done: 0,
            bytes_total: total,
        });
        for mut p in plans {
            loop {
                let (tally, consumed) = {
                    let path = p.path.clone();
                    let offset = p.cursor.offset;
                    let format = format.clone();
                    tokio::task::spawn_blocking(move || read_chunk(&path, offset, &format))
                        .await
                        .map_err(ServiceError::internal)?
                        .map_err(ServiceError::internal)?
                };
                if consumed == 0 {
                    break;
                }
                p.cursor.offset += consumed;
                let unknown = self.commit_scan(source, &p.cursor, &tally).await?;
                report.bytes += consumed;
                report.lines += tally.lines;
                report.matched += tally.matched();
                report.skipped += tally.skipped_total();
                report.unknown += unknown.lines;
                report.uses_recorded += unknown.recorded;
                done += consumed;
                progress(ScanProgress {
                    bytes_done: done.min(total),
                    bytes_total: total,
                });
            }
        }
        tracing::info!(
            source,
            files = report.files,
            lines = report.lines,
            matched = report.matched,
            unknown = report.unknown,
            "scan finished"
        );
        // Traffic during a notice period is evidence: it finds new dependents and keeps
        // known ones from counting as quiet.
        if report.matched > 0
            && let Err(e) = self.check_retirements(crate::domain::FoundBy::Scan).await
        {
            tracing::warn!(error = %e, "checking pending retirements after a scan failed");
        }
        Ok(report)
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
            for ((caller, model, version), count) in tally.uses() {
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

struct Plan {
    path: PathBuf,
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

/// Where to start reading `path`; `None` while it holds no complete line.
fn plan(path: &Path, cursors: &HashMap<String, Cursor>) -> std::io::Result<Option<Plan>> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let file_id = format!("{}:{}", meta.dev(), meta.ino());
    let mut head = vec![0u8; FINGERPRINT_BYTES];
    let n = read_up_to(&mut file, &mut head)?;
    let Some(end) = head[..n].iter().position(|b| *b == b'\n') else {
        // A first line longer than the fingerprint window is fingerprinted by its start.
        if n < FINGERPRINT_BYTES {
            return Ok(None);
        }
        return Ok(Some(start(
            path,
            meta.len(),
            file_id,
            fingerprint(&head),
            cursors,
        )));
    };
    Ok(Some(start(
        path,
        meta.len(),
        file_id,
        fingerprint(&head[..end]),
        cursors,
    )))
}

fn start(
    path: &Path,
    len: u64,
    file_id: String,
    fingerprint: String,
    cursors: &HashMap<String, Cursor>,
) -> Plan {
    let known = cursors.get(&file_id);
    let (offset, restarted) = match known {
        Some(c) if c.fingerprint == fingerprint && c.offset <= len => (c.offset, false),
        Some(_) => (0, true),
        None => (0, false),
    };
    Plan {
        path: path.to_owned(),
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
