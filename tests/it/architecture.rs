//! The module rules of ARCHITECTURE.md, kept by reading the source: transports never see
//! storage, and the domain stays pure.

use std::path::{Path, PathBuf};

fn sources(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut out);
    out.sort();
    out
}

/// Every line of code (comments left out) in `dirs` that names one of `forbidden`.
fn offenders(dirs: &[&str], forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in dirs.iter().flat_map(|d| sources(d)) {
        let text = std::fs::read_to_string(&file).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn transports_never_import_storage() {
    let found = offenders(&["src/graphql", "src/http"], &["crate::store", "store::"]);
    assert!(
        found.is_empty(),
        "graphql/ and http/ call service and domain, never store:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_domain_does_no_io_and_knows_no_framework() {
    let found = offenders(
        &["src/domain"],
        &[
            "sea_orm",
            "axum",
            "async_graphql",
            "tokio",
            "notifiers",
            "crate::store",
            "crate::service",
            "std::fs",
            "std::net",
        ],
    );
    assert!(found.is_empty(), "domain/ is pure:\n{}", found.join("\n"));
}

#[test]
fn storage_returns_rows_and_the_graph_builds_itself() {
    let store_builds = offenders(&["src/store"], &["InventoryGraph", "GraphBuilder"]);
    assert!(
        store_builds.is_empty(),
        "store/ reads rows; graph/ builds the graph from them:\n{}",
        store_builds.join("\n")
    );
    let graph_reads = offenders(&["src/graph"], &["crate::store", "sea_orm"]);
    assert!(
        graph_reads.is_empty(),
        "graph/ never reads storage:\n{}",
        graph_reads.join("\n")
    );
}

#[test]
fn unsafe_code_is_the_binarys_one_call_into_its_allocator() {
    // The library forbids it at its root; the workspace denies it everywhere else.
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    assert!(lib.contains("#![forbid(unsafe_code)]"));
    let code = [
        "unsafe {",
        "unsafe fn",
        "unsafe extern",
        "unsafe impl",
        "unsafe trait",
    ];
    let found: Vec<String> = offenders(&["src"], &code)
        .into_iter()
        .filter(|line| !line.contains("src/main.rs:"))
        .collect();
    assert!(
        found.is_empty(),
        "unsafe outside main.rs:\n{}",
        found.join("\n")
    );
    let main = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs"))
        .expect("main.rs");
    let calls = main
        .lines()
        .filter(|l| {
            let line = l.split("//").next().unwrap_or("");
            code.iter().any(|c| line.contains(c))
        })
        .count();
    assert_eq!(calls, 2, "the extern block and the one call to mi_collect");
}
