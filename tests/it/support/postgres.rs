//! A fresh PostgreSQL database per test, on the server `tests/run` started. Dropped
//! (WITH FORCE) when the test ends, pass or fail.

use sea_orm::{ConnectionTrait, Database};

pub fn admin_url() -> String {
    std::env::var("SUNSET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://sunset:sunset@127.0.0.1:5432/postgres".into())
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("sunset_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let conn = Database::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test and is not reachable at {admin}: {e}. Run the suite with `bash tests/run`, which starts it.")
        });
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let (base, _) = admin.rsplit_once('/').expect("admin url has a database");
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a runtime of its own on a plain thread
        // may block where the test's may not.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(conn) = Database::connect(&admin_url()).await {
                    let _ = conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
