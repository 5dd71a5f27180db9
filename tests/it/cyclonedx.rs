//! CycloneDX 1.6 exports of the inventory, checked against the official JSON schema by
//! the CycloneDX Python library's strict validator (installed by `tests/run`).

use crate::inventory::landscape;
use crate::support::{Backend, TestApp};
use serde_json::Value;
use std::process::Command;

fn python() -> String {
    let path = std::env::var("SUNSET_TEST_CYCLONEDX_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&path)
        .args(["-c", "import cyclonedx.validation.json"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{path:?} cannot import cyclonedx; run the suite with `bash tests/run`, which installs cyclonedx-python-lib"
    );
    path
}

/// Validates against the CycloneDX 1.6 JSON schema; returns the validator's complaint.
fn schema_errors(bom: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bom.json");
    std::fs::write(&file, bom).expect("write");
    let out = Command::new(python())
        .args([
            "-c",
            "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\ne = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\nprint(e or '')\nsys.exit(1 if e else 0)",
        ])
        .arg(&file)
        .output()
        .expect("python");
    (!out.status.success()).then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.address));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("get")
}

fn refs(bom: &Value) -> Vec<(String, Vec<String>)> {
    bom["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| {
            (
                d["ref"].as_str().expect("ref").to_owned(),
                d["dependsOn"]
                    .as_array()
                    .expect("dependsOn")
                    .iter()
                    .map(|r| r.as_str().expect("r").to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_dependents_export_as_a_valid_cyclonedx_bom() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (ml, _) = landscape(&app).await;
    let response = get(
        &app,
        Some(&ml),
        "/v1/models/base/versions/1.0.0/dependents.cdx.json",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.cyclonedx+json; version=1.6"
    );
    let text = response.text().await.expect("text");
    assert_eq!(schema_errors(&text), None);
    let bom: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(bom["metadata"]["component"]["bom-ref"], "model:base@1.0.0");
    let names: Vec<&str> = bom["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["checkout", "tuned", "search", "frontend"]);
    assert_eq!(
        refs(&bom),
        vec![
            ("consumer:checkout".into(), vec!["model:base@1.0.0".into()]),
            ("consumer:frontend".into(), vec!["consumer:search".into()]),
            ("consumer:search".into(), vec!["model:tuned@1.0.0".into()]),
            ("model:base@1.0.0".into(), vec![]),
            ("model:tuned@1.0.0".into(), vec!["model:base@1.0.0".into()]),
        ]
    );

    // A cut-short answer stays valid and says it is not complete.
    let response = get(
        &app,
        Some(&ml),
        "/v1/models/base/versions/1.0.0/dependents.cdx.json?maxDepth=1",
    )
    .await;
    let text = response.text().await.expect("text");
    assert_eq!(schema_errors(&text), None);
    let bom: Value = serde_json::from_str(&text).expect("json");
    let complete = bom["metadata"]["properties"]
        .as_array()
        .expect("props")
        .iter()
        .find(|p| p["name"] == "sunset:complete")
        .cloned();
    assert_eq!(
        complete.map(|p| p["value"].clone()),
        Some(Value::from("false"))
    );

    let deps = get(
        &app,
        Some(&ml),
        "/v1/consumers/frontend/dependencies.cdx.json",
    )
    .await;
    let text = deps.text().await.expect("text");
    assert_eq!(schema_errors(&text), None);
    let bom: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(bom["metadata"]["component"]["bom-ref"], "consumer:frontend");
    assert_eq!(bom["components"].as_array().map(Vec::len), Some(3));

    assert_eq!(
        get(&app, None, "/v1/consumers/frontend/dependencies.cdx.json")
            .await
            .status(),
        401
    );
    assert_eq!(
        get(
            &app,
            Some(&ml),
            "/v1/consumers/nobody/dependencies.cdx.json"
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        get(
            &app,
            Some(&ml),
            "/v1/models/base/versions/1.0.0/dependents.cdx.json?limit=0"
        )
        .await
        .status(),
        422
    );
}
