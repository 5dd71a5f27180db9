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
