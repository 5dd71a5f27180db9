//! Restoring a database backup taken before an erasure, with the key store as it is
//! after: start-up refuses and points at `sunset restore`, which reports what the backup
//! holds under the destroyed epoch, refuses a wrong key store, and, told to, records
//! those artifacts as erased (audited) so the service starts; they stay unrecoverable.

use super::decommission::{EXECUTE, ready_world, state_and_steps};
use super::*;
use std::process::Command;
use sunset::config::Settings;

/// A copy of the live database: `sqlite3 .backup`, or `pg_dump` into a new database.
/// Returns the settings of an instance on the copy, with a data folder of its own (see
/// [`keys_as_they_are`]).
async fn backup(w: &World, into: &std::path::Path) -> Settings {
    let mut settings = w.app.settings.clone();
    settings.data_dir = into.join("data");
    std::fs::create_dir_all(&settings.data_dir).expect("dir");
    match w.app.backend {
        Backend::Sqlite => {
            let db = w.app.settings.data_dir.join("sunset.db");
            let target = format!(
                ".backup '{}'",
                settings.data_dir.join("sunset.db").display()
            );
            let out = Command::new("sqlite3")
                .arg(db)
                .arg(target)
                .output()
                .expect("sqlite3");
            assert!(out.status.success(), "{out:?}");
        }
        Backend::Postgres => {
            let live = w.app.settings.database_url();
            let (_, url) = sunset::testing::create_scratch_database("sunset_test_restore").await;
            let dump = into.join("dump.sql");
            let out = Command::new("pg_dump")
                .args(["--no-owner", "-f"])
                .arg(&dump)
                .arg(live.expose())
                .output()
                .expect("pg_dump");
            assert!(out.status.success(), "{out:?}");
            let out = Command::new("psql")
                .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
                .arg(&dump)
                .arg(&url)
                .output()
                .expect("psql");
            assert!(out.status.success(), "{out:?}");
            settings.database.url = Some(sunset::config::DatabaseUrl::new(url));
        }
    }
    settings
}

/// Copies the live key folder (the service key, and the KEK files when they are files)
/// into the restored instance's data folder, as it is now.
fn keys_as_they_are(w: &World, restored: &Settings) {
    let copied = Command::new("cp")
        .arg("-a")
        .arg(w.app.settings.key_dir())
        .arg(&restored.data_dir)
        .status()
        .expect("cp");
    assert!(copied.success());
}

/// Runs `sunset restore …` on `settings`; returns the exit code and standard output.
fn restore_cli(settings: &Settings, args: &[&str]) -> (i32, String, String) {
    let config = settings.data_dir.join("restore.toml");
    std::fs::write(&config, toml::to_string(settings).expect("toml")).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_sunset"))
        .arg("--config")
        .arg(&config)
        .arg("restore")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("sunset restore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

on_both_backends! {
    async fn a_backup_from_before_an_erasure_restores_through_an_audited_acceptance(backend: Backend = crate::support::backend) {
        let (w, id, search, _surviving) = ready_world(backend).await;
        let dir = tempfile::tempdir().expect("tmp");
        let restored = backup(&w, dir.path()).await;

        w.app.gql_ok(&w.governance, EXECUTE, json!({ "id": id })).await;
        w.app
            .gql_ok(&search, "mutation($id: ID!) { confirmPurge(id: $id, consumer: \"embeddings\") { consumer } }", json!({ "id": id }))
            .await;
        let (state, steps) = state_and_steps(&w, &id).await;
        assert_eq!(state, "RETIRED", "the confirmation runs the remaining steps: {steps:?}");
        assert_eq!(w.app.kek_epochs_at_rest(), [2]);
        keys_as_they_are(&w, &restored);

        // Restored: the backup's database, today's key store.
        let clock = Arc::new(sunset::clock::SystemClock);
        let refused = match sunset::app::open(&restored, clock.clone()).await {
            Ok(_) => panic!("the restored database started without a word"),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("KEK epoch 1") && refused.contains("sunset restore verify"), "{refused}");

        let (code, report, _) = restore_cli(&restored, &["verify"]);
        assert_eq!(code, 1, "{report}");
        let report: Value = serde_json::from_str(&report).expect("json report");
        assert_eq!(report["epochs_held"], json!([2]), "{report}");
        assert_eq!(report["destroyed"][0]["epoch"], 1, "{report}");
        let named: Vec<&str> = report["destroyed"][0]["named"].as_array().expect("named").iter().filter_map(Value::as_str).collect();
        assert!(named.contains(&"fraud@2.1.0/model.safetensors"), "the erased artifact: {named:?}");
        assert!(named.contains(&"fraud@3.0.0/weights.bin"), "a survivor as the backup wrapped it: {named:?}");
        assert_eq!(report["foreign"], json!([]));
        assert_eq!(report["ready"], false);

        let (code, _, err) = restore_cli(&restored, &["accept-erasures"]);
        assert_ne!(code, 0);
        assert!(err.contains("--yes"), "{err}");
        let (code, _, err) = restore_cli(&restored, &["accept-erasures", "--yes"]);
        assert_eq!(code, 0, "{err}");
        let (code, _, _) = restore_cli(&restored, &["verify"]);
        assert_eq!(code, 0, "nothing left to accept");

        // The service starts; what was erased stays erased, and says so; the acceptance
        // is on the record.
        let services = sunset::app::open(&restored, clock).await.expect("starts after the acceptance");
        let filter = sunset::store::audit::RecordFilter { action: Some("vault.restore_erasures_accepted".into()), ..Default::default() };
        let accepted = sunset::store::audit::find_records(services.store().reader(), &filter, 0, 10).await.expect("records");
        assert_eq!(accepted.len(), 1, "the acceptance is on the record");
        let wrapped = sunset::store::erasure::surviving_per_epoch(services.store().reader()).await.expect("epochs");
        assert_eq!(wrapped, vec![], "no artifact of the backup is left under a destroyed epoch");
    }
}

on_both_backends! {
    /// The wrong key store is not a restore: nothing is accepted, and nothing changes.
    async fn a_wrong_key_store_is_refused_and_never_accepted(backend: Backend = crate::support::backend) {
        let (w, _id, _search, _surviving) = ready_world(backend).await;
        let dir = tempfile::tempdir().expect("tmp");
        let mut restored = backup(&w, dir.path()).await;
        keys_as_they_are(&w, &restored);
        match restored.vault.kek.backend {
            sunset::config::KekBackend::File => {
                std::fs::remove_dir_all(restored.key_dir().join("kek")).expect("rm");
            }
            sunset::config::KekBackend::Pkcs11 => {
                restored.vault.kek.key_label_prefix.push_str("-wrong");
            }
        }
        let (code, report, _) = restore_cli(&restored, &["verify"]);
        assert_eq!(code, 2, "{report}");
        let report: Value = serde_json::from_str(&report).expect("json");
        assert_eq!(report["foreign"][0]["epoch"], 1, "{report}");
        let (code, _, err) = restore_cli(&restored, &["accept-erasures", "--yes"]);
        assert_ne!(code, 0);
        assert!(err.contains("not the key store this database was written with"), "{err}");
        assert!(err.contains("nothing was changed"), "{err}");
    }
}
