//! Retirements end to end: scheduling walks the graph and notifies every dependent
//! through real receivers (wiremock servers that check each Standard Webhooks signature,
//! an in-process SMTP server); acknowledgement links; retries, dead letters, escalation
//! and 410 Gone; new dependents and reminders under an injected clock.

use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use notifiers::testing::{ReceivedMail, smtp_sink};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use sunset::auth::Actor;
use sunset::clock::ManualClock;
use sunset::service::{ConsumerInput, EdgeSpec};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub(crate) mod decommission;
mod levers;
mod restore;

pub(crate) const PUBLIC_URL: &str = "https://sunset.test";

pub(crate) fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// Mails received so far (the SMTP server has them before it answers the sender).
pub(crate) fn mails(rx: &Receiver<ReceivedMail>) -> Vec<ReceivedMail> {
    rx.try_iter().collect()
}

/// Matches requests whose Standard Webhooks signature verifies under `secret` at the
/// injected time `now`.
struct SignedWith {
    secret: String,
    clock: Arc<ManualClock>,
}

/// The receiver's check for checkout, the one consumer with a webhook: every delivery
/// must verify under its secret, at the injected time.
fn signed(w: &World) -> SignedWith {
    SignedWith {
        secret: w.checkout_secret.clone(),
        clock: w.clock.clone(),
    }
}

impl wiremock::Match for SignedWith {
    fn matches(&self, request: &Request) -> bool {
        use notifiers::standard_webhooks::{Headers, Message, Secret};
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let headers = Headers {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
        };
        let secret = Secret::parse(&self.secret).expect("a whsec secret");
        Message::parse(&headers, sunset::clock::Clock::now(&*self.clock), 300)
            .is_ok_and(|m| m.verify(&secret, &request.body))
    }
}

pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) mail: Receiver<ReceivedMail>,
    pub(crate) governance: String,
    pub(crate) receiver: MockServer,
    /// checkout's notice-webhook secret.
    checkout_secret: String,
}

/// fraud (high tier: 30 days' notice) at 2.0.0, 2.1.0 and 3.0.0; `checkout` uses ^2
/// and takes webhooks and email; `billing` depends on checkout (email only);
/// `analytics` uses 3.0.0, which is not retired.
async fn world(backend: Backend) -> World {
    world_with(backend, |_| {}).await
}

pub(crate) async fn world_with(
    backend: Backend,
    adjust: impl FnOnce(&mut sunset::config::Settings),
) -> World {
    let clock = Arc::new(ManualClock::new(t0()));
    let (port, mail) = smtp_sink().await.expect("an SMTP server");
    let app = TestApp::spawn_with(backend, clock.clone(), |s| {
        // The tests drive delivery and checks themselves, at the injected time.
        s.notifications.deliver = false;
        s.retirement.check_schedule = "0 0 0 1 1 * 2099".into();
        s.notifications.public_url = Some(PUBLIC_URL.into());
        s.notifications.governance_contacts = vec!["governance@example.org".into()];
        s.notifications.smtp = Some(toml_smtp(port));
        s.retirement.watch_inventory = false;
        adjust(s);
    })
    .await;
    let owner = app.token("ml-owner", "owner", Some("ml")).await;
    app.create_model(&owner, "fraud", "ml").await;
    for v in ["2.0.0", "2.1.0", "3.0.0"] {
        app.gql_ok(
            &owner,
            "mutation($m: String!, $v: String!) { createVersion(input: { model: $m, version: $v }) { version } }",
            json!({ "m": "fraud", "v": v }),
        )
        .await;
    }
    let receiver = MockServer::start().await;
    let admin = Actor::local_operator();
    let s = &app.services;
    let checkout = s
        .inventory()
        .declare_consumer(
            &admin,
            ConsumerInput {
                name: "checkout".into(),
                kind: "service".into(),
                owner_team: "payments".into(),
                environment: "prod".into(),
                contacts: vec!["payments@example.org".into()],
                webhook_url: Some(format!("{}/checkout", receiver.uri())),
            },
        )
        .await
        .expect("checkout");
    for (name, contacts) in [
        ("billing", vec!["billing@example.org".to_owned()]),
        ("analytics", vec!["bi@example.org".to_owned()]),
    ] {
        s.inventory()
            .declare_consumer(
                &admin,
                ConsumerInput {
                    name: name.into(),
                    kind: "service".into(),
                    owner_team: "finance".into(),
                    environment: "prod".into(),
                    contacts,
                    webhook_url: None,
                },
            )
            .await
            .expect("consumer");
    }
    let uses = |c: &str, v: &str| EdgeSpec::Uses {
        consumer: c.into(),
        model: "fraud".into(),
        version: v.into(),
    };
    s.inventory()
        .declare_edge(&admin, uses("checkout", "^2"))
        .await
        .expect("edge");
    s.inventory()
        .declare_edge(&admin, uses("analytics", "3.0.0"))
        .await
        .expect("edge");
    s.inventory()
        .declare_edge(
            &admin,
            EdgeSpec::DependsOn {
                consumer: "billing".into(),
                target: "checkout".into(),
            },
        )
        .await
        .expect("edge");
    let governance = app.token("gov", "governance", None).await;
    World {
        app,
        clock,
        mail,
        governance,
        receiver,
        checkout_secret: checkout.webhook_secret.expect("a secret, shown once"),
    }
}

pub(crate) fn toml_smtp(port: u16) -> sunset::config::SmtpConfig {
    sunset::config::SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: notifiers::email::Security::Plain,
        username: None,
        password: None,
        from: "sunset <sunset@example.org>".into(),
        timeout_secs: 5,
    }
}

const SCHEDULE: &str = "mutation($i: ScheduleRetirementInput!) { scheduleRetirement(input: $i) { id state versions affectedVersions effectiveAt } }";
const DETAIL: &str = "query($id: ID!) { retirement(id: $id) { state sequence noticeSummary { total pending delivered dead } dependents { consumer foundBy path noticeEndsAt nextReminderAt lastTrafficAt notifiedAt acknowledgedAt acknowledgedBy deliveries { id kind channel state attempts lastError } } } }";

async fn schedule(w: &World, effective: DateTime<Utc>) -> Value {
    w.app
        .gql(
            &w.governance,
            SCHEDULE,
            json!({ "i": {
                "model": "fraud", "versions": "^2", "reason": "superseded by 3.0",
                "effectiveAt": effective.to_rfc3339(),
                "replacementModel": "fraud", "replacementVersion": "3.0.0",
            }}),
        )
        .await
}

async fn detail(w: &World, id: &str) -> Value {
    w.app
        .gql_ok(&w.governance, DETAIL, json!({ "id": id }))
        .await["retirement"]
        .clone()
}

fn dependent<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["dependents"]
        .as_array()
        .expect("dependents")
        .iter()
        .find(|d| d["consumer"] == name)
        .unwrap_or_else(|| panic!("{name} among {detail:#}"))
}

/// checkout's receiver takes every correctly signed notice.
pub(crate) async fn accept_webhooks(w: &World) {
    Mock::given(method("POST"))
        .and(signed(w))
        .respond_with(ResponseTemplate::new(204))
        .mount(&w.receiver)
        .await;
}

/// Declares, as the local operator, that `consumer` uses `model` at `version`.
async fn declare_use(w: &World, consumer: &str, model: &str, version: &str) {
    let edge = EdgeSpec::Uses {
        consumer: consumer.into(),
        model: model.into(),
        version: version.into(),
    };
    w.app
        .services
        .inventory()
        .declare_edge(&Actor::local_operator(), edge)
        .await
        .expect("edge");
}

/// The acknowledgement link of the first webhook notice received, on this test's address.
async fn first_notice_link(w: &World) -> String {
    let got = w.receiver.received_requests().await.expect("requests");
    let body: Value = serde_json::from_slice(&got[0].body).expect("json");
    body["data"]["acknowledgeUrl"]
        .as_str()
        .expect("link")
        .replace(PUBLIC_URL, &w.app.address)
}

