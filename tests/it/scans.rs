//! Traffic scans: gateway access logs read from where they stopped, through rotation and
//! truncation, each complete line counted once, and each scheduled tick run once.

use crate::support::{Backend, TestApp};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use sunset::clock::SystemClock;
use sunset::config::ScanSourceSettings;

fn gateway(dir: &Path) -> ScanSourceSettings {
    ScanSourceSettings {
        name: "gw".into(),
        paths: vec![dir.join("access.jsonl*").display().to_string()],
        caller_field: "client".into(),
        path_field: "uri".into(),
        ..ScanSourceSettings::default()
    }
}

async fn spawn(backend: Backend) -> (TestApp, tempfile::TempDir) {
    spawn_reading(backend, |_| {}).await
}

async fn spawn_reading(
    backend: Backend,
    adjust: impl FnOnce(&mut ScanSourceSettings),
) -> (TestApp, tempfile::TempDir) {
    let logs = tempfile::tempdir().expect("tmp");
    let mut source = gateway(logs.path());
    adjust(&mut source);
    let app = TestApp::spawn_with(backend, Arc::new(SystemClock), move |s| {
        s.scan.sources = vec![source];
    })
    .await;
    crate::artifacts::model_with_version(&app).await;
    (app, logs)
}

fn line(client: &str, version: &str) -> String {
    format!(
        "{}\n",
        json!({ "time": "2026-11-22T10:00:00Z", "client": client, "method": "POST", "uri": format!("/v1/models/fraud-scorer/versions/{version}/predict"), "status": 200, "latency_ms": 12.5 })
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
}

async fn observations(app: &TestApp, consumer: &str) -> Option<i64> {
    let data = app
        .gql_ok(&app.admin, "{ dependents(model: \"fraud-scorer\", version: \"1.0.0\") { nodes { name consumer { discovered } path { evidence { origin originName observations } } } } }", json!({}))
        .await;
    data["dependents"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == consumer)
        .and_then(|n| {
            let e = &n["path"][0]["evidence"][0];
            assert_eq!(e["origin"], "SCAN");
            assert_eq!(e["originName"], "gw");
            assert_eq!(n["consumer"]["discovered"], true);
            e["observations"].as_i64()
        })
}

async fn scan(app: &TestApp) -> Value {
    serde_json::to_value(
        app.services
            .inventory()
            .run_scan("gw", &|_| {})
            .await
            .expect("scan"),
    )
    .expect("json")
}

/// The app and its log folder, configured before start.
struct Logged {
    app: TestApp,
    logs: tempfile::TempDir,
}

async fn logged(backend: Backend) -> Logged {
    let (app, logs) = spawn(backend).await;
    Logged { app, logs }
}

/// Reading each line's `time` field.
async fn timed(backend: Backend) -> Logged {
    let (app, logs) = spawn_reading(backend, |s| s.time_field = Some("time".into())).await;
    Logged { app, logs }
}

on_both_backends! {
    async fn each_complete_line_counts_once_across_partial_writes_rotation_and_truncation(t: Logged = logged) {
        let (app, logs) = (t.app, t.logs.path().to_path_buf());
        let log = logs.join("access.jsonl");

        // Three uses, a health check, garbage, and a line still being written.
        append(&log, &(line("checkout", "1.0.0").repeat(3) + "{\"client\":\"lb\",\"uri\":\"/healthz\"}\nnot json\n{\"client\":\"checkout\",\"uri\":\"/v1/mo"));
        let r = scan(&app).await;
        assert_eq!((r["lines"].as_i64(), r["matched"].as_i64(), r["skipped"].as_i64()), (Some(5), Some(3), Some(2)), "{r}");
        assert_eq!(observations(&app, "checkout").await, Some(3));

        // Nothing new: nothing counted again.
        let r = scan(&app).await;
        assert_eq!(r["lines"], 0, "{r}");
        assert_eq!(observations(&app, "checkout").await, Some(3));

        // The partial line completes; then the file is rotated with a last line appended
        // to it after the rename, and a new file starts.
        append(&log, "dels/fraud-scorer/versions/1.0.0/predict\"}\n");
        let rotated = logs.join("access.jsonl.1");
        std::fs::rename(&log, &rotated).expect("rotate");
        append(&rotated, &line("checkout", "1.0.0"));
        append(&log, &line("checkout", "1.0.0").repeat(2));
        let r = scan(&app).await;
        assert_eq!(r["matched"], 4, "the completed line, the one after the rename, two new: {r}");
        assert_eq!(observations(&app, "checkout").await, Some(7));

        // copytruncate: the file is emptied in place and written again.
        std::fs::write(&log, line("search", "1.0.0")).expect("truncate");
        let r = scan(&app).await;
        assert_eq!(r["restarted"], 1, "{r}");
        assert_eq!(r["matched"], 1, "{r}");
        assert_eq!(observations(&app, "search").await, Some(1));
        assert_eq!(observations(&app, "checkout").await, Some(7));
    }
}

on_both_backends! {
    async fn unknown_models_versions_and_callers_are_counted_but_not_recorded(t: Logged = logged) {
        let (app, logs) = (t.app, t.logs.path().to_path_buf());
        let before = app.audit_count().await;
        append(&logs.join("access.jsonl"), &(line("checkout", "9.9.9") + &line("Not A Name", "1.0.0") + &line("ok-caller", "1.0.0")
            + &format!("{}\n", json!({ "client": "x", "uri": "/v1/models/unknown-model/versions/1.0.0/p" }))));
        let r = scan(&app).await;
        assert_eq!((r["matched"].as_i64(), r["unknown"].as_i64(), r["usesRecorded"].as_i64()), (Some(4), Some(3), Some(1)), "{r}");
        assert_eq!(observations(&app, "ok-caller").await, Some(1));
        // One discovered consumer and one new use: two audit records, no more.
        assert_eq!(app.audit_count().await, before + 2);
    }
}

fn gzip(from: &Path, to: &Path) {
    let mut out = flate2::write::GzEncoder::new(
        std::fs::File::create(to).expect("create"),
        flate2::Compression::default(),
    );
    std::io::copy(&mut std::fs::File::open(from).expect("open"), &mut out).expect("gzip");
    out.finish().expect("gzip");
}

on_both_backends! {
    async fn gzip_rotated_logs_are_read_once_and_other_files_are_reported(t: Logged = logged) {
        let (app, logs) = (t.app, t.logs.path().to_path_buf());
        let log = logs.join("access.jsonl");
        append(&log, &line("checkout", "1.0.0").repeat(3));
        assert_eq!(scan(&app).await["matched"], 3);

        // Two lines land after that scan; logrotate renames the file, starts a new one,
        // and compresses the renamed one (both copies present while it does).
        append(&log, &line("checkout", "1.0.0").repeat(2));
        let rotated = logs.join("access.jsonl.1");
        std::fs::rename(&log, &rotated).expect("rotate");
        append(&log, &line("search", "1.0.0"));
        gzip(&rotated, &logs.join("access.jsonl.1.gz"));
        let r = scan(&app).await;
        assert_eq!(r["matched"], 3, "the two unread lines once, and the new one: {r}");
        assert_eq!(r["rejected"], json!([]), "{r}");
        assert_eq!(observations(&app, "checkout").await, Some(5));
        std::fs::remove_file(&rotated).expect("compressed");
        assert_eq!(scan(&app).await["matched"], 0);

        // Rotation straight to gzip (no plain copy left): the compressed file is new to
        // the scan, and resumes where the plain one stopped.
        append(&log, &line("search", "1.0.0").repeat(2));
        gzip(&log, &logs.join("access.jsonl.2.gz"));
        std::fs::remove_file(&log).expect("rotate");
        let r = scan(&app).await;
        assert_eq!(r["matched"], 2, "{r}");
        assert_eq!(observations(&app, "search").await, Some(3));
        assert_eq!(observations(&app, "checkout").await, Some(5));

        // Files that are not logs are named in the report with why, not skipped in silence.
        std::fs::write(logs.join("access.jsonl.3.zst"), b"\x28\xb5\x2f\xfd\x04\x00").expect("zstd");
        std::fs::write(logs.join("access.jsonl.core"), b"\x7fELF\x02\x01\x01\x00\x00").expect("binary");
        let damaged = logs.join("access.jsonl.4.gz");
        append(&logs.join("big"), &line("lost", "1.0.0").repeat(2000));
        gzip(&logs.join("big"), &damaged);
        let bytes = std::fs::read(&damaged).expect("read");
        std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("cut");
        let r = scan(&app).await;
        let rejected = r["rejected"].as_array().expect("rejected").clone();
        let reason = |name: &str| {
            rejected
                .iter()
                .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(name)))
                .map(|f| f["reason"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_else(|| panic!("{name} not reported: {r}"))
        };
        assert!(reason("access.jsonl.3.zst").contains("zstd"), "{r}");
        assert!(reason("access.jsonl.core").contains("not text"), "{r}");
        assert!(reason("access.jsonl.4.gz").contains("gzip"), "{r}");
        assert_eq!(rejected.len(), 3, "{r}");
        assert_eq!(observations(&app, "search").await, Some(3));
    }
}

on_both_backends! {
    async fn time_field(t: Logged = timed) {
        use chrono::{Duration, SecondsFormat, Utc};
        let (app, logs) = (t.app, t.logs);
        let at = |t: chrono::DateTime<Utc>, client: &str| {
            format!(
                "{}\n",
                json!({ "time": t.to_rfc3339_opts(SecondsFormat::Millis, true), "client": client, "uri": "/v1/models/fraud-scorer/versions/1.0.0/predict" })
            )
        };
        let now = Utc::now();
        let (first, last) = (now - Duration::days(60), now - Duration::days(45));
        // A backfill of old logs, a line without a time, and one from a clock ahead.
        let log = at(first, "backfill")
            + &at(last, "backfill")
            + &at(first, "backfill")
            + &at(first, "mixed")
            + &format!(
                "{}\n",
                json!({ "client": "mixed", "uri": "/v1/models/fraud-scorer/versions/1.0.0/p" })
            )
            + &at(now + Duration::days(300), "ahead");
        append(&logs.path().join("access.jsonl"), &log);
        let r = scan(&app).await;
        assert_eq!(
            (r["matched"].as_i64(), r["untimed"].as_i64()),
            (Some(6), Some(1)),
            "{r}"
        );

        let data = app
            .gql_ok(&app.admin, "{ dependents(model: \"fraud-scorer\", version: \"1.0.0\") { nodes { name path { evidence { firstSeen lastSeen observations stale } } } } }", json!({}))
            .await;
        let evidence = |name: &str| {
            let node = data["dependents"]["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .find(|n| n["name"] == name)
                .unwrap_or_else(|| panic!("{name}: {data}"));
            let e = &node["path"][0]["evidence"][0];
            let time = |k: &str| {
                chrono::DateTime::parse_from_rfc3339(e[k].as_str().expect("time"))
                    .expect("rfc3339")
                    .with_timezone(&Utc)
            };
            (
                time("firstSeen"),
                time("lastSeen"),
                e["stale"].as_bool().expect("stale"),
            )
        };
        let close = |a: chrono::DateTime<Utc>, b: chrono::DateTime<Utc>| {
            (a - b).num_milliseconds().abs() < 1_000
        };
        // The traffic's own times: month-old logs are old evidence, stale, not today's.
        let (f, l, stale) = evidence("backfill");
        assert!(close(f, first) && close(l, last), "{f} {l}");
        assert!(
            stale,
            "45-day-old traffic is past inventory.stale_after_days"
        );
        // A line without a time may be current: it counts as now.
        let (f, l, stale) = evidence("mixed");
        assert!(close(f, first) && close(l, now), "{f} {l}");
        assert!(!stale);
        // A time ahead of the clock is not believed past now.
        let (f, l, _) = evidence("ahead");
        assert!(l <= Utc::now() && close(f, now), "{f} {l}");

        // A later backfill of still older lines moves first-seen back, not last-seen.
        let older = now - Duration::days(90);
        append(&logs.path().join("access.jsonl"), &at(older, "backfill"));
        scan(&app).await;
        let data2 = app
            .gql_ok(&app.admin, "{ dependents(model: \"fraud-scorer\", version: \"1.0.0\") { nodes { name path { evidence { firstSeen lastSeen observations } } } } }", json!({}))
            .await;
        let e = &data2["dependents"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == "backfill")
            .expect("backfill")["path"][0]["evidence"][0];
        assert_eq!(e["observations"], 4, "{e}");
        let seen = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(e[k].as_str().expect("t"))
                .expect("t")
                .with_timezone(&Utc)
        };
        assert!(
            close(seen("firstSeen"), older) && close(seen("lastSeen"), last),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_tick_runs_on_one_instance_only() {
    let (app, logs) = spawn(Backend::Postgres).await;
    let other = app.spawn_sibling().await;
    append(
        &logs.path().join("access.jsonl"),
        &line("checkout", "1.0.0").repeat(4),
    );
    let tick = chrono::Utc::now();
    let (here, there) = (app.services.inventory(), other.services.inventory());
    let (a, b) = tokio::join!(
        here.run_scheduled_scan("gw", tick, "instance-a"),
        there.run_scheduled_scan("gw", tick, "instance-b"),
    );
    let ran: Vec<_> = [a.expect("a"), b.expect("b")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ran.len(), 1, "exactly one instance ran the tick");
    assert_eq!(ran[0].matched, 4);
    // Whichever instance ran it, this one reads the result once it has caught up.
    app.services
        .inventory()
        .refresh_inventory()
        .await
        .expect("refresh");
    assert_eq!(observations(&app, "checkout").await, Some(4));
    // The next tick runs again (on whichever claims it), and finds nothing new.
    let next = app
        .services
        .inventory()
        .run_scheduled_scan("gw", tick + chrono::Duration::minutes(5), "instance-a")
        .await
        .expect("next");
    assert_eq!(next.map(|r| r.lines), Some(0));
    // A week on, the old claims are forgotten: one row per tick would grow for ever.
    app.services
        .inventory()
        .run_scheduled_scan("gw", tick + chrono::Duration::days(8), "instance-a")
        .await
        .expect("a week later");
    use sea_orm::ConnectionTrait;
    let row = app
        .services
        .store()
        .reader()
        .query_one_raw(sea_orm::Statement::from_string(
            app.services.store().backend(),
            "SELECT COUNT(*) AS n FROM job_runs WHERE job = 'scan:gw'",
        ))
        .await
        .expect("count")
        .expect("a row");
    assert_eq!(row.try_get::<i64>("", "n").expect("n"), 1);
}

#[test]
fn the_scan_command_reports_as_json_and_an_unknown_source_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    append(&logs.join("access.jsonl"), &line("checkout", "1.0.0"));
    let config = dir.path().join("sunset.toml");
    std::fs::write(
        &config,
        format!("[[scan.sources]]\nname = \"gw\"\npaths = [\"{}/access.jsonl*\"]\ncaller_field = \"client\"\npath_field = \"uri\"\n", logs.display()),
    )
    .expect("config");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sunset"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run")
    };
    let out = run(&["scan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["source"], "gw");
    assert_eq!(report["lines"], 1);
    assert_eq!(
        report["unknown"], 1,
        "no model is registered in this data folder"
    );
    let out = run(&["scan", "--source", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no scan source named nope; configured: gw")
    );
}
