//! Authentication and the role each operation declares.

use crate::support::{Backend, TestApp, error_code, error_message};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Every mutation, with the roles its guard admits. `schema_mutations_are_all_in_the_table`
/// fails when a mutation is added without a row here.
const MUTATIONS: &[(&str, &str, &[&str])] = &[
    (
        "scheduleRetirement",
        "mutation { scheduleRetirement(input: { model: \"m-base\", versions: \"*\", reason: \"superseded\", effectiveAt: \"2099-01-01T00:00:00Z\" }) { id } }",
        &["governance"],
    ),
    (
        "cancelRetirement",
        "mutation { cancelRetirement(id: \"999\", reason: \"no longer needed, plans changed\") { id } }",
        &["governance"],
    ),
    (
        "executeRetirement",
        "mutation { executeRetirement(id: \"999\") { id } }",
        &["governance"],
    ),
    (
        "emergencyRetirement",
        "mutation { emergencyRetirement(model: \"m-base\", versions: \"9.9.9\", riskAssessment: \"weights leak training data on prompt\") { id } }",
        &["security"],
    ),
    (
        "approveEmergencyErasure",
        "mutation { approveEmergencyErasure(id: \"999\", note: \"forensics done\") { id } }",
        &["security", "governance"],
    ),
    (
        "liftKillSwitch",
        "mutation { liftKillSwitch(id: \"999\", justification: \"false alarm\") { id } }",
        &["security"],
    ),
    (
        "confirmPurge",
        "mutation { confirmPurge(id: \"999\", consumer: \"c-none\") { consumer } }",
        &["owner", "admin"],
    ),
    (
        "waivePurge",
        "mutation { waivePurge(id: \"999\", consumer: \"c-none\", justification: \"rebuilt from scratch already\") { consumer } }",
        &["governance"],
    ),
    (
        "postponeRetirement",
        "mutation { postponeRetirement(id: \"999\", effectiveAt: \"2099-06-01T00:00:00Z\", reason: \"more time for everyone\") { id } }",
        &["governance"],
    ),
    (
        "acceptShorterNotice",
        "mutation { acceptShorterNotice(id: \"999\", justification: \"agreed with the late team\") { id } }",
        &["governance"],
    ),
    (
        "overrideDependents",
        "mutation { overrideDependents(id: \"999\", consumers: [\"c-none\"], justification: \"decommissioned anyway\") { consumer } }",
        &["governance"],
    ),
    (
        "requestExtension",
        "mutation { requestExtension(id: \"999\", consumer: \"c-none\", until: \"2099-06-01T00:00:00Z\", reason: \"migration takes longer\") { consumer } }",
        EVERY_ROLE,
    ),
    (
        "decideExtension",
        "mutation { decideExtension(id: \"999\", consumer: \"c-none\", grant: true, note: \"fair enough, granted\") { consumer } }",
        &["governance"],
    ),
    (
        "acknowledgeRetirement",
        "mutation { acknowledgeRetirement(id: \"999\", consumer: \"c-none\") { consumer } }",
        EVERY_ROLE,
    ),
    (
        "createModel",
        "mutation { createModel(input: { name: \"m-x\", ownerTeam: \"team-a\", tier: HIGH }) { name } }",
        &["owner"],
    ),
    (
        "updateModel",
        "mutation { updateModel(name: \"m-base\", input: { description: \"d\" }) { name } }",
        &["owner"],
    ),
    (
        "createVersion",
        "mutation { createVersion(input: { model: \"m-base\", version: \"9.9.9\" }) { version } }",
        &["owner"],
    ),
    (
        "transitionVersion",
        "mutation { transitionVersion(model: \"m-base\", version: \"1.0.0\", to: STAGING) { status } }",
        &["owner", "governance", "security"],
    ),
    (
        "createApiToken",
        "mutation { createApiToken(name: \"t-new\", role: READER) { secret } }",
        &["admin"],
    ),
    (
        "revokeApiToken",
        "mutation { revokeApiToken(name: \"t-victim\") { name } }",
        &["admin"],
    ),
    (
        "createCalendarFeed",
        "mutation { createCalendarFeed(name: \"team calendar\") { url } }",
        &[
            "reader",
            "owner",
            "governance",
            "security",
            "auditor",
            "admin",
        ],
    ),
    (
        "revokeCalendarFeed",
        "mutation { revokeCalendarFeed(id: \"999\") { id } }",
        &[
            "reader",
            "owner",
            "governance",
            "security",
            "auditor",
            "admin",
        ],
    ),
    (
        "signAuditCheckpoint",
        "mutation { signAuditCheckpoint { seq } }",
        &["auditor", "admin"],
    ),
    (
        "addSigner",
        "mutation { addSigner(name: \"s-new\", publicKeyPem: \"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEA8T1jGJj3Zhx1fWQMGGUfQ84cytj1Ypj8tMJSVHydKV4=\\n-----END PUBLIC KEY-----\") { name } }",
        &["admin"],
    ),
    (
        "attestValidation",
        "mutation { attestValidation(model: \"m-base\", version: \"1.0.0\", envelope: \"{}\") { signer } }",
        &["owner", "security", "admin"],
    ),
    (
        "disableSigner",
        "mutation { disableSigner(name: \"s-victim\") { name } }",
        &["admin"],
    ),
    (
        "rollbackModel",
        "mutation { rollbackModel(model: \"m-base\", reason: \"latency regression in 1.1\") { version } }",
        &["owner", "governance", "security"],
    ),
    (
        "declareConsumer",
        "mutation { declareConsumer(input: { name: \"c-new\", kind: SERVICE, ownerTeam: \"team-a\", environment: \"prod\" }) { created } }",
        &["owner", "admin"],
    ),
    (
        "removeConsumer",
        "mutation { removeConsumer(name: \"c-none\") }",
        &["owner", "admin"],
    ),
    (
        "declareUse",
        "mutation { declareUse(consumer: \"c-none\", model: \"m-base\", version: \"^1\") { kind } }",
        &["owner", "admin"],
    ),
    (
        "removeUse",
        "mutation { removeUse(consumer: \"c-none\", model: \"m-base\", version: \"^1\") }",
        &["owner", "admin"],
    ),
    (
        "declareDependency",
        "mutation { declareDependency(consumer: \"c-none\", dependsOn: \"c-other\") { kind } }",
        &["owner", "admin"],
    ),
    (
        "removeDependency",
        "mutation { removeDependency(consumer: \"c-none\", dependsOn: \"c-other\") }",
        &["owner", "admin"],
    ),
    (
        "declareDerivation",
        "mutation { declareDerivation(model: \"m-base\", version: \"1.0.0\", fromModel: \"m-base\", fromVersion: \"1.0.0\") { kind } }",
        &["owner", "admin"],
    ),
    (
        "createWebhookSource",
        "mutation { createWebhookSource(name: \"src-new\") { secret } }",
        &["admin"],
    ),
    (
        "disableWebhookSource",
        "mutation { disableWebhookSource(name: \"src-none\") { name } }",
        &["admin"],
    ),
    (
        "grantRole",
        "mutation { grantRole(input: { model: \"m-base\", role: READER, team: \"team-z\" }) { id } }",
        &["owner", "admin"],
    ),
    (
        "revokeGrant",
        "mutation { revokeGrant(id: \"999\") { id } }",
        &["owner", "admin"],
    ),
    (
        "setModelPolicy",
        "mutation { setModelPolicy(model: \"m-base\", input: { retentionDays: 30 }) { retentionDays } }",
        &["governance"],
    ),
    (
        "acceptRetentionProposal",
        "mutation { acceptRetentionProposal(model: \"m-base\", version: \"1.0.0\") { state } }",
        &["governance"],
    ),
    (
        "dismissRetentionProposal",
        "mutation { dismissRetentionProposal(model: \"m-base\", version: \"1.0.0\", note: \"kept\") { state } }",
        &["governance"],
    ),
    (
        "requestPromotion",
        "mutation { requestPromotion(model: \"m-base\", version: \"1.0.0\", reference: \"CHG-1\") { reference } }",
        &["owner", "security"],
    ),
    (
        "withdrawPromotion",
        "mutation { withdrawPromotion(model: \"m-base\", version: \"1.0.0\") { reference } }",
        &["owner", "security", "governance"],
    ),
    (
        "approvePromotion",
        "mutation { approvePromotion(model: \"m-base\", version: \"1.0.0\") { status } }",
        &["owner"],
    ),
    (
        "requestEmergencyDeployment",
        "mutation { requestEmergencyDeployment(model: \"m-base\", version: \"1.0.0\", riskAssessment: \"an incident that the new version fixes\", validHours: 24) { state } }",
        &["owner", "security"],
    ),
    (
        "approveEmergencyDeployment",
        "mutation { approveEmergencyDeployment(model: \"m-base\", version: \"1.0.0\") { status } }",
        &["security"],
    ),
    (
        "withdrawEmergencyDeployment",
        "mutation { withdrawEmergencyDeployment(model: \"m-base\", version: \"1.0.0\") { state } }",
        &["owner", "security"],
    ),
    (
        "removeDerivation",
        "mutation { removeDerivation(model: \"m-base\", version: \"1.0.0\", fromModel: \"m-base\", fromVersion: \"1.0.0\") }",
        &["owner", "admin"],
    ),
];