/// Schedules the retirement of fraud ^2 at `effective`; returns its id.
pub(crate) async fn scheduled(w: &World, effective: DateTime<Utc>) -> String {
    schedule(w, effective).await["data"]["scheduleRetirement"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// One pass of the delivery worker, at the injected time.
pub(crate) async fn deliver(w: &World) -> sunset::service::DeliveryReport {
    w.app
        .services
        .retirements()
        .deliver_due_notices()
        .await
        .expect("delivery")
}

/// One look at pending retirements, at the injected time.
async fn check(w: &World) -> sunset::service::CheckReport {
    w.app
        .services
        .retirements()
        .check_retirements(sunset::domain::FoundBy::GraphChange)
        .await
        .expect("check")
}

on_both_backends! {
    async fn scheduling_notifies_every_transitive_dependent_by_signed_webhook_and_email(w: World = world) {
        too_early_or_by_another_role_writes_nothing(&w).await;

        Mock::given(method("POST"))
            .and(path("/checkout"))
            .and(signed(&w))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&w.receiver)
            .await;
        let effective = t0() + Duration::days(30);
        let done = schedule(&w, effective).await;
        assert!(done.get("errors").is_none(), "{done:#}");
        let r = &done["data"]["scheduleRetirement"];
        assert_eq!(r["state"], "SCHEDULED");
        assert_eq!(r["affectedVersions"], json!(["2.0.0", "2.1.0"]));
        let id = r["id"].as_str().expect("id").to_owned();

        // Written in the scheduling transaction, sent by the worker.
        let before = detail(&w, &id).await;
        assert_eq!(before["noticeSummary"]["pending"], 3, "{before:#}");
        let report = deliver(&w).await;
        assert_eq!((report.delivered, report.dead), (3, 0), "{report:?}");

        // The webhook: signed with checkout's own secret, the notice id as webhook-id.
        let got = w.receiver.received_requests().await.expect("requests");
        assert_eq!(got.len(), 1);
        let body: Value = serde_json::from_slice(&got[0].body).expect("json");
        assert_eq!(body["type"], "model.retirement.scheduled");
        assert_eq!(body["data"]["dependent"], "checkout");
        assert_eq!(body["data"]["versions"], "^2");
        assert_eq!(body["data"]["replacement"]["version"], "3.0.0");
        assert_eq!(
            got[0].headers["webhook-id"],
            body["data"]["noticeId"].as_str().expect("id")
        );
        let ack = body["data"]["acknowledgeUrl"].as_str().expect("link");
        assert!(
            ack.starts_with("https://sunset.test/v1/acknowledgements/v1."),
            "{ack}"
        );

        // Email to both dependents' contacts, the transitive one included.
        let mut to: Vec<String> = mails(&w.mail).into_iter().flat_map(|m| m.to).collect();
        to.sort();
        assert_eq!(to, ["billing@example.org", "payments@example.org"]);

        let after = detail(&w, &id).await;
        let names: Vec<&str> = after["dependents"]
            .as_array()
            .expect("list")
            .iter()
            .map(|d| d["consumer"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["billing", "checkout"], "analytics uses 3.0.0 only");
        let billing = dependent(&after, "billing");
        assert_eq!(
            billing["path"],
            json!([
                "billing depends_on checkout",
                "checkout uses fraud@2.0.0 (as ^2)"
            ])
        );
        assert_eq!(billing["foundBy"], "scheduling");
        assert!(billing["notifiedAt"].is_string(), "{billing:#}");
        assert_eq!(
            DateTime::parse_from_rfc3339(billing["noticeEndsAt"].as_str().expect("end"))
                .expect("time"),
            effective
        );
        assert_eq!(
            dependent(&after, "checkout")["deliveries"]
                .as_array()
                .expect("deliveries")
                .len(),
            2
        );
        assert_eq!(after["noticeSummary"]["delivered"], 3);

        // Audited, with the snapshot of dependents; a second overlapping retirement is refused.
        let audit = w.app.gql_ok(&w.app.token("auditor", "auditor", None).await, "{ auditLog(filter: { action: \"retirement.scheduled\" }) { edges { node { subject after } } } }", json!({})).await;
        let after_json = audit["auditLog"]["edges"][0]["node"]["after"]
            .as_str()
            .expect("after")
            .to_owned();
        assert!(
            after_json.contains("\"billing\"") && after_json.contains("\"checkout\""),
            "{after_json}"
        );
        let again = schedule(&w, effective).await;
        assert_eq!(
            again["errors"][0]["extensions"]["code"], "CONFLICT",
            "{again:#}"
        );
    }
}

/// Too early for a high-tier model: refused with the earliest date, nothing written;
/// and only governance schedules.
async fn too_early_or_by_another_role_writes_nothing(w: &World) {
    let refused = schedule(w, t0() + Duration::days(10)).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "VALIDATION",
        "{refused:#}"
    );
    let message = refused["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("at least 30 days' notice"), "{message}");
    assert!(message.contains("2026-12-31T10:00:00Z"), "{message}");
    let none = w
        .app
        .gql_ok(&w.governance, "{ retirements { id } }", json!({}))
        .await;
    assert_eq!(none["retirements"], json!([]));

    // Only governance schedules.
    let owner = w.app.token("other-owner", "owner", Some("ml")).await;
    let forbidden = w.app.gql(&owner, SCHEDULE, json!({ "i": {
    "model": "fraud", "versions": "^2", "reason": "x", "effectiveAt": (t0() + Duration::days(40)).to_rfc3339() }})).await;
    assert_eq!(
        forbidden["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{forbidden:#}"
    );
}

on_both_backends! {
    async fn a_dependent_acknowledges_through_the_link_in_its_notice(w: World = world) {
        Mock::given(method("POST"))
            .and(signed(&w))
            .respond_with(ResponseTemplate::new(200))
            .mount(&w.receiver)
            .await;
        let effective = t0() + Duration::days(30);
        let id = scheduled(&w, effective).await;
        deliver(&w).await;
        let link = first_notice_link(&w).await;

        // Opening the link shows the notice and acknowledges nothing (mail scanners open links).
        let page = w.app.client.get(&link).send().await.expect("page");
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        let html = page.text().await.expect("html");
        assert!(
            html.contains("<form method=\"post\">") && html.contains("checkout"),
            "{html}"
        );
        assert!(dependent(&detail(&w, &id).await, "checkout")["acknowledgedAt"].is_null());

        // A link altered by one character is refused, and changes nothing.
        let mut forged = link.clone();
        let last = forged.pop().expect("a char");
        forged.push(if last == 'A' { 'B' } else { 'A' });
        let refused = w.app.client.post(&forged).send().await.expect("post");
        assert_eq!(refused.status(), 403);

        let posted = w.app.client.post(&link).send().await.expect("post");
        assert_eq!(posted.status(), 200);
        let checkout = dependent(&detail(&w, &id).await, "checkout").clone();
        assert!(checkout["acknowledgedAt"].is_string(), "{checkout:#}");
        assert!(
            checkout["acknowledgedBy"]
                .as_str()
                .expect("by")
                .starts_with("link:")
        );
        // A second click is harmless.
        assert_eq!(
            w.app
                .client
                .post(&link)
                .send()
                .await
                .expect("post")
                .status(),
            200
        );

        // billing acknowledges through the API with its owners' token.
        let finance = w.app.token("finance-owner", "owner", Some("finance")).await;
        let ack = "mutation($id: ID!, $c: String!) { acknowledgeRetirement(id: $id, consumer: $c) { consumer acknowledgedAt } }";
        let outsider = w.app.token("ml-owner-2", "owner", Some("ml")).await;
        let no = w
            .app
            .gql(&outsider, ack, json!({ "id": id, "c": "billing" }))
            .await;
        assert_eq!(no["errors"][0]["extensions"]["code"], "FORBIDDEN", "{no:#}");
        let yes = w
            .app
            .gql_ok(&finance, ack, json!({ "id": id, "c": "billing" }))
            .await;
        assert!(yes["acknowledgeRetirement"]["acknowledgedAt"].is_string());

        // Both acknowledged: ready once the notice has run out, not before.
        w.clock.set(effective - Duration::seconds(1));
        check(&w).await;
        assert_eq!(detail(&w, &id).await["state"], "SCHEDULED");
        w.clock.set(effective);
        let report = check(&w).await;
        assert_eq!(report.state_changes, 1);
        assert_eq!(detail(&w, &id).await["state"], "READY");
        let audit = w.app.gql_ok(&w.app.token("auditor", "auditor", None).await, "{ auditLog(filter: { action: \"retirement.acknowledged\" }) { edges { node { actor } } } }", json!({})).await;
        assert_eq!(
            audit["auditLog"]["edges"].as_array().expect("nodes").len(),
            2,
            "{audit:#}"
        );

        // Once the retirement no longer needs it (cancelled), the link is gone.
        let cancel = "mutation($id: ID!) { cancelRetirement(id: $id, reason: \"plans changed after review\") { state } }";
        w.app
            .gql_ok(&w.governance, cancel, json!({ "id": id }))
            .await;
        for gone in [
            w.app.client.get(&link).send().await.expect("page"),
            w.app.client.post(&link).send().await.expect("post"),
        ] {
            assert_eq!(gone.status(), 410);
            assert!(
                gone.text()
                    .await
                    .expect("text")
                    .contains("no longer needed")
            );
        }
    }
}

on_both_backends! {
    async fn a_failing_receiver_is_retried_with_backoff_then_dead_lettered_and_escalated(w: World = world) {
        let id = retried_with_backoff_until_delivered(&w).await;
        dead_lettered_after_every_attempt(&w, &id).await;
        the_error_is_shown_whole_only_to_those_who_may_read_it(&w, &id).await;
    }
}

/// Down for two attempts, then back: the notice is delivered at the third, after the
/// backoff, under one webhook-id. Returns the retirement's id.
async fn retried_with_backoff_until_delivered(w: &World) -> String {
    Mock::given(method("POST"))
        .and(path("/checkout"))
        .and(signed(w))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&w.receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/checkout"))
        .and(signed(w))
        .respond_with(ResponseTemplate::new(204))
        .mount(&w.receiver)
        .await;
    let id = schedule(w, t0() + Duration::days(30)).await["data"]["scheduleRetirement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let first = deliver(w).await;
    assert_eq!((first.delivered, first.retrying), (2, 1), "{first:?}");
    // Not due again until the backoff has passed.
    assert_eq!(deliver(w).await.attempted, 0);
    w.clock.advance(Duration::seconds(7));
    assert_eq!(deliver(w).await.retrying, 1);
    w.clock.advance(Duration::seconds(4));
    assert_eq!(
        deliver(w).await.attempted,
        0,
        "the second wait is about 5 minutes"
    );
    w.clock.advance(Duration::minutes(6));
    assert_eq!(deliver(w).await.delivered, 1);
    let checkout = dependent(&detail(w, &id).await, "checkout").clone();
    let webhook = checkout["deliveries"]
        .as_array()
        .expect("d")
        .iter()
        .find(|d| d["channel"] == "webhook")
        .expect("webhook")
        .clone();
    assert_eq!(
        (webhook["state"].as_str(), webhook["attempts"].as_i64()),
        (Some("delivered"), Some(3))
    );
    // Every attempt carried the same webhook-id.
    let ids: std::collections::BTreeSet<String> = w
        .receiver
        .received_requests()
        .await
        .expect("r")
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    id
}

/// A receiver that never comes back (connection refused): every attempt, then a dead
/// letter, whose error governance reads whole and without the URL.
async fn dead_lettered_after_every_attempt(w: &World, id: &str) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    w.app
        .services
        .inventory()
        .declare_consumer(
            &Actor::local_operator(),
            ConsumerInput {
                name: "checkout".into(),
                kind: "service".into(),
                owner_team: "payments".into(),
                environment: "prod".into(),
                contacts: vec![],
                webhook_url: Some(format!("http://127.0.0.1:{closed}/gone-for-good")),
            },
        )
        .await
        .expect("redeclare");
    let cancel = "mutation($id: ID!) { cancelRetirement(id: $id, reason: \"superseded by another plan\") { state } }";
    w.app
        .gql_ok(&w.governance, cancel, json!({ "id": id }))
        .await;
    let _ = mails(&w.mail);
    let mut dead = 0;
    for _ in 0..20 {
        let r = deliver(w).await;
        dead += r.dead;
        w.clock.advance(Duration::hours(30));
    }
    assert_eq!(dead, 1, "the cancellation notice to checkout's webhook");
    let letters = w
        .app
        .gql_ok(
            &w.governance,
            "{ deadLetters { kind channel attempts lastError } }",
            json!({}),
        )
        .await;
    let letter = &letters["deadLetters"][0];
    assert_eq!(
        (letter["kind"].as_str(), letter["attempts"].as_i64()),
        (Some("model.retirement.cancelled"), Some(10)),
        "{letters:#}"
    );
    assert!(
        !letter["lastError"]
            .as_str()
            .expect("error")
            .contains(&closed.to_string()),
        "no URL in errors"
    );
    assert!(
        letter["lastError"]
            .as_str()
            .expect("error")
            .contains("Connection refused"),
        "governance reads the error whole: {letters:#}"
    );
}

/// Others read only the error's category (the consumer's own team reads it whole); the
/// model's owners and governance are told of the dead letter.
async fn the_error_is_shown_whole_only_to_those_who_may_read_it(w: &World, id: &str) {
    // Others read only its category: no port scanner for a role that sets URLs.
    let security = w.app.token("sec", "security", None).await;
    let seen = w
        .app
        .gql_ok(&security, "{ deadLetters { lastError } }", json!({}))
        .await;
    assert_eq!(seen["deadLetters"][0]["lastError"], "refused", "{seen:#}");
    let errors_seen_by = |token: String| async move {
        let detail = w.app.gql_ok(&token, DETAIL, json!({ "id": id })).await;
        detail["retirement"]["dependents"]
            .as_array()
            .expect("dependents")
            .iter()
            .filter(|d| d["consumer"] == "checkout")
            .flat_map(|d| d["deliveries"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n["lastError"].as_str().map(str::to_owned))
            .collect::<Vec<String>>()
    };
    let reader = errors_seen_by(w.app.token("reader-x", "reader", None).await).await;
    assert!(reader.contains(&"refused".to_owned()), "{reader:?}");
    assert!(reader.iter().all(|e| !e.contains("os error")), "{reader:?}");
    let outsider = errors_seen_by(w.app.token("finance", "owner", Some("finance")).await).await;
    assert!(
        outsider.iter().all(|e| !e.contains("os error")),
        "{outsider:?}"
    );
    let own_team = errors_seen_by(w.app.token("payments", "owner", Some("payments")).await).await;
    assert!(
        own_team.iter().any(|e| e.contains("Connection refused")),
        "{own_team:?}"
    );
    let escalations: Vec<ReceivedMail> = mails(&w.mail)
        .into_iter()
        .filter(|m| m.data.contains("Undeliverable"))
        .collect();
    assert_eq!(escalations.len(), 1);
    let mut to = escalations[0].to.clone();
    to.sort();
    assert_eq!(to, ["governance@example.org", "ml@example.org"]);
}

on_both_backends! {
    async fn a_receiver_answering_410_has_its_webhook_disabled_and_its_owners_told(w: World = world) {
        Mock::given(method("POST"))
            .and(signed(&w))
            .respond_with(ResponseTemplate::new(410))
            .mount(&w.receiver)
            .await;
        schedule(&w, t0() + Duration::days(30)).await;
        let r = deliver(&w).await;
        assert_eq!((r.delivered, r.dead), (2, 1), "{r:?}");
        let consumer = w
            .app
            .gql_ok(
                &w.app.admin,
                "{ consumer(name: \"checkout\") { webhookUrl } }",
                json!({}),
            )
            .await;
        assert!(consumer["consumer"]["webhookUrl"].is_null(), "{consumer:#}");
        let _ = deliver(&w).await;
        let subjects: Vec<String> = mails(&w.mail)
            .iter()
            .filter_map(|m| {
                m.data
                    .lines()
                    .find(|l| l.starts_with("Subject:"))
                    .map(str::to_owned)
            })
            .collect();
        assert!(
            subjects
                .iter()
                .any(|s| s.contains("Notice webhook of checkout disabled")),
            "{subjects:?}"
        );
        let audit = w.app.gql_ok(&w.app.token("auditor", "auditor", None).await, "{ auditLog(filter: { action: \"consumer.webhook_disabled\" }) { edges { node { subject } } } }", json!({})).await;
        assert_eq!(audit["auditLog"]["edges"][0]["node"]["subject"], "checkout");
    }
}

on_both_backends! {
    async fn a_dependent_found_later_gets_its_own_notice_and_may_need_a_decision(w: World = world) {
        accept_webhooks(&w).await;
        let effective = t0() + Duration::days(30);
        let id = scheduled(&w, effective).await;
        deliver(&w).await;
        let _ = mails(&w.mail);

        // Ten days on, analytics starts using ^2 too: 30 days from now ends after the date.
        w.clock.advance(Duration::days(10));
        declare_use(&w, "analytics", "fraud", "2.1.0").await;
        let report = check(&w).await;
        assert_eq!(
            (report.new_dependents, report.state_changes),
            (1, 1),
            "{report:?}"
        );
        let d = detail(&w, &id).await;
        assert_eq!(d["state"], "NEEDS_DECISION");
        let analytics = dependent(&d, "analytics");
        assert_eq!(analytics["foundBy"], "graph-change");
        assert_eq!(
            DateTime::parse_from_rfc3339(analytics["noticeEndsAt"].as_str().expect("end"))
                .expect("t"),
            t0() + Duration::days(40)
        );
        // Told at once.
        deliver(&w).await;
        let mut told: Vec<(String, bool)> = mails(&w.mail)
            .into_iter()
            .map(|m| {
                (
                    m.to.join(","),
                    m.data.contains("Subject: [sunset] Reminder:"),
                )
            })
            .collect();
        told.sort();
        // analytics' first notice; the others had their Monday reminder meanwhile.
        assert_eq!(
            told,
            [
                ("bi@example.org".into(), false),
                ("billing@example.org".into(), true),
                ("payments@example.org".into(), true)
            ]
        );
        // Checking again finds nobody new.
        let again = check(&w).await;
        assert_eq!(again.new_dependents, 0);
    }
}

on_both_backends! {
    async fn governance_decides_needs_decision_extensions_and_overrides(w: World = world) {
        accept_webhooks(&w).await;
        let effective = t0() + Duration::days(30);
        let id = scheduled(&w, effective).await;
        deliver(&w).await;

        a_late_dependent_is_accepted_with_shorter_notice(&w, &id, effective).await;
        checkout_asks_by_its_link_and_is_granted(&w, &id).await;
        billing_asks_by_the_api_and_is_refused(&w, &id, effective).await;
        let later = new_terms_are_told_and_postponing_settles_them(&w, &id, effective).await;
        billing_released_by_name_leaves_it_ready(&w, &id, later).await;
    }
}

const DECIDE: &str = "mutation($id: ID!, $c: String!, $g: Boolean!) { decideExtension(id: $id, consumer: $c, grant: $g, note: \"one sprint is fair\") { extensionState noticeEndsAt } }";

async fn a_late_dependent_is_accepted_with_shorter_notice(
    w: &World,
    id: &str,
    effective: DateTime<Utc>,
) {
    // A late dependent sends it to needs-decision; governance accepts the shorter notice.
    w.clock.advance(Duration::days(10));
    declare_use(w, "analytics", "fraud", "2.1.0").await;
    check(w).await;
    assert_eq!(detail(w, id).await["state"], "NEEDS_DECISION");
    let accept = "mutation($id: ID!, $j: String!) { acceptShorterNotice(id: $id, justification: $j) { state decisionNote } }";
    let short = w
        .app
        .gql(&w.governance, accept, json!({ "id": id, "j": "too short" }))
        .await;
    assert_eq!(
        short["errors"][0]["extensions"]["code"], "VALIDATION",
        "a justification says something: {short:#}"
    );
    let accepted = w.app.gql_ok(&w.governance, accept, json!({ "id": id, "j": "analytics only reads yesterday's scores; agreed with its team" })).await;
    assert_eq!(accepted["acceptShorterNotice"]["state"], "SCHEDULED");
    let d = detail(w, id).await;
    assert_eq!(
        DateTime::parse_from_rfc3339(
            dependent(&d, "analytics")["noticeEndsAt"]
                .as_str()
                .expect("t")
        )
        .expect("t"),
        effective
    );
}

async fn checkout_asks_by_its_link_and_is_granted(w: &World, id: &str) {
    // checkout asks for more time through its link; governance grants it, which goes
    // past the date; postponing settles it, and everyone is told the new date.
    let link = first_notice_link(w).await;
    let bad = w
        .app
        .client
        .post(format!("{link}/extension"))
        .form(&[
            ("until", "next year"),
            ("reason", "migration takes a quarter"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 422);
    let asked = w
        .app
        .client
        .post(format!("{link}/extension"))
        .form(&[
            ("until", "2027-02-15"),
            ("reason", "our migration to 3.0 needs one more sprint"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(
        asked.status(),
        200,
        "{}",
        asked.text().await.unwrap_or_default()
    );
    let granted = w
        .app
        .gql_ok(
            &w.governance,
            DECIDE,
            json!({ "id": id, "c": "checkout", "g": true }),
        )
        .await;
    assert_eq!(granted["decideExtension"]["extensionState"], "granted");
    assert_eq!(detail(w, id).await["state"], "NEEDS_DECISION");
    let again = w
        .app
        .gql(
            &w.governance,
            DECIDE,
            json!({ "id": id, "c": "checkout", "g": false }),
        )
        .await;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "CONFLICT",
        "decided once: {again:#}"
    );
}

async fn billing_asks_by_the_api_and_is_refused(w: &World, id: &str, effective: DateTime<Utc>) {
    // billing asks through the API with its owners' token, and is refused.
    let finance = w.app.token("finance-owner", "owner", Some("finance")).await;
    let ask = "mutation($id: ID!, $u: DateTime!) { requestExtension(id: $id, consumer: \"billing\", until: $u, reason: \"we want a long holiday first\") { extensionState } }";
    let asked = w
        .app
        .gql_ok(
            &finance,
            ask,
            json!({ "id": id, "u": (t0() + Duration::days(200)).to_rfc3339() }),
        )
        .await;
    assert_eq!(asked["requestExtension"]["extensionState"], "requested");
    let refused = w
        .app
        .gql_ok(
            &w.governance,
            DECIDE,
            json!({ "id": id, "c": "billing", "g": false }),
        )
        .await;
    assert_eq!(refused["decideExtension"]["extensionState"], "refused");
    assert_eq!(
        DateTime::parse_from_rfc3339(
            refused["decideExtension"]["noticeEndsAt"]
                .as_str()
                .expect("t")
        )
        .expect("t"),
        effective,
        "a refusal changes no date"
    );
}

/// Returns the date the retirement was postponed to.
async fn new_terms_are_told_and_postponing_settles_them(
    w: &World,
    id: &str,
    effective: DateTime<Utc>,
) -> DateTime<Utc> {
    // analytics (shorter notice) and checkout (extension) were told of their new terms.
    deliver(w).await;
    let told: Vec<String> = mails(&w.mail)
        .into_iter()
        .filter(|m| m.data.contains("Subject: [sunset] Changed:"))
        .flat_map(|m| m.to)
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
    let postpone = "mutation($id: ID!, $at: DateTime!) { postponeRetirement(id: $id, effectiveAt: $at, reason: \"checkout needs one more sprint\") { state effectiveAt sequence } }";
    let earlier = w
        .app
        .gql(
            &w.governance,
            postpone,
            json!({ "id": id, "at": (effective - Duration::days(1)).to_rfc3339() }),
        )
        .await;
    assert_eq!(
        earlier["errors"][0]["extensions"]["code"], "VALIDATION",
        "{earlier:#}"
    );
    let later = t0() + Duration::days(80);
    let moved = w
        .app
        .gql_ok(
            &w.governance,
            postpone,
            json!({ "id": id, "at": later.to_rfc3339() }),
        )
        .await;
    assert_eq!(
        moved["postponeRetirement"]["state"], "SCHEDULED",
        "{moved:#}"
    );
    deliver(w).await;
    let updated: Vec<ReceivedMail> = mails(&w.mail)
        .into_iter()
        .filter(|m| m.data.contains("Subject: [sunset] Changed:"))
        .collect();
    assert_eq!(
        updated.len(),
        3,
        "every dependent with email hears of the new date"
    );
    let d = detail(w, id).await;
    for name in ["analytics", "billing", "checkout"] {
        assert_eq!(
            DateTime::parse_from_rfc3339(dependent(&d, name)["noticeEndsAt"].as_str().expect("t"))
                .expect("t"),
            later,
            "{name}"
        );
    }
    later
}

async fn billing_released_by_name_leaves_it_ready(w: &World, id: &str, later: DateTime<Utc>) {
    // billing is released by name; the others have shown no traffic since they were
    // found, so at the new date nobody holds the retirement back.
    let ov = "mutation($id: ID!) { overrideDependents(id: $id, consumers: [\"billing\"], justification: \"billing is decommissioned next week anyway\") { consumer overriddenBy } }";
    let out = w.app.gql_ok(&w.governance, ov, json!({ "id": id })).await;
    assert_eq!(out["overrideDependents"][0]["overriddenBy"], "gov");
    let unknown = w.app.gql(&w.governance, "mutation($id: ID!) { overrideDependents(id: $id, consumers: [\"nobody\"], justification: \"not a dependent at all\") { consumer } }", json!({ "id": id })).await;
    assert_eq!(unknown["errors"][0]["extensions"]["code"], "NOT_FOUND");
    w.clock.set(later);
    check(w).await;
    assert_eq!(detail(w, id).await["state"], "READY");
    let audit = w.app.gql_ok(&w.app.token("auditor", "auditor", None).await, "query($id: String!) { auditLog(first: 100, filter: { subject: $id }) { edges { node { action } } } }", json!({ "id": id })).await;
    let actions: Vec<&str> = audit["auditLog"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["action"].as_str().expect("action"))
        .collect();
    for action in [
        "retirement.scheduled",
        "retirement.dependent_added",
        "retirement.extension_requested",
        "retirement.extension_decided",
        "retirement.postponed",
        "retirement.dependent_overridden",
        "retirement.state_changed",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

on_both_backends! {
    async fn downloads_during_the_notice_carry_sunset_headers_and_find_new_dependents(w: World = world) {
        accept_webhooks(&w).await;
        let owner = w.app.token("ml-owner-up", "owner", Some("ml")).await;
        let put = w
            .app
            .client
            .put(format!(
                "{}/v1/models/fraud/versions/2.1.0/artifacts/model.bin",
                w.app.address
            ))
            .bearer_auth(&owner)
            .body(vec![7u8; 1000])
            .send()
            .await
            .expect("put");
        assert_eq!(put.status(), 201);
        let effective = t0() + Duration::days(30);
        let id = scheduled(&w, effective).await;
        deliver(&w).await;
        let _ = mails(&w.mail);

        an_undeclared_download_carries_the_sunset_headers(&w, &id, effective).await;
        // It is a dependent now, found by its download, with its own notice, and is told.
        let d = detail(&w, &id).await;
        let batch = dependent(&d, "batch-scorer");
        assert_eq!(batch["foundBy"], "download");
        assert_eq!(
            batch["path"],
            json!(["batch-scorer uses fraud@2.1.0 (as 2.1.0)"])
        );
        deliver(&w).await;
        let to: Vec<String> = mails(&w.mail).into_iter().flat_map(|m| m.to).collect();
        assert!(to.contains(&"risk@example.org".to_owned()), "{to:?}");

        let reader = w.app.token("reader", "reader", None).await;
        the_status_says_the_same_and_others_carry_nothing(&w, &id, &reader).await;
        the_calendar_feed_shows_it_to_token_holders(&w, &id, &reader).await;
    }
}

/// A system nobody declared as a dependent downloads a version being retired: the
/// response carries Deprecation, Sunset and a Link to the retirement (RFC 8594).
async fn an_undeclared_download_carries_the_sunset_headers(
    w: &World,
    id: &str,
    effective: DateTime<Utc>,
) {
    w.app
        .services
        .inventory()
        .declare_consumer(
            &Actor::local_operator(),
            ConsumerInput {
                name: "batch-scorer".into(),
                kind: "job".into(),
                owner_team: "risk".into(),
                environment: "prod".into(),
                contacts: vec!["risk@example.org".into()],
                webhook_url: None,
            },
        )
        .await
        .expect("consumer");
    let token = w
        .app
        .consumer_token("batch-token", "reader", "batch-scorer")
        .await;
    w.clock.advance(Duration::days(2));
    let got = w
        .app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/2.1.0/artifacts/model.bin",
            w.app.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    let h = got.headers().clone();
    assert_eq!(got.bytes().await.expect("body").len(), 1000);
    assert_eq!(h["deprecation"], format!("@{}", t0().timestamp()).as_str());
    assert_eq!(
        h["sunset"],
        effective
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
            .as_str()
    );
    let links: Vec<&str> = h
        .get_all("link")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert!(
        links.contains(
            &format!(
                "<{PUBLIC_URL}/v1/retirements/{id}>; rel=\"sunset\"; type=\"application/json\""
            )
            .as_str()
        ),
        "{links:?}"
    );
}

async fn the_status_says_the_same_and_others_carry_nothing(w: &World, id: &str, reader: &str) {
    let status = w
        .app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/2.0.0/status",
            w.app.address
        ))
        .bearer_auth(reader)
        .send()
        .await
        .expect("get");
    assert!(status.headers().contains_key("sunset"));
    let body: Value = status.json().await.expect("json");
    assert_eq!(body["retirement"]["id"], id);
    assert_eq!(
        body["retirement"]["state"], "needs-decision",
        "batch-scorer's 30 days end after the date: {body:#}"
    );
    let other = w
        .app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/3.0.0/status",
            w.app.address
        ))
        .bearer_auth(reader)
        .send()
        .await
        .expect("get");
    assert!(
        !other.headers().contains_key("sunset") && !other.headers().contains_key("deprecation")
    );
    assert!(other.json::<Value>().await.expect("json")["retirement"].is_null());
}

/// The calendar feed shows it, with a stable UID; without a token it is refused.
async fn the_calendar_feed_shows_it_to_token_holders(w: &World, id: &str, reader: &str) {
    let ics = w
        .app
        .client
        .get(format!("{}/v1/retirements.ics", w.app.address))
        .bearer_auth(reader)
        .send()
        .await
        .expect("get");
    assert_eq!(
        ics.headers()["content-type"],
        "text/calendar; charset=utf-8"
    );
    let ics = ics.text().await.expect("text");
    assert!(
        ics.contains(&format!("UID:retirement-{id}@sunset.test")),
        "{ics}"
    );
    assert!(ics.contains("SUMMARY:Retirement of fraud ^2"), "{ics}");
    let anonymous = w
        .app
        .client
        .get(format!("{}/v1/retirements.ics", w.app.address))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retirement_changes_are_pushed_to_subscribers() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = world(Backend::Sqlite).await;
    let mut socket = crate::subscriptions::connect(&w.app.address, &w.governance).await;
    assert_eq!(
        crate::subscriptions::next(&mut socket).await["type"],
        "connection_ack"
    );
    socket
        .send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { retirementUpdated { retirementId change missed } }" } }).to_string()))
        .await
        .expect("subscribe");
    tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while w.app.services.retirements().retirement_subscribers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("subscribed");
    let id = schedule(&w, t0() + Duration::days(30)).await["data"]["scheduleRetirement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let pushed = crate::subscriptions::next(&mut socket).await;
    assert_eq!(
        pushed["payload"]["data"]["retirementUpdated"],
        json!({ "retirementId": id, "change": "scheduled", "missed": 0 }),
        "{pushed:#}"
    );
    w.app.gql_ok(&w.governance, "mutation($id: ID!) { cancelRetirement(id: $id, reason: \"plans changed after review\") { state } }", json!({ "id": id })).await;
    let pushed = crate::subscriptions::next(&mut socket).await;
    assert_eq!(
        pushed["payload"]["data"]["retirementUpdated"]["change"],
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_dependent_is_found_as_soon_as_the_inventory_changes() {
    let w = world_with(Backend::Sqlite, |s| s.retirement.watch_inventory = true).await;
    accept_webhooks(&w).await;
    let id = schedule(&w, t0() + Duration::days(30)).await["data"]["scheduleRetirement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The watch subscribes to inventory changes once a retirement is pending.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while w.app.services.inventory().inventory_subscribers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the watch listens");
    let mut updates = w.app.services.retirements().retirement_events();
    declare_use(&w, "analytics", "fraud", "^2").await;
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), updates.recv())
        .await
        .expect("checked within 5 s")
        .expect("event");
    assert_eq!(
        (event.retirement.to_string(), event.change),
        (id.clone(), "checked")
    );
    let d = detail(&w, &id).await;
    assert_eq!(dependent(&d, "analytics")["foundBy"], "graph-change");
    let deliveries = dependent(&d, "analytics")["deliveries"].clone();
    assert_eq!(
        deliveries[0]["state"], "pending",
        "its notice waits in the outbox: {deliveries:#}"
    );
    assert_eq!(deliveries[0]["kind"], "model.retirement.scheduled");
}

/// Webhook notices checkout received, by payload `type`.
async fn webhook_types(w: &World) -> Vec<String> {
    w.receiver
        .received_requests()
        .await
        .expect("requests")
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).expect("json")["type"]
                .as_str()
                .expect("type")
                .to_owned()
        })
        .collect()
}

on_both_backends! {
    async fn a_ninety_day_notice_reminds_weekly_until_acknowledged_then_becomes_ready(w: World = world) {
        accept_webhooks(&w).await;
        // A critical model: 90 days' notice, reminders on Mondays at 09:00 UTC.
        a_critical_model_checkout_uses(&w).await;
        let effective = t0() + Duration::days(90);
        let too_soon = w.app.gql(&w.governance, SCHEDULE, json!({ "i": { "model": "core", "versions": "1.0.0", "reason": "end of life", "effectiveAt": (effective - Duration::days(1)).to_rfc3339() } })).await;
        assert!(
            too_soon["errors"][0]["message"]
                .as_str()
                .expect("message")
                .contains("2027-03-01T10:00:00Z"),
            "{too_soon:#}"
        );
        let done = w.app.gql_ok(&w.governance, SCHEDULE, json!({ "i": { "model": "core", "versions": "1.0.0", "reason": "end of life", "effectiveAt": effective.to_rfc3339() } })).await;
        let id = done["scheduleRetirement"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        deliver(&w).await;
        let _ = mails(&w.mail);

        // Ninety days, one check and one delivery pass a day; billing acknowledges on day 20.
        let ack = "mutation($id: ID!) { acknowledgeRetirement(id: $id, consumer: \"billing\") { acknowledgedAt } }";
        let mut billing_reminders = 0;
        let mut states = Vec::new();
        for day in 1..=90 {
            w.clock.set(t0() + Duration::days(day));
            if day == 20 {
                w.app.gql_ok(&w.governance, ack, json!({ "id": id })).await;
            }
            check(&w).await;
            deliver(&w).await;
            billing_reminders += mails(&w.mail)
                .iter()
                .filter(|m| {
                    m.to == ["billing@example.org"]
                        && m.data.contains("Subject: [sunset] Reminder:")
                })
                .count();
            states.push(
                detail(&w, &id).await["state"]
                    .as_str()
                    .expect("state")
                    .to_owned(),
            );
        }
        let types = webhook_types(&w).await;
        assert_eq!(
            types
                .iter()
                .filter(|t| *t == "model.retirement.scheduled")
                .count(),
            1
        );
        assert_eq!(
            types
                .iter()
                .filter(|t| *t == "model.retirement.reminder")
                .count(),
            13,
            "every Monday of the 90 days: {types:?}"
        );
        assert_eq!(billing_reminders, 2, "Mondays before billing acknowledged");
        assert!(states[..89].iter().all(|s| s == "SCHEDULED"), "{states:?}");
        assert_eq!(
            states[89], "READY",
            "notice ran out; checkout showed no traffic, billing acknowledged"
        );
        let d = detail(&w, &id).await;
        assert!(
            dependent(&d, "billing")["nextReminderAt"].is_null(),
            "no reminders after acknowledging"
        );
    }
}

/// Model `core`, tier critical, whose 1.0.0 checkout uses.
async fn a_critical_model_checkout_uses(w: &World) {
    let core = sunset::testing::Seed {
        model: "core",
        team: "ml",
        tier: "critical",
        contacts: &["ml@example.org"],
        versions: &["1.0.0"],
    };
    sunset::testing::seed(&w.app.services, core).await;
    declare_use(w, "checkout", "core", "1.0.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_seen_by_a_scan_finds_dependents_and_holds_the_retirement_back() {
    let logs = tempfile::tempdir().expect("tmp");
    let log = logs.path().join("access.jsonl");
    let source = sunset::config::ScanSourceSettings {
        name: "gw".into(),
        paths: vec![log.display().to_string()],
        schedule: "0 0 0 1 1 * 2099".into(),
        ..sunset::config::ScanSourceSettings::default()
    };
    let w = world_with(Backend::Sqlite, move |s| s.scan.sources = vec![source]).await;
    accept_webhooks(&w).await;
    let effective = t0() + Duration::days(30);
    let id = scheduled(&w, effective).await;

    // Twenty-five days on, the gateway log shows checkout still calling 2.1.0, and a
    // caller nobody declared.
    w.clock.advance(Duration::days(25));
    let line = |caller: &str| {
        format!(
            "{}\n",
            json!({ "caller": caller, "path": "/v1/models/fraud/versions/2.1.0/predict" })
        )
    };
    std::fs::write(&log, line("checkout") + &line("shadow-batch")).expect("log");
    w.app
        .services
        .inventory()
        .run_scan("gw", &|_| {})
        .await
        .expect("scan");
    let d = detail(&w, &id).await;
    let shadow = dependent(&d, "shadow-batch");
    assert_eq!(shadow["foundBy"], "scan");
    assert!(
        dependent(&d, "checkout")["lastTrafficAt"].is_string(),
        "{d:#}"
    );

    // At the date: billing is quiet, but checkout was seen 5 days ago and has not
    // acknowledged, so the retirement is not ready (shadow-batch's own notice also
    // runs past the date, so governance must decide).
    w.clock.set(effective);
    check(&w).await;
    assert_eq!(detail(&w, &id).await["state"], "NEEDS_DECISION");
    let accept = "mutation($id: ID!) { acceptShorterNotice(id: $id, justification: \"shadow-batch is an experiment of the ML team\") { state } }";
    assert_eq!(
        w.app
            .gql_ok(&w.governance, accept, json!({ "id": id }))
            .await["acceptShorterNotice"]["state"],
        "SCHEDULED"
    );
    check(&w).await;
    assert_eq!(
        detail(&w, &id).await["state"],
        "SCHEDULED",
        "checkout's traffic holds it back"
    );
    // Fourteen quiet days after checkout's last traffic, nobody holds it back.
    w.clock.set(t0() + Duration::days(25 + 14));
    check(&w).await;
    assert_eq!(detail(&w, &id).await["state"], "READY");
}

on_both_backends! {
    async fn a_scheduled_check_runs_once_per_tick_across_instances(w: World = world) {
        let other = w.app.spawn_sibling().await;
        let tick = t0() + Duration::minutes(1);
        let first = w
            .app
            .services
            .retirements().run_scheduled_retirement_check(tick, "instance-a")
            .await
            .expect("check");
        let second = other
            .services
            .retirements().run_scheduled_retirement_check(tick, "instance-b")
            .await
            .expect("check");
        assert!(first.is_some());
        assert!(second.is_none(), "the tick was claimed by instance-a");
        let next = other
            .services
            .retirements().run_scheduled_retirement_check(tick + Duration::minutes(1), "instance-b")
            .await
            .expect("check");
        assert!(next.is_some());
        // Claims a week old are forgotten, so a tick a minute does not grow the table for ever.
        let count = || async {
            use sea_orm::ConnectionTrait;
            let row = w
                .app
                .services
                .store()
                .reader()
                .query_one_raw(sea_orm::Statement::from_string(
                    w.app.services.store().backend(),
                    "SELECT COUNT(*) AS n FROM job_runs",
                ))
                .await
                .expect("count")
                .expect("a row");
            row.try_get::<i64>("", "n").expect("n")
        };
        assert_eq!(count().await, 2);
        w.app
            .services
            .retirements().run_scheduled_retirement_check(tick + Duration::days(8), "instance-a")
            .await
            .expect("check");
        assert_eq!(count().await, 1, "only the newest claim is left");
    }
}

on_both_backends! {
    async fn executing_a_ready_retirement_pulls_the_kill_switch_on_every_instance(w: World = world) {
        accept_webhooks(&w).await;
        let (id, effective) = uploaded_and_ready(&w).await;
        let reader = w.app.token("reader", "reader", None).await;
        let download = |address: String| {
            let client = w.app.client.clone();
            let reader = reader.clone();
            async move {
                client
                    .get(format!(
                        "{address}/v1/models/fraud/versions/2.1.0/artifacts/model.bin"
                    ))
                    .bearer_auth(&reader)
                    .send()
                    .await
                    .expect("get")
            }
        };
        assert_eq!(download(w.app.address.clone()).await.status(), 200);
        let other = w.app.spawn_sibling().await;
        assert_eq!(download(other.address.clone()).await.status(), 200);

        let done = w
            .app
            .gql_ok(&w.governance, EXECUTE_STEPS, json!({ "id": id }))
            .await;
        // No derived stores, nothing signed: the execution runs to its end, at once or,
        // on a fleet whose other replica has yet to confirm it follows the new KEK epoch
        // (HSM keys), as soon as it has.
        if done["executeRetirement"]["state"] != "RETIRED" {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                w.app.services.decommission().resume_decommissions().await.expect("resume");
                let state = w.app.gql_ok(&w.governance, "query($id: ID!) { retirement(id: $id) { state } }", json!({ "id": id })).await;
                if state["retirement"]["state"] == "RETIRED" {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "never finished: {state}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        let step = &done["executeRetirement"]["steps"][0];
        assert_eq!(step["step"], "kill-switch");
        assert_eq!(step["outcome"], "2 version(s) disabled: 2.0.0, 2.1.0");

        // From the commit on, both instances refuse the retired version, and say since when.
        for address in [w.app.address.clone(), other.address.clone()] {
            let gone = download(address).await;
            assert_eq!(gone.status(), 410);
            assert_eq!(
                gone.headers()["sunset"],
                effective
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string()
                    .as_str()
            );
            let body: Value = gone.json().await.expect("json");
            assert_eq!(body["error"]["code"], "GONE");
        }
        the_rest_stays_served_and_the_status_says_retired(&w, &reader).await;
        let etag = the_disabled_list_answers_an_unchanged_etag_with_304(&w, &reader).await;
        // Executing again changes nothing.
        let resumed = w
            .app
            .gql_ok(&w.governance, EXECUTE_STEPS, json!({ "id": id }))
            .await;
        assert_eq!(
            resumed["executeRetirement"]["steps"]
                .as_array()
                .map(Vec::len),
            Some(sunset::domain::DecommissionStep::ALL.len())
        );
        let unchanged = w
            .app
            .client
            .get(format!("{}/v1/disabled-versions", w.app.address))
            .bearer_auth(&reader)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(unchanged.status(), 304);
    }
}

const EXECUTE_STEPS: &str =
    "mutation($id: ID!) { executeRetirement(id: $id) { state steps { step outcome finishedAt } } }";

/// Artifacts for 2.1.0 and 3.0.0, ^2 scheduled, refused execution before it is ready,
/// then acknowledged by everyone and ready at its date. Returns its id and date.
pub(crate) async fn uploaded_and_ready(w: &World) -> (String, DateTime<Utc>) {
    let owner = w.app.token("ml-owner-up", "owner", Some("ml")).await;
    for v in ["2.1.0", "3.0.0"] {
        let put = w
            .app
            .client
            .put(format!(
                "{}/v1/models/fraud/versions/{v}/artifacts/model.bin",
                w.app.address
            ))
            .bearer_auth(&owner)
            .body(vec![1u8; 64])
            .send()
            .await
            .expect("put");
        assert_eq!(put.status(), 201);
    }
    let effective = t0() + Duration::days(30);
    let id = scheduled(w, effective).await;
    // Not before it is ready.
    let early = w
        .app
        .gql(&w.governance, EXECUTE_STEPS, json!({ "id": id }))
        .await;
    assert_eq!(
        early["errors"][0]["extensions"]["code"], "CONFLICT",
        "{early:#}"
    );
    for c in ["billing", "checkout"] {
        w.app.gql_ok(&w.governance, "mutation($id: ID!, $c: String!) { acknowledgeRetirement(id: $id, consumer: $c) { consumer } }", json!({ "id": id, "c": c })).await;
    }
    w.clock.set(effective);
    check(w).await;
    assert_eq!(detail(w, &id).await["state"], "READY");
    (id, effective)
}

async fn the_rest_stays_served_and_the_status_says_retired(w: &World, reader: &str) {
    // 3.0.0 is not retired.
    let kept = w
        .app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/3.0.0/artifacts/model.bin",
            w.app.address
        ))
        .bearer_auth(reader)
        .send()
        .await
        .expect("get");
    assert_eq!(kept.status(), 200);
    let status: Value = w
        .app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/2.1.0/status",
            w.app.address
        ))
        .bearer_auth(reader)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(status["retirement"]["state"], "retired");
    assert!(status["disabled"]["at"].is_string(), "{status:#}");
}

/// Enforcement points poll the list cheaply: the same ETag answers 304 with no body.
/// Returns the list's ETag.
async fn the_disabled_list_answers_an_unchanged_etag_with_304(w: &World, reader: &str) -> String {
    let poll = w
        .app
        .client
        .get(format!("{}/v1/disabled-versions", w.app.address))
        .bearer_auth(reader)
        .send()
        .await
        .expect("get");
    assert_eq!(poll.status(), 200);
    let etag = poll.headers()["etag"].to_str().expect("etag").to_owned();
    let list: Value = poll.json().await.expect("json");
    let versions: Vec<&str> = list["disabled"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| d["version"].as_str().expect("v"))
        .collect();
    assert_eq!(versions, ["2.0.0", "2.1.0"]);
    let again = w
        .app
        .client
        .get(format!("{}/v1/disabled-versions", w.app.address))
        .bearer_auth(reader)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), 304);
    etag
}

/// Webhook URLs cannot reach inside: an internal address written as the host is refused
/// when it is set, with the setting that would admit it named; the allowlist admits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_internal_addresses_are_refused_unless_allowlisted() {
    let strict = TestApp::spawn_with(Backend::Sqlite, Arc::new(sunset::clock::SystemClock), |s| {
        s.notifications.webhook_allow_http = false;
        s.notifications.webhook_allow = Vec::new();
    })
    .await;
    let owner = strict
        .token("payments-owner", "owner", Some("payments"))
        .await;
    let declare = "mutation($u: String!) { declareConsumer(input: { name: \"checkout\", kind: SERVICE, ownerTeam: \"payments\", environment: \"prod\", webhookUrl: $u }) { consumer { name } } }";
    for url in [
        "https://127.0.0.1:8443/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "http://hooks.example.org/plain",
    ] {
        let refused = strict.gql(&owner, declare, json!({ "u": url })).await;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "VALIDATION",
            "{url}: {refused:#}"
        );
        let message = refused["errors"][0]["message"].as_str().expect("message");
        assert!(
            message.contains("notifications.webhook_allow"),
            "{url}: names the setting: {message}"
        );
    }
    strict
        .gql_ok(
            &owner,
            declare,
            json!({ "u": "https://hooks.example.org/sunset" }),
        )
        .await;

    let allowing =
        TestApp::spawn_with(Backend::Sqlite, Arc::new(sunset::clock::SystemClock), |s| {
            s.notifications.webhook_allow_http = true;
            s.notifications.webhook_allow = vec!["10.0.0.0/8".into()];
        })
        .await;
    let owner = allowing
        .token("payments-owner", "owner", Some("payments"))
        .await;
    allowing
        .gql_ok(&owner, declare, json!({ "u": "http://10.0.0.7/hook" }))
        .await;
    let refused = allowing
        .gql(&owner, declare, json!({ "u": "http://127.0.0.1/hook" }))
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "VALIDATION",
        "{refused:#}"
    );
}

