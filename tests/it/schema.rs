//! The committed SDL must be what the code serves. Regenerate with
//! `UPDATE_EXPECT=1 cargo test --test it schema`.

#[test]
fn graphql_schema_matches_the_committed_sdl() {
    expect_test::expect_file!["../../graphql/schema.graphql"].assert_eq(&sunset::graphql::sdl());
}