const EVERY_ROLE: &[&str] = &ROLES;

const QUERIES: &[(&str, &str, &[&str])] = &[
    ("retirements", "{ retirements { id } }", EVERY_ROLE),
    ("grants", "{ grants(model: \"m-base\") { id } }", EVERY_ROLE),
    (
        "disabledVersions",
        "{ disabledVersions { model } }",
        EVERY_ROLE,
    ),
    (
        "retirement",
        "{ retirement(id: \"999\") { id } }",
        EVERY_ROLE,
    ),
    ("certificates", "{ certificates { id } }", &["auditor"]),
    (
        "certificate",
        "{ certificate(id: \"999\") { id } }",
        &["auditor"],
    ),
    (
        "deadLetters",
        "{ deadLetters { id } }",
        &["governance", "security", "auditor", "admin"],
    ),
    ("signers", "{ signers { name } }", EVERY_ROLE),
    ("me", "{ me { name } }", EVERY_ROLE),
    (
        "models",
        "{ models { edges { node { name } } } }",
        EVERY_ROLE,
    ),
    ("model", "{ model(name: \"m-base\") { name } }", EVERY_ROLE),
    (
        "modelVersion",
        "{ modelVersion(model: \"m-base\", version: \"1.0.0\") { status } }",
        EVERY_ROLE,
    ),
    ("apiTokens", "{ apiTokens { name } }", &["admin"]),
    (
        "auditLog",
        "{ auditLog { edges { node { seq } } } }",
        &["auditor"],
    ),
    ("consumers", "{ consumers { name } }", EVERY_ROLE),
    ("webhookSources", "{ webhookSources { name } }", &["admin"]),
    (
        "consumer",
        "{ consumer(name: \"c-none\") { name } }",
        EVERY_ROLE,
    ),
    (
        "dependents",
        "{ dependents(model: \"m-base\", version: \"1.0.0\") { complete } }",
        EVERY_ROLE,
    ),
    (
        "dependencies",
        "{ dependencies(consumer: \"c-none\") { complete } }",
        EVERY_ROLE,
    ),
    (
        "impact",
        "{ impact(model: \"m-base\", version: \"1.0.0\") { total } }",
        EVERY_ROLE,
    ),
];

