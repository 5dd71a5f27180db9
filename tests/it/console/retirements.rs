//! Retirements from the console: preview then schedule as governance; a reader sees no
//! form and is refused when posting one directly; bad input comes back on the form.

use super::{Console, count};
use serde_json::json;

fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

on_both_backends! {
    /// Governance previews a retirement of base@1.0.0 (the three consumers that would be
    /// told, the earliest date the tier allows, a date too early flagged), schedules it
    /// from the preview, and reads it back with its dependents; the audit record names
    /// the governance token.
    async fn governance_previews_then_schedules_a_retirement(app) {
        let (ml, _) = crate::inventory::landscape(&app).await;
        let gov = app.token("gov", "governance", None).await;
        let mut console = Console::new(&app.address);
        assert_eq!(console.sign_in(&gov).await.status, 303);
        let list = console.get("/ui/retirements").await;
        assert!(list.body.contains("href=\"/ui/retirements/new\""), "governance sees the form's link");
        let csrf = console.csrf().await;
        let effective = in_days(200);
        let mut form = vec![("csrf", csrf.as_str()), ("model", "base"), ("versions", "1.0.0"), ("reason", "superseded by base 2"), ("effective_at", effective.as_str()), ("replacement_model", "base"), ("replacement_version", "2.0.0")];
        let preview = console.post("/ui/retirements/preview", &form).await;
        assert_eq!(preview.status, 200, "{}", preview.body);
        for told in ["<td>checkout</td>", "<td>search</td>", "<td>frontend</td>"] {
            assert!(preview.body.contains(told), "{told} in the preview: {}", preview.body);
        }
        assert!(preview.body.contains("Earliest effective date"));
        assert!(!preview.body.contains("would be refused"));
        assert_eq!(count(&app, "SELECT COUNT(*) FROM retirements").await, 0, "a preview writes nothing");

        let early = in_days(1);
        form[4] = ("effective_at", early.as_str());
        let flagged = console.post("/ui/retirements/preview", &form).await;
        assert!(flagged.body.contains("would be refused"), "{}", flagged.body);
        form[4] = ("effective_at", effective.as_str());

        let scheduled = console.post("/ui/retirements", &form).await;
        assert_eq!(scheduled.status, 303, "{}", scheduled.body);
        let page = console.get(scheduled.location()).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Dependents (3)") && page.body.contains("scheduled"), "{}", page.body);
        let api = app.gql_ok(&ml, "query { retirements { model state dependents { consumer } } }", json!({})).await;
        assert_eq!(api["retirements"][0]["model"], "base");
        assert_eq!(api["retirements"][0]["dependents"].as_array().map(Vec::len), Some(3));
        assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_records WHERE action = 'retirement.scheduled' AND actor = 'gov'").await, 1);

        let cancel_csrf = console.csrf().await;
        let cancelled = console.post(&format!("{}/cancel", scheduled.location()), &[("csrf", cancel_csrf.as_str()), ("reason", "kept after all")]).await;
        assert_eq!(cancelled.status, 303);
        assert!(console.get(scheduled.location()).await.body.contains("cancelled"));
    }
}

on_both_backends! {
    /// A reader sees no schedule form or link, and a schedule form posted directly
    /// (with the reader's own valid CSRF token) is refused, recorded, and writes nothing.
    async fn a_reader_cannot_schedule_even_by_posting_the_form(app) {
        crate::inventory::landscape(&app).await;
        let reader = app.token("rita", "reader", None).await;
        let mut console = Console::new(&app.address);
        assert_eq!(console.sign_in(&reader).await.status, 303);
        assert!(!console.get("/ui/retirements").await.body.contains("/ui/retirements/new"));
        assert_eq!(console.get("/ui/retirements/new").await.status, 403);
        let csrf = console.csrf().await;
        let effective = in_days(200);
        let form = [("csrf", csrf.as_str()), ("model", "base"), ("versions", "1.0.0"), ("reason", "r"), ("effective_at", effective.as_str())];
        for path in ["/ui/retirements/preview", "/ui/retirements"] {
            let refused = console.post(path, &form).await;
            assert_eq!(refused.status, 403, "{path}: {}", refused.body);
            assert!(refused.body.contains("role reader may not"), "{}", refused.body);
        }
        assert_eq!(count(&app, "SELECT COUNT(*) FROM retirements").await, 0);
        assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_records WHERE action = 'access.refused' AND actor = 'rita'").await, 3, "the form asked for and both posts");
    }
}

on_both_backends! {
    /// A date that is not one, an unknown model and a missing reason come back on the
    /// form with what was typed and the reason, and write nothing.
    async fn bad_schedule_forms_come_back_with_the_reason(app) {
        crate::inventory::landscape(&app).await;
        let gov = app.token("gov", "governance", None).await;
        let mut console = Console::new(&app.address);
        assert_eq!(console.sign_in(&gov).await.status, 303);
        let csrf = console.csrf().await;
        let effective = in_days(200);
        for (model, reason, when, says) in [
            ("base", "r", "next tuesday", "YYYY-MM-DDTHH:MM"),
            ("no-such-model", "r", effective.as_str(), "no-such-model"),
            ("base", "", effective.as_str(), "reason"),
        ] {
            let form = [("csrf", csrf.as_str()), ("model", model), ("versions", "1.0.0"), ("reason", reason), ("effective_at", when)];
            let answer = console.post("/ui/retirements", &form).await;
            assert_eq!(answer.status, 422, "{model} {when}: {}", answer.body);
            assert!(answer.body.contains(says), "{says} in {}", answer.body);
            assert!(answer.body.contains(&format!("value=\"{model}\"")), "what was typed stays");
        }
        assert_eq!(count(&app, "SELECT COUNT(*) FROM retirements").await, 0);
    }
}
