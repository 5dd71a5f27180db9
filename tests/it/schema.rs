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
