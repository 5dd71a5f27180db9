//! Certificates in the console: auditors only (others are not offered the section and
//! are refused when they ask), every read recorded, the download exactly as issued.

use super::Console;
use serde_json::json;

on_both_backends! {
    /// After an emergency erasure: an auditor lists and opens the certificate (each
    /// open is recorded as `certificate.read`) and downloads the envelope byte for byte
    /// as the API serves it; a reader sees no Certificates link and gets 403.
    async fn auditors_alone_read_certificates_and_each_read_is_recorded(app) {
        let owner = app.token("ml-owner", "owner", Some("ml")).await;
        app.create_model(&owner, "fraud", "ml").await;
        app.gql_ok(&owner, "mutation { createVersion(input: { model: \"fraud\", version: \"2.1.0\" }) { version } }", json!({})).await;
        let first = app.token("sec-1", "security", None).await;
        let second = app.token("sec-2", "security", None).await;
        let cut = app.gql_ok(&first, "mutation { emergencyRetirement(model: \"fraud\", versions: \"2.1.0\", riskAssessment: \"the weights reproduce training records verbatim when prompted\") { id } }", json!({})).await;
        let id = cut["emergencyRetirement"]["id"].as_str().expect("id").to_owned();
        app.gql_ok(&second, "mutation($id: ID!) { approveEmergencyErasure(id: $id, note: \"forensic image taken\") { state } }", json!({ "id": id })).await;

        let auditor = app.token("aud", "auditor", None).await;
        let mut console = Console::new(&app.address);
        assert_eq!(console.sign_in(&auditor).await.status, 303);
        let list = console.get("/ui/certificates").await;
        assert_eq!(list.status, 200, "{}", list.body);
        let path = list.body.split("href=\"/ui/certificates/").nth(1).and_then(|s| s.split('"').next()).expect("a certificate listed");
        let reads = |app: &crate::support::TestApp| {
            let app = app.services.clone();
            async move {
                let db = app.store().reader();
                use sea_orm::{ConnectionTrait, Statement};
                db.query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM audit_records WHERE action = 'certificate.read' AND actor = 'aud'"))
                    .await.expect("query").expect("row").try_get_by_index::<i64>(0).expect("count")
            }
        };
        let before = reads(&app).await;
        let viewer = console.get(&format!("/ui/certificates/{path}")).await;
        assert_eq!(viewer.status, 200);
        assert!(viewer.body.contains("application/vnd.in-toto+json") && viewer.body.contains("sunset.invalid/destruction-certificate/v1"), "{}", viewer.body);
        assert!(viewer.body.contains("<script src=\"/ui/assets/verify.js\""));
        crate::console::pages::assert_inert(&viewer.body);
        assert_eq!(reads(&app).await, before + 1, "opening it is recorded");

        let download = console.get(&format!("/ui/certificates/{path}/envelope.json")).await;
        assert_eq!(download.status, 200);
        assert!(download.headers["content-disposition"].to_str().expect("ascii").starts_with("attachment;"));
        let api = app.client.get(format!("{}/v1/certificates/{path}", app.address)).bearer_auth(&auditor).send().await.expect("api");
        assert_eq!(download.body, api.text().await.expect("body"), "the same bytes as the API");

        let reader = app.token("rita", "reader", None).await;
        let mut other = Console::new(&app.address);
        assert_eq!(other.sign_in(&reader).await.status, 303);
        assert!(!other.get("/ui/models").await.body.contains("/ui/certificates"), "not offered");
        let refused = other.get(&format!("/ui/certificates/{path}")).await;
        assert_eq!(refused.status, 403);
        assert!(refused.body.contains("role reader may not read destruction certificates"));
        assert_eq!(other.get("/ui/revocations").await.status, 200, "the revocation list is public");
    }
}