const ROLES: [&str; 6] = [
    "reader",
    "owner",
    "governance",
    "security",
    "auditor",
    "admin",
];

fn is_role_refusal(body: &serde_json::Value) -> bool {
    error_code(body) == "FORBIDDEN"
        && (error_message(body).contains("needs the role")
            || error_message(body).contains("needs the auditor role"))
}

async fn post_raw(app: &TestApp, auth: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query }));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("request")
}

#[test]
fn schema_mutations_are_all_in_the_table() {
    let sdl = sunset::graphql::sdl();
    let body = sdl
        .split("type Mutation {")
        .nth(1)
        .and_then(|s| s.split("\n}").next())
        .expect("a Mutation type");
    let in_schema: BTreeSet<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('"') && !l.starts_with('#'))
        .filter_map(|l| l.split(['(', ':']).next())
        .filter(|n| {
            n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && n.chars().all(|c| c.is_ascii_alphanumeric())
        })
        .collect();
    let in_table: BTreeSet<&str> = MUTATIONS.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(in_schema, in_table);
}

on_both_backends! {
    /// Each mutation and query, with each role and with no token.
    async fn every_operation_admits_exactly_its_declared_roles(app) {
        for (name, query, allowed) in MUTATIONS.iter().chain(QUERIES) {
            for role in ROLES {
                // Fresh fixtures per try, so one role's success cannot change what the next sees.
                let owner = app.token(&format!("fx-{name}-{role}").to_lowercase(), "owner", Some("team-a")).await;
                let _ = app.gql(&owner, "mutation { createModel(input: { name: \"m-base\", ownerTeam: \"team-a\", tier: HIGH }) { name } }", json!({})).await;
                let _ = app.gql(&owner, "mutation { createVersion(input: { model: \"m-base\", version: \"1.0.0\" }) { version } }", json!({})).await;
                let _ = app.services.admin().create_token(&sunset::auth::Actor::local_operator(), "t-victim", "reader", None, None).await;

                let token = app.token(&format!("t-{name}-{role}").to_lowercase(), role, (role == "owner").then_some("team-a")).await;
                let body = app.gql(&token, query, json!({})).await;
                if allowed.contains(&role) {
                    assert!(!is_role_refusal(&body), "{name} must admit {role}: {body}");
                } else {
                    assert!(is_role_refusal(&body), "{name} must refuse {role}: {body}");
                    assert!(body["data"].is_null() || body["data"].get(*name).is_none_or(|v| v.is_null()), "{body}");
                }
            }
            let response = post_raw(&app, None, query).await;
            assert_eq!(response.status(), 401, "{name} without a token");
            assert!(response.headers().contains_key("www-authenticate"));
        }
    }
}

