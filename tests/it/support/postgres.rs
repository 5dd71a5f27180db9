//! A fresh PostgreSQL database per test, on the server `tests/run` started. Dropped
//! (WITH FORCE) when the test ends, pass or fail.

pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let (name, url) = sunset::testing::create_scratch_database("sunset_test").await;
        Self { name, url }
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
            rt.block_on(sunset::testing::drop_scratch_database(&name));
        })
        .join();
    }
}