/// A retirement cancelled while its notices' attempts are in flight: the attempts'
/// outcomes are counted, but those notices stay cancelled and are never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_cancelled_while_its_attempt_is_in_flight_is_not_sent_again() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let w = world(backend).await;
        let id = scheduled(&w, t0() + Duration::days(30)).await;
        let store = w.app.services.store();
        let now = sunset::clock::Clock::now(&*w.clock);
        // A worker claims the notices and starts its attempts...
        let claimed = sunset::store::notices::claim_due(
            store.reader(),
            store.backend(),
            claim("worker", now),
        )
        .await
        .expect("claim");
        assert!(!claimed.is_empty());
        // ...governance cancels meanwhile...
        let cancel = "mutation($id: ID!) { cancelRetirement(id: $id, reason: \"superseded by another plan\") { state } }";
        w.app
            .gql_ok(&w.governance, cancel, json!({ "id": id }))
            .await;
        // ...and the attempts fail and ask to be retried.
        for mut n in claimed.clone() {
            n.attempts += 1;
            n.last_attempt_at = Some(now);
            n.last_error = Some("the receiver answered HTTP 503".into());
            n.next_attempt_at = now + Duration::minutes(1);
            let moved = sunset::store::notices::record(store.reader(), &n)
                .await
                .expect("record");
            assert!(!moved, "{} went back to pending", n.id);
        }
        let after =
            sunset::store::notices::of_retirement(store.reader(), id.parse().expect("id"), None)
                .await
                .expect("notices");
        for n in claimed {
            let now_stored = after.iter().find(|a| a.id == n.id).expect("still there");
            assert_eq!(now_stored.state.as_str(), "cancelled", "{}", n.id);
            assert_eq!(
                now_stored.attempts,
                n.attempts + 1,
                "the attempt is counted"
            );
        }
        w.clock.advance(Duration::minutes(2));
        let report = deliver(&w).await;
        let kinds: Vec<String> = w
            .receiver
            .received_requests()
            .await
            .expect("recorded")
            .iter()
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body).expect("json")["type"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        assert!(
            kinds.iter().all(|k| k != "model.retirement.scheduled"),
            "a cancelled notice went out again: {kinds:?} ({report:?})"
        );
    }
}