/// The mutations that act on one model, where a grant on it sets the role that counts.
const MODEL_SCOPED: &[&str] = &[
    "scheduleRetirement",
    "emergencyRetirement",
    "createModel",
    "updateModel",
    "createVersion",
    "transitionVersion",
    "attestValidation",
    "rollbackModel",
    "grantRole",
    "setModelPolicy",
    "acceptRetentionProposal",
    "dismissRetentionProposal",
    "requestPromotion",
    "withdrawPromotion",
    "approvePromotion",
    "requestEmergencyDeployment",
    "approveEmergencyDeployment",
    "withdrawEmergencyDeployment",
];

on_both_backends! {
    /// A reader granted a role on `m-*` is admitted exactly where that role is, on those
    /// models; the same token is refused on a model the grant does not reach.
    async fn a_grant_on_a_model_admits_exactly_the_granted_roles_there(app) {
        let owner = app.token("fx-owner", "owner", Some("team-a")).await;
        app.gql_ok(&owner, "mutation { createModel(input: { name: \"m-base\", ownerTeam: \"team-a\", tier: HIGH }) { name } }", json!({})).await;
        app.gql_ok(&owner, "mutation { createModel(input: { name: \"other\", ownerTeam: \"team-a\", tier: HIGH }) { name } }", json!({})).await;
        let _ = app.gql(&owner, "mutation { createVersion(input: { model: \"m-base\", version: \"1.0.0\" }) { version } }", json!({})).await;
        for (name, query, allowed) in MUTATIONS.iter().filter(|(n, _, _)| MODEL_SCOPED.contains(n)) {
            for role in ROLES.iter().filter(|r| **r != "admin") {
                let token_name = format!("g-{name}-{role}").to_lowercase();
                let token = app.token(&token_name, "reader", None).await;
                app.gql_ok(&app.admin, "mutation($t: String!, $r: Role!) { grantRole(input: { model: \"m-*\", role: $r, token: $t }) { id } }", json!({ "t": token_name, "r": role.to_uppercase() })).await;
                let body = app.gql(&token, query, json!({})).await;
                if allowed.contains(role) {
                    assert!(!is_role_refusal(&body), "{name} must admit a reader granted {role}: {body}");
                } else {
                    assert!(is_role_refusal(&body), "{name} must refuse a reader granted {role}: {body}");
                }
                let elsewhere = query.replace("m-base", "other").replace("m-x", "x-other");
                let body = app.gql(&token, &elsewhere, json!({})).await;
                assert!(is_role_refusal(&body), "{name} on a model the grant does not reach: {body}");
            }
        }
    }
}

