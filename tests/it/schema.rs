//! The committed SDL must be what the code serves. Regenerate with
//! `UPDATE_EXPECT=1 cargo test --test it schema`.

#[test]
fn graphql_schema_matches_the_committed_sdl() {
    expect_test::expect_file!["../../graphql/schema.graphql"].assert_eq(&sunset::graphql::sdl());
}

/// Every operation in `graphql/examples/` passes schema validation: run without a
/// database or token, it may only fail inside resolvers (errors with a path), never in
/// validation (errors without one).
#[tokio::test]
async fn the_example_operations_are_valid_against_the_schema() {
    let schema = sunset::graphql::build_schema(None, &sunset::config::GraphqlSettings::default());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("graphql/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let document = async_graphql::parser::parse_query(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (name, _) in document.operations.iter() {
            let mut request = async_graphql::Request::new(text.clone());
            if let Some(name) = name {
                request = request.operation_name(name.as_str());
            }
            let response = schema.execute(request).await;
            for error in &response.errors {
                assert!(
                    !error.path.is_empty(),
                    "{} ({name:?}): {}",
                    path.display(),
                    error.message
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "found {checked} operations");
}

mod over_http {
    use crate::support::*;
    use serde_json::{Value, json};

    fn fixtures() -> Vec<(String, String)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/introspection");
        let mut found: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
            .map(|p| {
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).expect("read"))
            })
            .collect();
        found.sort();
        found
    }

    async fn post(
        app: &TestApp,
        token: Option<&str>,
        accept: &str,
        body: Value,
    ) -> (u16, String, Value) {
        let mut request = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("accept", accept)
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("post");
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("type")
            .to_owned();
        (status, content_type, response.json().await.expect("json"))
    }

    on_both_backends! {
        async fn the_introspection_queries_of_standard_clients_are_answered_under_default_limits(app) {
            let reader = app.token("reader", "reader", None).await;
            let all = fixtures();
            assert_eq!(all.len(), 6, "{all:?}");
            for (name, query) in all {
                let body = app.gql(&reader, &query, json!({})).await;
                assert!(body.get("errors").is_none(), "{name}: {body:#}");
                let types = body["data"]["__schema"]["types"].as_array().expect("types");
                assert!(types.iter().any(|t| t["name"] == "Retirement"), "{name}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deep_data_queries_are_still_refused_and_every_error_has_a_code() {
        // Depth 8 for data: introspection still gets its own 20.
        let app = TestApp::spawn_with(
            Backend::Sqlite,
            std::sync::Arc::new(sunset::clock::SystemClock),
            |s| {
                s.graphql.max_depth = 8;
            },
        )
        .await;
        let reader = app.token("reader", "reader", None).await;
        for (name, query) in fixtures() {
            let body = app.gql(&reader, &query, json!({})).await;
            assert!(body.get("errors").is_none(), "{name}: {body:#}");
        }
        {
            let accept = "application/json";
            let deep_data = "{ models(first: 1) { edges { node { versions(first: 1) { edges { node { retirement { dependents { deliveries { id } } } } } } } } } }";
            let (_, _, body) = post(
                &app,
                Some(&app.admin),
                accept,
                json!({ "query": deep_data }),
            )
            .await;
            assert!(
                error_message(&body)
                    .to_lowercase()
                    .contains("nested too deep"),
                "{body}"
            );
            assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body}");

            let deep_introspection = format!(
                "{{ __schema {{ types {{ fields {{ type {} {{ name }} {} }} }} }} }}",
                "{ ofType ".repeat(20),
                "} ".repeat(20)
            );
            let (_, _, body) = post(
                &app,
                Some(&app.admin),
                accept,
                json!({ "query": deep_introspection }),
            )
            .await;
            assert_eq!(
                error_code(&body),
                "QUERY_TOO_DEEP",
                "introspection is bounded too: {body}"
            );

            let complex = "{ dependents(model: \"m\", version: \"1.0.0\", limit: 20000) { dependents { consumer { name kind ownerTeam environment contacts } path { from to kind } } } }";
            let (_, _, body) =
                post(&app, Some(&app.admin), accept, json!({ "query": complex })).await;
            assert_eq!(
                error_code(&body),
                "QUERY_TOO_COMPLEX",
                "limit weighs: {body}"
            );

            let aliases: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
            let (_, _, body) = post(
                &app,
                Some(&app.admin),
                accept,
                json!({ "query": format!("{{ {aliases} }}") }),
            )
            .await;
            assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
            assert!(error_message(&body).contains("31 aliases"), "{body}");

            let (status, content_type, body) = post(
                &app,
                Some(&app.admin),
                accept,
                json!({ "query": "{ models {" }),
            )
            .await;
            assert_eq!((status, content_type.as_str()), (200, "application/json"));
            assert_eq!(error_code(&body), "GRAPHQL_PARSE_FAILED", "{body}");

            let (status, _, body) = post(
                &app,
                Some(&app.admin),
                accept,
                json!({ "query": "{ noSuchField }" }),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");

            let (status, _, body) =
                post(&app, None, accept, json!({ "query": "{ me { name } }" })).await;
            assert_eq!(status, 401);
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
        }
    }

    on_both_backends! {
        async fn graphql_response_json_answers_4xx_when_nothing_was_executed(app) {
            let accept = "application/graphql-response+json, application/json;q=0.9";
            let (status, content_type, body) = post(&app, Some(&app.admin), accept, json!({ "query": "{ models {" })).await;
            assert_eq!(status, 400, "{body}");
            assert!(content_type.starts_with("application/graphql-response+json"), "{content_type}");
            assert!(body.get("data").is_none(), "no data entry at all: {body}");
            let (status, _, body) = post(&app, Some(&app.admin), accept, json!({ "query": "{ noSuchField }" })).await;
            assert_eq!(status, 400, "{body}");
            let (status, content_type, body) = post(&app, Some(&app.admin), accept, json!({ "query": "{ me { name } }" })).await;
            assert_eq!(status, 200, "{body}");
            assert!(content_type.starts_with("application/graphql-response+json"));
            assert_eq!(body["data"]["me"]["name"], "test-admin");
            // A field error still executed: 200 with data.
            let (status, _, body) = post(&app, Some(&app.admin), accept, json!({ "query": "{ model(name: \"NOT A NAME\") { name } }" })).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(error_code(&body), "VALIDATION", "{body}");
        }
    }

    on_both_backends! {
        async fn graphiql_is_served_from_the_binary_under_a_content_security_policy(app) {
            let page = app.client.get(format!("{}/graphql", app.address)).send().await.expect("get");
            assert_eq!(page.status(), 200);
            let policy = page.headers()["content-security-policy"].to_str().expect("csp").to_owned();
            assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-eval"), "{policy}");
            assert!(!policy.contains("script-src 'self' 'unsafe-inline'"), "{policy}");
            let html = page.text().await.expect("html");
            assert!(!html.contains("https://") && !html.contains("http://"), "nothing from another origin: {html}");
            let scripts: Vec<&str> = html.split("<script").skip(1).collect();
            assert_eq!(scripts.len(), 4);
            for script in scripts {
                let src = script.split('"').nth(1).expect("src");
                assert!(src.starts_with("/graphql/assets/"), "{script}");
                assert!(script.contains("></script>"), "no inline script: {script}");
                let asset = app.client.get(format!("{}{src}", app.address)).send().await.expect("asset");
                assert_eq!(asset.status(), 200, "{src}");
                assert!(asset.headers()["content-type"].to_str().expect("type").starts_with("text/javascript"));
                assert!(asset.bytes().await.expect("body").len() > 500, "{src}");
            }
            let missing = app.client.get(format!("{}/graphql/assets/../Cargo.toml", app.address)).send().await.expect("get");
            assert_eq!(missing.status(), 404);
        }
    }
}
