//! Set-up the benchmarks share; each includes this file with `#[path]`.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use std::path::Path;
use sunset::config::{DatabaseUrl, Settings};

/// A PostgreSQL database of the benchmark's own, on the server at `SUNSET_TEST_PG_URL`
/// (which `tests/run` starts and exports), dropped by [`BenchDatabase::drop_database`].
pub struct BenchDatabase {
    admin: DatabaseConnection,
    name: String,
    /// Settings for the service on it, with its files under the given folder.
    pub settings: Settings,
}

impl BenchDatabase {
    pub async fn create(data_dir: &Path) -> Self {
        let (name, url) = sunset::testing::create_scratch_database("sunset_bench").await;
        let admin = Database::connect(&sunset::testing::postgres_admin_url())
            .await
            .expect("PostgreSQL reachable (run `bash tests/run` once, or pass --sqlite-only)");
        let mut settings = Settings {
            data_dir: data_dir.to_path_buf(),
            database: sunset::config::DatabaseSettings {
                url: Some(DatabaseUrl::new(url)),
            },
            ..Settings::default()
        };
        admit_loopback_receivers(&mut settings);
        Self {
            admin,
            name,
            settings,
        }
    }

    pub async fn drop_database(self) {
        let dropped = self
            .admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
        // Right after a bulk load an autovacuum worker (a superuser's process, which our
        // role may not end) can hold the database; the figures are printed by then, and
        // tests/run drops leftover `sunset_bench_%` databases.
        if let Err(e) = dropped {
            eprintln!("could not drop {} yet ({e}); tests/run drops it", self.name);
        }
    }
}

/// Lets webhooks reach the benchmarks' receivers: plain HTTP on loopback.
#[allow(dead_code)]
pub fn admit_loopback_receivers(settings: &mut Settings) {
    settings.notifications.webhook_allow_http = true;
    settings.notifications.webhook_allow = vec!["127.0.0.0/8".into()];
}