/// `n` more services (`svc-000`, …) using fraud ^2, each taking webhooks at the
/// receiver under its own path.
async fn webhook_dependents_of_fraud(w: &World, n: usize) {
    let s = w.app.services.inventory();
    for i in 0..n {
        let name = format!("svc-{i:03}");
        let consumer = ConsumerInput {
            name: name.clone(),
            kind: "service".into(),
            owner_team: "payments".into(),
            environment: "prod".into(),
            contacts: vec![],
            webhook_url: Some(format!("{}/{name}", w.receiver.uri())),
        };
        s.declare_consumer(&Actor::local_operator(), consumer)
            .await
            .expect("consumer");
        let edge = EdgeSpec::Uses {
            consumer: name,
            model: "fraud".into(),
            version: "^2".into(),
        };
        s.declare_edge(&Actor::local_operator(), edge)
            .await
            .expect("edge");
    }
}

/// A claim on the notices due at `now` by `holder`, beating now, with a five-minute lease.
fn claim(holder: &str, now: DateTime<Utc>) -> sunset::store::notices::Claim<'_> {
    let wall = Utc::now();
    sunset::store::notices::Claim {
        holder,
        now,
        lease_until: now + Duration::minutes(5),
        wall_now: wall,
        live_after: wall - Duration::seconds(10),
        limit: 100,
    }
}

