//! Emergencies from the console: declared by security after a page that says what will
//! happen, approved by a second person who ticks that it cannot be undone, or lifted;
//! the roles and the two-person rule are the use cases'.

use super::Console;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

const RISK: &str = "the weights reproduce training records verbatim when prompted";

async fn text(app: &crate::support::TestApp, sql: &str) -> String {
    let db = app.services.store().reader();
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .map(|r| {
            r.try_get_by_index::<String>(0)
                .or_else(|_| r.try_get_by_index::<i64>(0).map(|n| n.to_string()))
                .expect("a value")
        })
        .unwrap_or_default()
}

on_both_backends! {
    async fn security_declares_a_second_person_approves_and_a_lift_brings_versions_back(app) {
        let owner = app.token("ml-owner", "owner", Some("ml")).await;
        app.create_model(&owner, "fraud", "ml").await;
        for v in ["2.0.0", "2.1.0"] {
            app.gql_ok(&owner, "mutation($v: String!) { createVersion(input: { model: \"fraud\", version: $v }) { version } }", json!({ "v": v })).await;
        }
        let reader = app.token("rita", "reader", None).await;
        let mut nobody = Console::new(&app.address);
        assert_eq!(nobody.sign_in(&reader).await.status, 303);
        assert!(!nobody.get("/ui/models").await.body.contains("href=\"/ui/emergency\""));
        let csrf = nobody.csrf().await;
        let refused = nobody.post("/ui/emergency", &[("csrf", csrf.as_str()), ("model", "fraud"), ("versions", "2.1.0"), ("risk_assessment", RISK), ("confirmed", "yes")]).await;
        assert_eq!(refused.status, 403);

        let first = app.token("sec-1", "security", None).await;
        let mut one = Console::new(&app.address);
        assert_eq!(one.sign_in(&first).await.status, 303);
        let csrf = one.csrf().await;
        let form = [("csrf", csrf.as_str()), ("model", "fraud"), ("versions", "2.1.0"), ("risk_assessment", RISK)];
        let confirm = one.post("/ui/emergency", &form).await;
        assert_eq!(confirm.status, 200);
        assert!(confirm.body.contains("never to be recovered") && confirm.body.contains("Retire now"), "{}", confirm.body);
        assert_eq!(text(&app, "SELECT COUNT(*) FROM retirements").await, "0", "nothing happens before the confirmation");
        let mut confirmed = form.to_vec();
        confirmed.push(("confirmed", "yes"));
        let done = one.post("/ui/emergency", &confirmed).await;
        assert_eq!(done.status, 303, "{}", done.body);
        let id = done.location().trim_start_matches("/ui/retirements/").to_owned();
        assert_eq!(text(&app, &format!("SELECT state FROM retirements WHERE id = {id}")).await, "executing");
        let own = one.post(&format!("/ui/retirements/{id}/approve-erasure"), &[("csrf", csrf.as_str()), ("note", "forensic image taken"), ("understood", "yes")]).await;
        assert_eq!(own.status, 403, "the requester may not approve: {}", own.body);

        let second = app.token("sec-2", "security", None).await;
        let mut two = Console::new(&app.address);
        assert_eq!(two.sign_in(&second).await.status, 303);
        let listed = two.get("/ui/emergency").await;
        assert!(listed.body.contains(RISK) && listed.body.contains("Approve the erasure"), "{}", listed.body);
        let csrf2 = two.csrf().await;
        let unticked = two.post(&format!("/ui/retirements/{id}/approve-erasure"), &[("csrf", csrf2.as_str()), ("note", "forensic image taken")]).await;
        assert_eq!(unticked.status, 422);
        assert_eq!(text(&app, &format!("SELECT state FROM retirements WHERE id = {id}")).await, "executing");
        let approved = two.post(&format!("/ui/retirements/{id}/approve-erasure"), &[("csrf", csrf2.as_str()), ("note", "forensic image taken"), ("understood", "yes")]).await;
        assert_eq!(approved.status, 303, "{}", approved.body);
        assert_eq!(text(&app, &format!("SELECT state FROM retirements WHERE id = {id}")).await, "retired");

        // A false alarm on the other version: lifted before erasure.
        let other = [("csrf", csrf.as_str()), ("model", "fraud"), ("versions", "2.0.0"), ("risk_assessment", RISK), ("confirmed", "yes")];
        let second_cut = one.post("/ui/emergency", &other).await;
        let lift_id = second_cut.location().trim_start_matches("/ui/retirements/").to_owned();
        let lifted = one.post(&format!("/ui/retirements/{lift_id}/lift"), &[("csrf", csrf.as_str()), ("note", "the report was about another model"), ("understood", "yes")]).await;
        assert_eq!(lifted.status, 303, "{}", lifted.body);
        assert!(!one.get("/ui/emergency").await.body.contains(&format!("Retirement #{lift_id}")), "no longer waiting");
        let version = app.gql_ok(&reader, "query { modelVersion(model: \"fraud\", version: \"2.0.0\") { status } }", json!({})).await;
        assert_ne!(version["modelVersion"]["status"], "RETIRED", "served again");
    }
}
