//! The `sunset` binary as an operator uses it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sunset(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("SUNSET_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sunset")
}

/// Sends SIGTERM, as systemd and Kubernetes stop a service, and waits for the exit.
fn stop_with_sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    child.wait().expect("wait")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn token_create_prints_the_secret_alone_and_list_never_shows_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let out = sunset(
        &data,
        &[
            "token",
            "create",
            "--name",
            "ci-deployer",
            "--role",
            "owner",
            "--team",
            "payments-ml",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "only the token on stdout: {printed:?}");
    assert!(
        lines[0].starts_with("sunset_") && lines[0].len() == 50,
        "{printed:?}"
    );

    let list = sunset(&data, &["token", "list"]);
    let listed = stdout(&list);
    assert!(listed.contains("ci-deployer") && listed.contains("payments-ml"));
    assert!(!listed.contains(lines[0]));

    let db = std::fs::read(data.join("sunset.db")).expect("db");
    let wal = std::fs::read(data.join("sunset.db-wal")).unwrap_or_default();
    let secret = lines[0].as_bytes();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret)
            && !wal.windows(secret.len()).any(|w| w == secret),
        "the secret is not stored"
    );

    assert!(
        sunset(&data, &["token", "revoke", "ci-deployer"])
            .status
            .success()
    );
    assert!(
        stdout(&sunset(&data, &["token", "list"]))
            .lines()
            .any(|l| l.starts_with("ci-deployer") && !l.trim_end().ends_with('-'))
    );
    let bad = sunset(
        &data,
        &["token", "create", "--name", "x", "--role", "superuser"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("superuser"));
}

#[test]
fn the_data_folder_and_key_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    assert!(sunset(&data, &["migrate"]).status.success());
    for (path, mode) in [
        (data.clone(), 0o700),
        (data.join("keys"), 0o700),
        (data.join("keys/service-ed25519.key"), 0o600),
    ] {
        assert_eq!(
            std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode()
                & 0o777,
            mode,
            "{}",
            path.display()
        );
    }
}