on_both_backends! {
    async fn a_dead_workers_claims_are_taken_over_before_their_lease_ends(w: World = world) {
        accept_webhooks(&w).await;
        scheduled(&w, t0() + Duration::days(30)).await;
        let store = w.app.services.store();
        let now = sunset::clock::Clock::now(&*w.clock);
        // A worker on another host claims every notice, with an hour's lease.
        let holder = "other-host:4242/0000beef";
        let mut elsewhere = claim(holder, now);
        elsewhere.lease_until = now + Duration::hours(1);
        let claimed = sunset::store::notices::claim_due(store.reader(), store.backend(), elsewhere)
            .await
            .expect("claim");
        assert!(!claimed.is_empty());
        // While it beats, nothing it holds is taken.
        assert_eq!(deliver(&w).await.attempted, 0, "a live worker's claims were taken");
        assert!(w.receiver.received_requests().await.expect("recorded").is_empty());
        // It stops: its last beat is older than the instances' dead-after time.
        sunset::store::replicas::beat(store.reader(), holder, Utc::now() - Duration::seconds(11))
            .await
            .expect("beat");
        let report = deliver(&w).await;
        assert_eq!(report.attempted, claimed.len(), "{report:?}");
        assert_eq!(report.delivered, claimed.len(), "{report:?}");
        let after =
            sunset::store::notices::of_retirement(store.reader(), claimed[0].retirement_id, None)
                .await
                .expect("notices");
        for n in &after {
            assert_eq!(n.state.as_str(), "delivered", "{}", n.id);
            assert_eq!(n.attempts, 2, "{}: both claims counted", n.id);
        }
    }
}

