//! The audit log in the console: auditors filter, page, verify and export it, every read
//! recorded; anyone else is refused (and recorded), as through the API.

use super::Console;

on_both_backends! {
    async fn auditors_filter_verify_and_export_the_log_and_others_are_refused(app) {
        let owner = app.token("ml-owner", "owner", Some("ml")).await;
        app.create_model(&owner, "fraud", "ml").await;
        app.create_model(&owner, "search", "ml").await;
        let auditor = app.token("aud", "auditor", None).await;
        let mut console = Console::new(&app.address);
        assert_eq!(console.sign_in(&auditor).await.status, 303);
        let created = console.get("/ui/audit?action=model.created").await;
        assert_eq!(created.status, 200, "{}", created.body);
        assert_eq!(created.body.matches("<td>model.created</td>").count(), 2, "{}", created.body);
        assert!(!created.body.contains("<td>token.created</td>"));
        crate::console::pages::assert_inert(&created.body);
        let bad = console.get("/ui/audit?from=yesterday").await;
        assert_eq!(bad.status, 422);
        assert!(bad.body.contains("YYYY-MM-DD"));

        let verified = console.get("/ui/audit?verify=1").await;
        assert!(verified.body.contains("The chain is intact"), "{}", verified.body);
        let export = console.get("/ui/audit/export?action=model.created").await;
        assert_eq!(export.status, 200);
        let lines: Vec<serde_json::Value> = export.body.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["action"] == "model.created"));
        let reads = console.get("/ui/audit?action=audit.read&actor=aud").await;
        assert!(reads.body.matches("<td>audit.read</td>").count() >= 3, "each read recorded: {}", reads.body);

        let reader = app.token("rita", "reader", None).await;
        let mut other = Console::new(&app.address);
        assert_eq!(other.sign_in(&reader).await.status, 303);
        assert!(!other.get("/ui/models").await.body.contains("href=\"/ui/audit\""));
        for path in ["/ui/audit", "/ui/audit?verify=1", "/ui/audit/export"] {
            let refused = other.get(path).await;
            assert_eq!(refused.status, 403, "{path}");
            assert!(refused.body.contains("needs the auditor role"), "{}", refused.body);
        }
    }
}
