//! Signing in to the console: a token exchanged for a session cookie, sessions that end
//! on every replica, and the forged or stale forms that must open nothing.

use super::Console;
use sea_orm::{ConnectionTrait, Statement};
use sha2::Digest;

/// Every row of one text column.
async fn column(app: &crate::support::TestApp, sql: &str) -> Vec<String> {
    let db = app.services.store().reader();
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

on_both_backends! {
    /// A reader signs in with a token and gets an HttpOnly, SameSite=Strict session
    /// cookie that opens the console on every replica; the database holds its hash only;
    /// sign-in and sign-out are audited, and after sign-out no replica accepts the cookie.
    async fn a_token_opens_a_session_that_signing_out_ends_on_every_replica(app) {
        let token = app.token("ana", "reader", None).await;
        let mut console = Console::new(&app.address);
        let asked = console.get("/ui/models?q=fraud").await;
        assert_eq!(asked.status, 303);
        assert_eq!(asked.location(), "/ui/sign-in?next=%2Fui%2Fmodels%3Fq%3Dfraud");

        let signed = console.sign_in(&token).await;
        assert_eq!(signed.status, 303, "{}", signed.body);
        assert_eq!(signed.location(), "/ui/models");
        let cookie = signed.set_cookie("sunset_session").expect("a session cookie");
        for part in ["Path=/ui", "HttpOnly", "SameSite=Strict", "Max-Age=28800"] {
            assert!(cookie.contains(part), "{part} in {cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP on loopback: {cookie}");
        let secret = console.session.clone().expect("session");
        assert!(!cookie.contains(&token) && !signed.location().contains(&token));

        let stored = column(&app, "SELECT secret_sha256 FROM console_sessions").await;
        assert_eq!(stored, vec![hex::encode(sha2::Sha256::digest(secret.as_bytes()))]);
        let page = console.get("/ui/models").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("ana") && page.body.contains("(reader)"), "{}", page.body);

        let sibling = app.spawn_sibling().await;
        let mut there = Console::new(&sibling.address);
        there.session = Some(secret.clone());
        assert_eq!(there.get("/ui/models").await.status, 200, "any replica knows the session");

        let forged = console.post("/ui/sign-out", &[("csrf", "0".repeat(64).as_str())]).await;
        assert_eq!(forged.status, 403, "a sign-out without the session's CSRF token");
        assert_eq!(there.get("/ui/models").await.status, 200, "is refused and ends nothing");
        let csrf = console.csrf().await;
        let out = console.post("/ui/sign-out", &[("csrf", &csrf)]).await;
        assert_eq!(out.status, 303);
        assert!(out.set_cookie("sunset_session").expect("cleared").contains("Max-Age=0"));
        let after = there.get("/ui/models").await;
        assert_eq!(after.status, 303, "the ended session opens nothing on the other replica");
        assert!(after.location().starts_with("/ui/sign-in"));

        let actions = column(&app, "SELECT action FROM audit_records WHERE action LIKE 'console.%' ORDER BY seq").await;
        assert_eq!(actions, ["console.signed_in", "console.signed_out"]);
        let records = column(&app, "SELECT COALESCE(after_state, '') || COALESCE(before_state, '') FROM audit_records").await;
        assert!(records.iter().all(|r| !r.contains(&secret) && !r.contains(&token)), "no secret audited");
    }
}

on_both_backends! {
    /// A wrong token, a sign-in form posted without its nonce cookie (login CSRF) or
    /// with another's, and a redirect to another site: no session, no cookie, no row.
    async fn wrong_tokens_and_forged_sign_ins_open_nothing(app) {
        let token = app.token("ben", "governance", None).await;
        let mut console = Console::new(&app.address);
        let wrong = console.sign_in("sst_not-a-token").await;
        assert_eq!(wrong.status, 401);
        assert!(wrong.body.contains("unknown or revoked"), "{}", wrong.body);
        assert!(!wrong.body.contains("sst_not-a-token"), "the token is not echoed");
        assert!(wrong.set_cookie("sunset_session").is_none());

        let form = console.get("/ui/sign-in").await;
        let nonce = form.field("csrf");
        let without_cookie = console
            .post("/ui/sign-in", &[("token", token.as_str()), ("csrf", &nonce), ("next", "/ui/models")])
            .await;
        assert_eq!(without_cookie.status, 403, "{}", without_cookie.body);
        let other_cookie = console
            .post_with(
                "/ui/sign-in",
                &[("token", token.as_str()), ("csrf", &nonce), ("next", "/ui/models")],
                &["sunset_signin=another".to_owned()],
            )
            .await;
        assert_eq!(other_cookie.status, 403);
        assert!(other_cookie.set_cookie("sunset_session").is_none());
        assert!(column(&app, "SELECT token_name FROM console_sessions").await.is_empty());

        // A session of a revoked token ends with it.
        assert_eq!(console.sign_in(&token).await.status, 303);
        assert_eq!(console.get("/ui/models").await.status, 200);
        app.services.admin().revoke_token(&sunset::auth::Actor::local_operator(), "ben").await.expect("revoked");
        assert_eq!(console.get("/ui/models").await.status, 303, "revoking the token ends its sessions");
    }
}

on_both_backends! {
    /// A session lasts `http.console_session_hours` (8) from sign-in, then opens nothing.
    async fn a_session_expires_after_a_working_day(w: crate::support::Clocked = crate::support::clocked) {
        let token = w.app.token("cy", "auditor", None).await;
        let mut console = Console::new(&w.app.address);
        assert_eq!(console.sign_in(&token).await.status, 303);
        w.clock.set(w.start + chrono::Duration::hours(8) - chrono::Duration::seconds(1));
        assert_eq!(console.get("/ui/models").await.status, 200);
        w.clock.set(w.start + chrono::Duration::hours(8));
        assert_eq!(console.get("/ui/models").await.status, 303, "expired");
        let posted = console.post("/ui/sign-out", &[("csrf", "x")]).await;
        assert_eq!(posted.status, 401, "a form posted with an expired session is refused");
    }
}