/// Two replicas on one PostgreSQL database: a long change on one (scheduling a
/// retirement that writes 150 notices) succeeds while the other commits short changes
/// as fast as it can. Writers of all replicas queue on one lock; without it, each of the
/// long change's attempts lost to a short one committed meanwhile, and it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_change_is_not_starved_by_another_replicas_stream_of_short_ones() {
    let w = world(Backend::Postgres).await;
    webhook_dependents_of_fraud(&w, 150).await;
    let other = w.app.spawn_sibling_on(w.clock.clone()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let short_writes = {
        let (services, stop) = (other.services.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                services
                    .admin()
                    .create_token(
                        &Actor::local_operator(),
                        &format!("t{n}"),
                        "reader",
                        None,
                        None,
                    )
                    .await
                    .expect("a short write");
                n += 1;
            }
            n
        })
    };
    let outcome = schedule(&w, t0() + Duration::days(30)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let meanwhile = short_writes.await.expect("writer");
    assert!(
        outcome["errors"].is_null(),
        "the long change failed while {meanwhile} short ones committed: {outcome}"
    );
    assert!(meanwhile > 0);
}

/// Two replicas on one PostgreSQL database deliver the same outbox at once: claims
/// (`FOR UPDATE SKIP LOCKED`) give each notice to one worker, so each arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_delivery_workers_on_one_database_deliver_each_notice_once() {
    let w = world(Backend::Postgres).await;
    let other = w.app.spawn_sibling_on(w.clock.clone()).await;
    webhook_dependents_of_fraud(&w, 40).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).set_delay(std::time::Duration::from_millis(5)))
        .mount(&w.receiver)
        .await;
    scheduled(&w, t0() + Duration::days(30)).await;
    let (here, there) = (w.app.services.retirements(), other.services.retirements());
    let (a, b) = tokio::join!(here.deliver_due_notices(), there.deliver_due_notices());
    let (a, b) = (a.expect("a"), b.expect("b"));
    let requests = w.receiver.received_requests().await.expect("recorded");
    let ids: std::collections::BTreeSet<String> = requests
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), requests.len(), "no notice arrived twice");
    assert!(requests.len() >= 40, "{} webhooks", requests.len());
    assert_eq!(
        a.delivered + b.delivered,
        a.attempted + b.attempted,
        "{a:?} {b:?}"
    );
    assert!(a.attempted > 0 || b.attempted > 0);
}