on_both_backends! {
    async fn unknown_malformed_and_revoked_tokens_are_refused(app) {
        let query = "{ me { name } }";
        for header in ["Bearer sunset_notatoken", "Basic dXNlcjpwYXNz", "Bearer", &format!("Bearer {}", "x".repeat(10_000))] {
            let response = post_raw(&app, Some(header), query).await;
            assert_eq!(response.status(), 401, "{header:.40}");
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
        }
        let token = app.token("soon-revoked", "reader", None).await;
        assert_eq!(app.gql_ok(&token, query, json!({})).await["me"]["name"], "soon-revoked");
        app.gql_ok(&app.admin, "mutation { revokeApiToken(name: \"soon-revoked\") { revokedAt } }", json!({})).await;
        assert_eq!(post_raw(&app, Some(&format!("Bearer {token}")), query).await.status(), 401);
        let body = app.gql(&app.admin, "mutation { revokeApiToken(name: \"soon-revoked\") { name } }", json!({})).await;
        assert_eq!(error_code(&body), "CONFLICT");
        let body = app.gql(&app.admin, "mutation { createApiToken(name: \"soon-revoked\", role: READER) { secret } }", json!({})).await;
        assert_eq!(error_code(&body), "CONFLICT", "names are never reused: {body}");
        let body = app.gql(&app.admin, "mutation { createApiToken(name: \"teamless\", role: OWNER) { secret } }", json!({})).await;
        assert_eq!(error_code(&body), "VALIDATION", "an owner token needs a team: {body}");
    }
}

on_both_backends! {
    async fn only_health_checks_and_the_graphiql_page_answer_without_a_token(app) {
        for path in ["/healthz", "/readyz", "/graphql"] {
            let r = app.client.get(format!("{}{path}", app.address)).send().await.expect("get");
            assert_eq!(r.status(), 200, "{path}");
        }
        let r = app.client.get(format!("{}/v1/audit/export", app.address)).send().await.expect("get");
        assert_eq!(r.status(), 401);
    }
}

on_both_backends! {
    async fn oversized_bodies_and_overly_deep_queries_are_refused(app) {
        // Announce 2 MiB and send none of it: the limit must act on the declared length,
        // before reading, which is also what makes this test deterministic.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = app.address.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(host).await.expect("connect");
        let request = format!("POST /graphql HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", app.admin, 2 * 1024 * 1024);
        socket.write_all(request.as_bytes()).await.expect("write");
        let mut head = [0u8; 12];
        socket.read_exact(&mut head).await.expect("read");
        assert_eq!(&head, b"HTTP/1.1 413");

        let nested = format!("{{ __schema {{ types {{ fields {{ type {} {{ name }} {} }} }} }} }}", "{ ofType ".repeat(20), "} ".repeat(20));
        let body = app.gql(&app.admin, &nested, json!({})).await;
        assert!(body["errors"][0]["message"].as_str().unwrap_or("").to_lowercase().contains("nested too deep"), "{body}");
    }
}

/// A request that never finishes sending holds its slot: past `http.max_concurrent_requests`
/// the next is answered 503 with `Retry-After` at once (health checks still answer), and
/// the stalled one is cut at `http.request_timeout_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_concurrency_cap_are_refused_and_a_stalled_one_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        std::sync::Arc::new(sunset::clock::SystemClock),
        |s| {
            s.http.max_concurrent_requests = 1;
            s.http.request_timeout_secs = 1;
        },
    )
    .await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.admin
    );
    stalled.write_all(head.as_bytes()).await.expect("write");

    // Until the stalled request is refused, every other request meets a full replica.
    let mut refused = None;
    for _ in 0..200 {
        let r = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&app.admin)
            .json(&json!({ "query": "{ me { name } }" }))
            .send()
            .await
            .expect("post");
        if r.status() == 503 {
            refused = Some(r);
            break;
        }
        tokio::task::yield_now().await;
    }
    let refused = refused.expect("refused while the slot is held");
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(health.status(), 200);

    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stalled.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the stalled request was cut");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("TIMEOUT"), "{answer}");
    let after = app.gql_ok(&app.admin, "{ me { name } }", json!({})).await;
    assert_eq!(after["me"]["name"], "test-admin", "the slot is free again");
}
