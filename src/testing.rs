//! Fixtures the test suites and the benchmarks share; not an API. A scratch PostgreSQL
//! database of its own per test or run, on the server `tests/run` starts.

use sea_orm::{ConnectionTrait, Database};

/// The server's administrative URL (`SUNSET_TEST_PG_URL`, else the one `tests/run` uses).
pub fn postgres_admin_url() -> String {
    std::env::var("SUNSET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://sunset:sunset@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database named `<prefix>_<random>`; returns its name and URL. Panics,
/// saying how to start the server, when it is not reachable: a PostgreSQL test without
/// PostgreSQL fails rather than passes.
pub async fn create_scratch_database(prefix: &str) -> (String, String) {
    let admin = postgres_admin_url();
    let name = format!("{prefix}_{}", hex::encode(rand::random::<[u8; 8]>()));
    let conn = Database::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed here and is not reachable at {admin}: {e}. \
             Run the suite with `bash tests/run`, which starts it."
        )
    });
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the admin URL names a database");
    (name.clone(), format!("{base}/{name}"))
}

/// The vault a fleet runs on, as `tests/run` provides it: blobs under a prefix of their
/// own in the S3 server's bucket (`SUNSET_TEST_S3_ENDPOINT`, `SUNSET_TEST_S3_BUCKET`),
/// KEKs under a label prefix of their own on the SoftHSM2 token
/// (`SUNSET_TEST_PKCS11_MODULE`, `SUNSET_TEST_PKCS11_TOKEN`, the PIN in
/// `SUNSET_PKCS11_PIN`). The S3 secret goes to a file in `secrets_dir`. Panics, saying how
/// to start them, when they are not set up: a fleet test without them fails, not passes.
pub fn fleet_vault(secrets_dir: &std::path::Path) -> crate::config::VaultSettings {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the fleet tests need the S3 server and the SoftHSM2 token \
                 that `bash tests/run` starts. Run the suite with it."
            )
        })
    };
    let run = hex::encode(rand::random::<[u8; 6]>());
    let secret = secrets_dir.join("s3-secret");
    std::fs::write(&secret, "sunset-test-secret\n").expect("S3 secret file");
    let blobs = crate::config::BlobSettings {
        url: Some(format!("s3://{}/run-{run}", var("SUNSET_TEST_S3_BUCKET"))),
        endpoint: Some(var("SUNSET_TEST_S3_ENDPOINT")),
        region: Some("us-east-1".into()),
        allow_http: true,
        access_key_id: Some("sunset-test".into()),
        secret_access_key_file: Some(secret),
        ..Default::default()
    };
    let kek = crate::config::KekSettings {
        backend: crate::config::KekBackend::Pkcs11,
        module: Some(var("SUNSET_TEST_PKCS11_MODULE").into()),
        token_label: var("SUNSET_TEST_PKCS11_TOKEN"),
        pin_file: None,
        key_label_prefix: format!("kek-{run}"),
    };
    var(crate::config::PKCS11_PIN_VARIABLE);
    crate::config::VaultSettings { blobs, kek }
}

/// Drops a scratch database, connections and all; a failure is ignored (the server
/// is a throwaway one).
pub async fn drop_scratch_database(name: &str) {
    if let Ok(conn) = Database::connect(&postgres_admin_url()).await {
        let _ = conn
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// A model and its versions as a test or benchmark needs them, created through the use
/// cases by an owner of its team.
pub struct Seed<'a> {
    pub model: &'a str,
    pub team: &'a str,
    pub tier: &'a str,
    pub contacts: &'a [&'a str],
    pub versions: &'a [&'a str],
}

/// Creates `seed`'s model and versions; returns the owner who did.
pub async fn seed(services: &crate::service::Services, seed: Seed<'_>) -> crate::auth::Actor {
    let owner = crate::auth::Actor {
        name: format!("{}-owner", seed.team),
        role: crate::domain::Role::Owner,
        team: Some(crate::domain::TeamName::parse(seed.team).expect("a valid team")),
        ..crate::auth::Actor::system()
    };
    let input = crate::service::ModelInput {
        name: seed.model.into(),
        owner_team: seed.team.into(),
        tier: seed.tier.into(),
        description: String::new(),
        contacts: seed.contacts.iter().map(|c| (*c).to_owned()).collect(),
    };
    let registry = services.registry();
    registry.create_model(&owner, input).await.expect("model");
    for version in seed.versions {
        let input = crate::service::VersionInput {
            model: seed.model.into(),
            version: (*version).into(),
            provenance: Default::default(),
        };
        registry
            .create_version(&owner, input)
            .await
            .expect("version");
    }
    owner
}