/// Two replicas on one PostgreSQL database: a change made through one is pushed to the
/// `retirementUpdated` subscribers of the other, once, within its poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retirement_changes_reach_subscribers_of_another_replica() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = world(Backend::Postgres).await;
    let other = w.app.spawn_sibling_on(w.clock.clone()).await;
    let mut socket = crate::subscriptions::connect(&other.address, &w.governance).await;
    assert_eq!(
        crate::subscriptions::next(&mut socket).await["type"],
        "connection_ack"
    );
    socket
        .send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { retirementUpdated { retirementId change missed } }" } }).to_string()))
        .await
        .expect("subscribe");
    tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while other.services.retirements().retirement_subscribers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("subscribed");
    let id = scheduled(&w, t0() + Duration::days(30)).await;
    let pushed = crate::subscriptions::next(&mut socket).await;
    assert_eq!(
        pushed["payload"]["data"]["retirementUpdated"],
        json!({ "retirementId": id, "change": "scheduled", "missed": 0 }),
        "{pushed:#}"
    );
    w.app.gql_ok(&w.governance, "mutation($id: ID!) { cancelRetirement(id: $id, reason: \"plans changed after review\") { state } }", json!({ "id": id })).await;
    let pushed = crate::subscriptions::next(&mut socket).await;
    assert_eq!(
        pushed["payload"]["data"]["retirementUpdated"]["change"], "cancelled",
        "{pushed:#}"
    );
}

