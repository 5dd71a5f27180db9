//! Deciding on a retirement from the console: a dependent's owner asks for more time
//! from its consumer page, governance grants it, postpones, overrides and executes from
//! the retirement's page, and sees the decommission's timeline; a reader sees none of
//! the forms and is refused when posting them; bad decisions come back on the page and
//! change nothing.

use super::{Console, count};
use crate::retirements::{World, accept_webhooks, scheduled, t0, uploaded_and_ready};
use chrono::Duration;
use serde_json::json;

async fn world(backend: crate::support::Backend) -> World {
    crate::retirements::world_with(backend, |_| {}).await
}

fn minute(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M").to_string()
}

async fn state_of(w: &World, id: &str) -> String {
    w.app
        .gql_ok(
            &w.governance,
            "query($id: ID!) { retirement(id: $id) { state } }",
            json!({ "id": id }),
        )
        .await["retirement"]["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

async fn signed_in(w: &World, token: &str) -> (Console, String) {
    let mut console = Console::new(&w.app.address);
    assert_eq!(console.sign_in(token).await.status, 303);
    let csrf = console.csrf().await;
    (console, csrf)
}

on_both_backends! {
    async fn an_owner_asks_for_time_and_governance_decides_from_the_pages(w: World = world) {
        accept_webhooks(&w).await;
        let effective = t0() + Duration::days(30);
        let id = scheduled(&w, effective).await;
        let page = format!("/ui/retirements/{id}");

        // checkout's owner sees the retirement on checkout's page and asks for more time.
        let owner = w.app.token("pay-owner", "owner", Some("payments")).await;
        let (payments, csrf) = signed_in(&w, &owner).await;
        let checkout = payments.get("/ui/consumers/checkout").await;
        assert_eq!(checkout.status, 200, "{}", checkout.body);
        assert!(checkout.body.contains("Retirements affecting it (1)"), "{}", checkout.body);
        assert!(checkout.body.contains(&format!("aria-label=\"Acknowledge retirement {id}\"")));
        assert!(checkout.body.contains("fraud@2.0.0") && checkout.body.contains("fraud@2.1.0"), "its dependencies: {}", checkout.body);
        let until = minute(t0() + Duration::days(60));
        let asked = payments.post("/ui/consumers/checkout/more-time", &[("csrf", &csrf), ("retirement", &id), ("until", &until), ("reason", "the replacement needs a load test")]).await;
        assert_eq!(asked.status, 303, "{}", asked.body);
        assert!(payments.get("/ui/consumers/checkout").await.body.contains("requested"));
        // Not its consumer: billing belongs to finance.
        assert!(!payments.get("/ui/consumers/billing").await.body.contains("Acknowledge retirement"));
        let refused = payments.post("/ui/consumers/billing/acknowledge", &[("csrf", &csrf), ("retirement", &id)]).await;
        assert_eq!(refused.status, 403, "{}", refused.body);

        // A reader sees the page without a form, and every decision posted directly is refused.
        let reader = w.app.token("rita", "reader", None).await;
        let (rita, rita_csrf) = signed_in(&w, &reader).await;
        let seen = rita.get(&page).await;
        assert!(seen.body.contains("Requests for more time (1)"), "{}", seen.body);
        for form in ["/extensions", "/postpone", "/override", "/execute", "/accept-shorter-notice"] {
            assert!(!seen.body.contains(&format!("action=\"{page}{form}\"")), "{form} offered to a reader");
        }
        let later = minute(t0() + Duration::days(90));
        for (path, form) in [
            // Well-formed decisions: the use cases check the input before the role.
            ("/extensions", vec![("consumer", "checkout"), ("decision", "grant"), ("note", "fine by me, go ahead")]),
            ("/postpone", vec![("effective_at", later.as_str()), ("reason", "later is better for all")]),
            ("/override", vec![("consumers", "billing"), ("justification", "billing was shut down")]),
            ("/execute", vec![("understood", "yes")]),
        ] {
            let mut form = form;
            form.push(("csrf", &rita_csrf));
            let answer = rita.post(&format!("{page}{path}"), &form).await;
            assert_eq!(answer.status, 403, "{path}: {}", answer.body);
        }
        assert_eq!(state_of(&w, &id).await, "SCHEDULED");

        // Governance grants the request: checkout's notice now ends after the effective
        // date, so the retirement needs a decision, and the page offers it.
        let (gov, gov_csrf) = signed_in(&w, &w.governance).await;
        let granted = gov.post(&format!("{page}/extensions"), &[("csrf", &gov_csrf), ("consumer", "checkout"), ("decision", "grant"), ("note", "take the time")]).await;
        assert_eq!(granted.status, 303, "{}", granted.body);
        let decided = gov.get(&page).await;
        assert!(decided.body.contains("granted"), "{}", decided.body);
        assert_eq!(state_of(&w, &id).await, "NEEDS_DECISION");
        assert!(decided.body.contains(&format!("action=\"{page}/accept-shorter-notice\"")));

        // A postponement to an earlier date comes back on the page and changes nothing.
        let earlier = minute(t0() + Duration::days(20));
        let wrong = gov.post(&format!("{page}/postpone"), &[("csrf", &gov_csrf), ("effective_at", &earlier), ("reason", "sooner is better")]).await;
        assert_eq!(wrong.status, 422, "{}", wrong.body);
        assert!(wrong.body.contains("postponing moves the date later"), "{}", wrong.body);
        let typo = gov.post(&format!("{page}/postpone"), &[("csrf", &gov_csrf), ("effective_at", "soon"), ("reason", "sooner is better")]).await;
        assert_eq!(typo.status, 422);
        assert!(typo.body.contains("YYYY-MM-DDTHH:MM"));
        assert_eq!(state_of(&w, &id).await, "NEEDS_DECISION");

        let after_grant = minute(t0() + Duration::days(61));
        let postponed = gov.post(&format!("{page}/postpone"), &[("csrf", &gov_csrf), ("effective_at", &after_grant), ("reason", "checkout's load test")]).await;
        assert_eq!(postponed.status, 303, "{}", postponed.body);
        assert_eq!(state_of(&w, &id).await, "SCHEDULED");
        let effective_now = w.app.gql_ok(&w.governance, "query($id: ID!) { retirement(id: $id) { effectiveAt } }", json!({ "id": id })).await;
        assert!(effective_now["retirement"]["effectiveAt"].as_str().expect("date").starts_with(&after_grant[..10]));

        // An override naming someone who is not a dependent changes nobody.
        let unknown = gov.post(&format!("{page}/override"), &[("csrf", &gov_csrf), ("consumers", "billing\nnobody"), ("justification", "decommissioned last year")]).await;
        assert_eq!(unknown.status, 422, "{}", unknown.body);
        assert!(unknown.body.contains("nobody is not a dependent"), "{}", unknown.body);
        assert!(!unknown.body.contains("overridden by"));
        let overridden = gov.post(&format!("{page}/override"), &[("csrf", &gov_csrf), ("consumers", "billing"), ("justification", "decommissioned last year")]).await;
        assert_eq!(overridden.status, 303);
        assert!(gov.get(&page).await.body.contains("overridden by gov"));

        // Not ready: executing needs the box ticked, then is refused by the state machine.
        let unticked = gov.post(&format!("{page}/execute"), &[("csrf", &gov_csrf)]).await;
        assert_eq!(unticked.status, 422);
        assert!(unticked.body.contains("tick the box"));
        let early = gov.post(&format!("{page}/execute"), &[("csrf", &gov_csrf), ("understood", "yes")]).await;
        assert_eq!(early.status, 422, "{}", early.body);
        assert_eq!(state_of(&w, &id).await, "SCHEDULED");

        // The decisions are the use cases' own audit records, by the governance token.
        for action in ["retirement.extension_decided", "retirement.postponed", "retirement.dependent_overridden"] {
            let sql = format!("SELECT COUNT(*) FROM audit_records WHERE action = '{action}' AND actor = 'gov'");
            assert_eq!(count(&w.app, &sql).await, 1, "{action}");
        }
        let by_owner = "SELECT COUNT(*) FROM audit_records WHERE action = 'retirement.extension_requested' AND actor = 'pay-owner'";
        assert_eq!(count(&w.app, by_owner).await, 1);
    }
}

on_both_backends! {
    async fn governance_executes_a_ready_retirement_and_reads_its_timeline(w: World = world) {
        accept_webhooks(&w).await;
        let (id, _) = uploaded_and_ready(&w).await;
        let page = format!("/ui/retirements/{id}");
        let (gov, csrf) = signed_in(&w, &w.governance).await;
        let before = gov.get(&page).await;
        assert!(before.body.contains("Execute this retirement"), "{}", before.body);
        assert!(before.body.contains("this cannot be undone"));
        assert!(before.body.contains("kill-switch</strong>: not started"), "{}", before.body);

        let executed = gov.post(&format!("{page}/execute"), &[("csrf", &csrf), ("understood", "yes")]).await;
        assert_eq!(executed.status, 303, "{}", executed.body);
        assert_eq!(state_of(&w, &id).await, "RETIRED");
        let after = gov.get(&page).await;
        assert!(after.body.contains("kill-switch</strong>: done"), "{}", after.body);
        assert!(after.body.contains("2 version(s) disabled: 2.0.0, 2.1.0"));
        assert!(after.body.contains("certificate</strong>: done"), "{}", after.body);
        assert!(!after.body.contains("destruction certificate"), "certificates are the auditors'");
        assert!(!after.body.contains("Execute this retirement"), "nothing left to execute");
        let auditor = w.app.token("audrey", "auditor", None).await;
        let (audrey, _) = signed_in(&w, &auditor).await;
        let seen = audrey.get(&page).await;
        assert!(seen.body.contains("destruction certificate"), "{}", seen.body);
        assert!(!seen.body.contains("action=\"/ui/retirements/"), "an auditor decides nothing");
    }
}