/// `sunset audit verify` passes on an untouched database and fails, naming the record,
/// after any single-row edit made with the sqlite3 CLI.
#[test]
fn audit_verify_names_the_record_after_any_single_row_edit_with_sqlite3() {
    let dir = tempfile::tempdir().expect("tmp");
    let pristine = dir.path().join("pristine");
    for name in ["a", "b", "c", "d"] {
        assert!(
            sunset(
                &pristine,
                &["token", "create", "--name", name, "--role", "reader"]
            )
            .status
            .success()
        );
    }
    assert!(
        sunset(&pristine, &["token", "revoke", "b"])
            .status
            .success()
    );
    let ok = sunset(&pristine, &["audit", "verify"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        stdout(&ok),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout(&ok).contains("intact: 5 records"));

    let edits = [
        (
            "UPDATE audit_records SET actor = 'mallory' WHERE seq = 2",
            "record 2",
        ),
        (
            "UPDATE audit_records SET action = 'token.revoked' WHERE seq = 3",
            "record 3",
        ),
        (
            "UPDATE audit_records SET after_state = '{}' WHERE seq = 1",
            "record 1",
        ),
        (
            "UPDATE audit_records SET before_state = NULL WHERE seq = 5",
            "record 5",
        ),
        (
            "UPDATE audit_records SET recorded_at = '2020-01-01 00:00:00+00:00' WHERE seq = 4",
            "record 4",
        ),
        (
            "UPDATE audit_records SET subject = 'z' WHERE seq = 4",
            "record 4",
        ),
        ("DELETE FROM audit_records WHERE seq = 3", "record 3"),
        (
            "UPDATE audit_records SET seq = 99 WHERE seq = 2",
            "record 2",
        ),
        ("DELETE FROM audit_records WHERE seq = 5", "record 5"),
    ];
    for (i, (sql, named)) in edits.iter().enumerate() {
        let copy = dir.path().join(format!("copy{i}"));
        copy_dir(&pristine, &copy);
        let status = Command::new("sqlite3")
            .arg(copy.join("sunset.db"))
            .arg(sql)
            .status()
            .expect("the sqlite3 CLI is installed (tests/run installs it)");
        assert!(status.success(), "{sql}");
        let out = sunset(&copy, &["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{sql}: {}", stdout(&out));
        assert!(
            stdout(&out).contains(named),
            "{sql}: expected {named} in {}",
            stdout(&out)
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The README's start command: no config at all, SQLite in ./sunset-data, loopback,
/// GraphiQL answering, and a clean exit on SIGTERM; under systemd (`NOTIFY_SOCKET`) it
/// says READY=1 once serving and STOPPING=1 at shutdown.
#[test]
fn serve_starts_with_no_configuration_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let notify_path = dir.path().join("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    systemd
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let said = || {
        let mut buf = [0u8; 512];
        let n = systemd.recv(&mut buf).expect("a notification from sunset");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SUNSET_METRICS__LISTEN", "127.0.0.1:0")
        .env("NOTIFY_SOCKET", &notify_path)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("SUNSET_DATA_DIR")
        .env_remove("SUNSET_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve logs that it listens")
            .expect("line");
        if let Some(rest) = line.split("addr=").nth(1)
            && line.contains("listening")
        {
            break rest.split_whitespace().next().expect("addr").to_owned();
        }
    };
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );
    assert!(said().contains("READY=1"), "systemd is told it is ready");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let page = rt.block_on(async {
        crate::support::loopback_client()
            .get(format!("http://{addr}/graphql"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text")
    });
    assert!(page.to_lowercase().contains("graphiql"));
    assert!(dir.path().join("sunset-data/sunset.db").exists());
    assert!(
        dir.path()
            .join("sunset-data/keys/service-ed25519.key")
            .exists()
    );

    let status = stop_with_sigterm(&mut child);
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    assert!(
        said().contains("STOPPING=1"),
        "systemd is told it is stopping"
    );
}

#[test]
fn signers_are_added_listed_and_disabled_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let key = dir.path().join("release.pub");
    std::fs::write(&key, crate::signers::P256_PEM).expect("key");
    let added = sunset(
        &data,
        &[
            "signer",
            "add",
            "--name",
            "release-bot",
            "--public-key",
            key.to_str().expect("utf8"),
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let listed = stdout(&sunset(&data, &["signer", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("release-bot") && l.contains("ecdsa-p256") && l.contains("yes")),
        "{listed}"
    );
    assert!(
        sunset(&data, &["signer", "disable", "release-bot"])
            .status
            .success()
    );
    assert!(
        stdout(&sunset(&data, &["signer", "list"]))
            .lines()
            .any(|l| l.starts_with("release-bot") && l.contains(" no "))
    );
    let missing = sunset(
        &data,
        &[
            "signer",
            "add",
            "--name",
            "x",
            "--public-key",
            "/nonexistent.pem",
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.pem"));
    assert_eq!(sunset(&data, &["audit", "verify"]).status.code(), Some(0));
}

/// Every command that wrote leaves the log signed up to its head, as the README says:
/// `token create` among them. Verification then matches those checkpoints.
#[test]
fn every_writing_command_signs_a_checkpoint_of_the_head_it_left() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    for i in 0..7 {
        let name = format!("ci-{i}");
        let out = sunset(
            &data,
            &["token", "create", "--name", &name, "--role", "reader"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let revoked = sunset(&data, &["token", "revoke", "ci-0"]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let file = std::fs::read_to_string(data.join("audit-checkpoints.jsonl"))
        .expect("the checkpoint file exists");
    let seqs: Vec<i64> = file
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["seq"]
                .as_i64()
                .expect("seq")
        })
        .collect();
    assert_eq!(
        seqs,
        (1..=8).collect::<Vec<i64>>(),
        "one checkpoint per command, at its head"
    );
    let verified = sunset(&data, &["audit", "verify"]);
    let said = stdout(&verified);
    assert!(verified.status.success(), "{said}");
    assert!(
        said.contains("8 records") && !said.contains(" 0 signed checkpoints"),
        "{said}"
    );
}

/// Migrations take an advisory lock on PostgreSQL: `sunset migrate` started three times
/// at once on one fresh database succeeds every time (before the lock, one of them
/// failed on a duplicate type), three rounds over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_started_together_on_one_postgres_database_all_succeed() {
    for round in 0..3 {
        let database = crate::support::postgres::TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("tmp");
        let runs: Vec<std::process::Child> = (0..3)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_sunset"))
                    .args(["migrate", "--data-dir"])
                    .arg(dir.path().join(format!("data-{i}")))
                    .env("SUNSET_DATABASE__URL", &database.url)
                    .env_remove("DATABASE_URL")
                    .env_remove("SUNSET_CONFIG")
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for run in runs {
            let out = run.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A missing or different service key is refused once audit records exist, naming the
/// file, instead of being silently replaced (which made every record read as forged).
#[test]
fn a_missing_or_different_service_key_is_refused_once_audit_records_exist() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let key = data.join("keys/service-ed25519.key");
    let created = sunset(
        &data,
        &["token", "create", "--name", "ops", "--role", "admin"],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let original = std::fs::read(&key).expect("key");

    std::fs::remove_file(&key).expect("remove");
    let refused = sunset(&data, &["token", "list"]);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("service-ed25519.key") && said.contains("was missing"),
        "{said}"
    );
    assert!(!key.exists(), "the stand-in key is not left behind");

    let other = dir.path().join("other");
    assert!(sunset(&other, &["token", "list"]).status.success());
    std::fs::copy(other.join("keys/service-ed25519.key"), &key).expect("copy");
    let refused = sunset(&data, &["token", "list"]);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("is present but does not authenticate"),
        "{said}"
    );

    std::fs::write(&key, &original).expect("restore");
    let listed = sunset(&data, &["token", "list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(stdout(&listed).contains("ops"));
}

/// What a newcomer meets: a stray `SUNSET_*` variable is named, and an error is said once.
#[test]
fn a_stray_environment_variable_is_named_and_errors_are_said_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(["token", "list", "--data-dir"])
        .arg(&data)
        .env("SUNSET_BINARY", "/usr/local/bin/sunset")
        .env_remove("SUNSET_CONFIG")
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        said.contains("environment variable SUNSET_BINARY is not a setting"),
        "{said}"
    );

    let out = sunset(
        &data,
        &["token", "create", "--name", "x", "--role", "owner"],
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    let line = said
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("error line");
    assert!(line.contains("team"), "{line}");
    let first = line.find("team").expect("team");
    let sentence = &line[first..line.len().min(first + 30)];
    assert_eq!(line.matches(sentence).count(), 1, "said once: {line}");
}

/// A fleet's service key lives outside the data folder (`service_key_file`, a Secret
/// every replica mounts): made once by `keys create-service-key`, never overwritten,
/// readable by its group but refused when others may read it, and used, not copied,
/// by every command.
#[test]
fn a_service_key_file_kept_outside_the_data_folder_is_shared_and_guarded() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let (data, key) = (
        dir.path().join("data"),
        dir.path().join("secret/service.key"),
    );
    std::fs::create_dir_all(key.parent().expect("parent")).expect("mkdir");
    let key_arg = key.to_str().expect("utf-8");
    let made = sunset(&data, &["keys", "create-service-key", "--out", key_arg]);
    assert!(made.status.success(), "{made:?}");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    let before = std::fs::read(&key).expect("read");
    let again = sunset(&data, &["keys", "create-service-key", "--out", key_arg]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read(&key).expect("read"), before);

    // A Secret volume with the pod's fsGroup: group-readable, read-only.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o440)).expect("chmod");
    let with_key = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sunset"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("DATABASE_URL")
            .env_remove("SUNSET_CONFIG")
            .env("SUNSET_SERVICE_KEY_FILE", &key)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run sunset")
    };
    let token = with_key(&["token", "create", "--name", "ops", "--role", "admin"]);
    assert!(token.status.success(), "{token:?}");
    assert!(
        !data.join("keys/service-ed25519.key").exists(),
        "no second key was made in the data folder"
    );
    assert_eq!(with_key(&["audit", "verify"]).status.code(), Some(0));
    let public = with_key(&["keys", "public"]);
    assert!(stdout(&public).starts_with("-----BEGIN PUBLIC KEY-----"));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let open = with_key(&["keys", "public"]);
    assert_eq!(open.status.code(), Some(2));
    let said = String::from_utf8_lossy(&open.stderr);
    assert!(
        said.contains("readable by others") && said.contains("service.key"),
        "{said}"
    );
}

/// `log.format = "json"`: every line is a JSON object, and a request's lines carry the
/// trace id of the caller's W3C `traceparent`.
#[test]
fn json_logs_carry_the_callers_trace_id() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut child, mut lines, addr, reader) = serve_logging_json(dir.path(), &[]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(refused_mutation(&addr, &reader, Some(trace)));
    let refused = lines
        .find(|l| l["fields"]["message"] == "request refused")
        .expect("the refusal is logged");
    assert_eq!(refused["span"]["trace_id"], trace, "{refused}");
    let _ = child.kill();
    let _ = child.wait();
}

/// `[traces] endpoint`: request spans reach an OTLP/HTTP collector (here a loopback
/// sink) when the service stops at the latest; a caller's `traceparent` is continued,
/// and a request without one is traced under the id its log lines carry.
#[test]
fn traces_reach_an_otlp_collector_under_the_ids_the_logs_carry() {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let collector = rt.block_on(async {
        let sink = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/v1/traces"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&sink)
            .await;
        sink
    });
    let dir = tempfile::tempdir().expect("tmp");
    let endpoint = collector.uri();
    let (mut child, mut lines, addr, reader) = serve_logging_json(
        dir.path(),
        &[("SUNSET_TRACES__ENDPOINT", endpoint.as_str())],
    );
    let (caller_trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    rt.block_on(refused_mutation(&addr, &reader, Some(caller_trace)));
    rt.block_on(refused_mutation(&addr, &reader, None));
    let logged: Vec<String> = lines
        .by_ref()
        .filter(|l| l["fields"]["message"] == "request refused")
        .take(2)
        .map(|l| l["span"]["trace_id"].as_str().expect("trace id").to_owned())
        .collect();
    assert_eq!(logged[0], caller_trace);
    assert_ne!(logged[1], caller_trace);
    assert!(stop_with_sigterm(&mut child).success());
    let bodies: Vec<Vec<u8>> = rt
        .block_on(collector.received_requests())
        .expect("recorded")
        .into_iter()
        .map(|r| r.body)
        .collect();
    let sent = |hex_id: &str| {
        let id = hex::decode(hex_id).expect("hex");
        bodies
            .iter()
            .any(|b| b.windows(id.len()).any(|w| w == id.as_slice()))
    };
    assert!(!bodies.is_empty(), "nothing reached the collector");
    assert!(sent(caller_trace), "the caller's trace was not continued");
    assert!(sent(caller_span), "the caller's span is not the parent");
    assert!(sent(&logged[1]), "a new trace's id differs from its logs'");
}

/// `sunset serve` on a new data folder under `dir`, logging JSON, with `env` added: the
/// process, its log lines, its address and a reader token.
fn serve_logging_json(
    dir: &Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    impl Iterator<Item = serde_json::Value> + use<>,
    String,
    String,
) {
    let data = dir.join("data");
    let reader = stdout(&sunset(
        &data,
        &["token", "create", "--name", "r", "--role", "reader"],
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .env("SUNSET_METRICS__LISTEN", "127.0.0.1:0")
        .arg(&data)
        .env_remove("DATABASE_URL")
        .env_remove("SUNSET_CONFIG")
        .env("SUNSET_LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(&l.expect("line"))
                .expect("every line is JSON")
        });
    let addr = lines
        .find(|l| l["fields"]["message"] == "sunset is listening")
        .and_then(|l| l["fields"]["addr"].as_str().map(str::to_owned))
        .expect("the listening line");
    (child, lines, addr, reader.trim().to_owned())
}

/// A mutation a reader may not make (so it is logged), with `traceparent` when given.
async fn refused_mutation(addr: &str, reader: &str, trace: Option<&str>) {
    let mut request = crate::support::loopback_client()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(reader);
    if let Some(trace) = trace {
        request = request.header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"));
    }
    request
        .json(&serde_json::json!({ "query": "mutation { createModel(input: { name: \"m\", ownerTeam: \"t\", tier: HIGH, contacts: [\"a@example.org\"] }) { name } }" }))
        .send()
        .await
        .expect("post");
}