/// Calendar applications cannot send a bearer token: a feed at a secret address serves
/// the calendar without one, only its maker (or an admin) revokes it, and a revoked
/// address answers 404 like an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_calendar_address_serves_the_feed_until_it_is_revoked() {
    let w = world(Backend::Sqlite).await;
    let id = scheduled(&w, t0() + Duration::days(30)).await;
    let reader = w.app.token("calendar-reader", "reader", None).await;
    let made = w
        .app
        .gql_ok(&reader, "mutation { createCalendarFeed(name: \"payments team calendar\") { url feed { id name createdBy revokedAt } } }", json!({}))
        .await["createCalendarFeed"]
        .clone();
    let url = made["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("{PUBLIC_URL}/v1/calendars/cal_")) && url.ends_with(".ics"),
        "{url}"
    );
    assert_eq!(made["feed"]["createdBy"], "calendar-reader");
    let url = url.replace(PUBLIC_URL, &w.app.address);
    let feed = w.app.client.get(&url).send().await.expect("get");
    assert_eq!(feed.status(), 200);
    assert_eq!(
        feed.headers()["content-type"],
        "text/calendar; charset=utf-8"
    );
    let ics = feed.text().await.expect("text");
    assert!(
        ics.contains(&format!("UID:retirement-{id}@sunset.test")),
        "{ics}"
    );
    let listed = w
        .app
        .gql_ok(&reader, "{ calendarFeeds { id name } }", json!({}))
        .await;
    assert_eq!(listed["calendarFeeds"][0]["name"], "payments team calendar");

    let feed_id = made["feed"]["id"].as_str().expect("id");
    let revoke = "mutation($id: ID!) { revokeCalendarFeed(id: $id) { revokedAt } }";
    let other = w.app.token("someone-else", "reader", None).await;
    let refused = w.app.gql(&other, revoke, json!({ "id": feed_id })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused:#}"
    );
    assert_eq!(
        w.app.client.get(&url).send().await.expect("get").status(),
        200
    );
    let revoked = w
        .app
        .gql_ok(&reader, revoke, json!({ "id": feed_id }))
        .await;
    assert!(revoked["revokeCalendarFeed"]["revokedAt"].is_string());
    assert_eq!(
        w.app.client.get(&url).send().await.expect("get").status(),
        404
    );
    let guessed = format!("{}/v1/calendars/cal_{}.ics", w.app.address, "A".repeat(43));
    assert_eq!(
        w.app
            .client
            .get(&guessed)
            .send()
            .await
            .expect("get")
            .status(),
        404
    );
}
