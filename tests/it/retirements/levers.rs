//! Governance's levers on a retirement: new consumers frozen out (downloads, declared
//! uses and registration webhooks), and only the dependents seen lately told.

use super::{World, deliver, mails, t0, world_with};
use crate::registrations::{Post, post, source};
use crate::support::{Backend, error_code, error_message};
use chrono::Duration;
use serde_json::{Value, json};
use sunset::auth::Actor;
use sunset::service::{ConsumerInput, EdgeSpec};

const SCHEDULE: &str = "mutation($i: ScheduleRetirementInput!) { scheduleRetirement(input: $i) { id freezeNewConsumers notifySeenWithinDays } }";
const DEPENDENTS: &str = "query($id: ID!) { retirement(id: $id) { dependents { consumer informedByOwner notifiedAt nextReminderAt } } }";

async fn schedule(w: &World, levers: Value) -> Value {
    let mut input = json!({
        "model": "fraud", "versions": "^2", "reason": "superseded by 3.0",
        "effectiveAt": (sunset::clock::Clock::now(&*w.clock) + Duration::days(30)).to_rfc3339(),
        "replacementModel": "fraud", "replacementVersion": "3.0.0",
    });
    for (k, v) in levers.as_object().expect("levers") {
        input[k] = v.clone();
    }
    w.app
        .gql(&w.governance, SCHEDULE, json!({ "i": input }))
        .await
}

async fn declare_consumer(w: &World, name: &str) {
    w.app
        .services
        .inventory()
        .declare_consumer(
            &Actor::local_operator(),
            ConsumerInput {
                name: name.into(),
                kind: "service".into(),
                owner_team: "growth".into(),
                environment: "prod".into(),
                contacts: vec![format!("{name}@example.org")],
                webhook_url: None,
            },
        )
        .await
        .expect("consumer");
}

fn uses(consumer: &str, version: &str) -> EdgeSpec {
    EdgeSpec::Uses {
        consumer: consumer.into(),
        model: "fraud".into(),
        version: version.into(),
    }
}

async fn download(w: &World, token: &str) -> reqwest::Response {
    w.app
        .client
        .get(format!(
            "{}/v1/models/fraud/versions/2.1.0/artifacts/model.bin",
            w.app.address
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
}

on_both_backends! {
    /// From scheduling on, a consumer that was not a dependent is refused the versions,
    /// however it comes: a download (410, with the retirement's Link and Sunset), a use
    /// declared, a registration webhook. Dependents keep access; other versions stay open.
    async fn frozen_versions_refuse_new_consumers_and_serve_their_dependents(backend: Backend = crate::support::backend) {
        let w = world_with(backend, |_| {}).await;
        let owner = w.app.token("ml-owner-up", "owner", Some("ml")).await;
        let put = w.app.client.put(format!("{}/v1/models/fraud/versions/2.1.0/artifacts/model.bin", w.app.address))
            .bearer_auth(&owner).body(vec![3u8; 64]).send().await.expect("put");
        assert_eq!(put.status(), 201);
        declare_consumer(&w, "newbie").await;
        let scheduled = schedule(&w, json!({ "freezeNewConsumers": true })).await;
        let r = &scheduled["data"]["scheduleRetirement"];
        assert_eq!(r["freezeNewConsumers"], true, "{scheduled}");
        let id = r["id"].as_str().expect("id").to_owned();
        // The notices say so, by webhook and by email.
        crate::retirements::accept_webhooks(&w).await;
        deliver(&w).await;
        let hooks = w.receiver.received_requests().await.expect("requests");
        let hook: Value = serde_json::from_slice(&hooks[0].body).expect("json");
        assert_eq!(hook["data"]["closedToNewConsumers"], true, "{hook}");
        let mail = mails(&w.mail);
        assert!(mail.iter().any(|m| m.data.contains("closed to new consumers")), "{mail:?}");

        let newbie = w.app.consumer_token("newbie-deploy", "reader", "newbie").await;
        let refused = download(&w, &newbie).await;
        assert_eq!(refused.status(), 410);
        let link = refused.headers()["link"].to_str().expect("ascii").to_owned();
        assert!(link.contains(&format!("/v1/retirements/{id}")), "{link}");
        assert!(refused.headers().contains_key("sunset"));
        let body: Value = refused.json().await.expect("json");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains("closed to new consumers") && message.contains("use fraud@3.0.0 instead"), "{message}");
        let recorded = crate::console::count(&w.app, "SELECT COUNT(*) FROM audit_records WHERE action = 'artifact.download_refused' AND actor = 'newbie-deploy'").await;
        assert_eq!(recorded, 1);
        // The refused download is not evidence of use: newbie did not become a dependent.
        let dependents = w.app.gql_ok(&w.governance, DEPENDENTS, json!({ "id": id })).await;
        assert!(!dependents.to_string().contains("newbie"));

        let mut console = crate::console::Console::new(&w.app.address);
        assert_eq!(console.sign_in(&w.governance).await.status, 303);
        assert!(console.get(&format!("/ui/retirements/{id}")).await.body.contains("frozen out"));

        // checkout was a dependent: it keeps its access until the effective date.
        let checkout = w.app.consumer_token("checkout-deploy", "reader", "checkout").await;
        assert_eq!(download(&w, &checkout).await.status(), 200);

        // A new use declared is refused with the reason; a dependent's own, and another
        // version's, are not.
        let inventory = w.app.services.inventory();
        let admin = Actor::local_operator();
        let err = inventory.declare_edge(&admin, uses("newbie", "^2")).await.expect_err("frozen");
        assert!(err.to_string().contains("closed to new consumers"), "{err}");
        inventory.declare_edge(&admin, uses("newbie", "3.0.0")).await.expect("3.0.0 stays open");
        inventory.declare_edge(&admin, uses("checkout", "^2")).await.expect("a dependent confirms its use");
        let gql = w.app.gql(&w.app.admin, "mutation { declareUse(consumer: \"newbie\", model: \"fraud\", version: \"2.1.0\") { kind } }", json!({})).await;
        assert_eq!(error_code(&gql), "CONFLICT", "{gql}");
        assert!(error_message(&gql).contains("retirement"), "{gql}");

        // A registration webhook declaring a new use is refused too, and writes nothing.
        let secret = source(&w.app, "ci").await;
        let at = sunset::clock::Clock::now(&*w.clock).timestamp();
        let message = json!({ "registrations": [
            { "type": "consumer", "name": "webby", "kind": "service", "ownerTeam": "growth", "environment": "prod",
              "uses": [{ "model": "fraud", "version": "^2" }] }
        ] });
        let refused = post(&w.app, Post { secret: &secret, id: "msg_frozen", at }, &message).await;
        assert_eq!(refused.status(), 422, "{:?}", refused.text().await);
        let webby = crate::console::count(&w.app, "SELECT COUNT(*) FROM consumers WHERE name = 'webby'").await;
        assert_eq!(webby, 0, "nothing of a refused message is written");
        let other = json!({ "registrations": [
            { "type": "consumer", "name": "webby", "kind": "service", "ownerTeam": "growth", "environment": "prod",
              "uses": [{ "model": "fraud", "version": "3.0.0" }] }
        ] });
        assert_eq!(post(&w.app, Post { secret: &secret, id: "msg_open", at }, &other).await.status(), 200);
    }
}

on_both_backends! {
    /// Told only if seen within the look-back: a dependent whose every edge went quiet is
    /// listed as informed by its owner, gets no notice and no reminder.
    async fn only_dependents_seen_lately_are_told(backend: Backend = crate::support::backend) {
        let w = world_with(backend, |_| {}).await;
        declare_consumer(&w, "stale-svc").await;
        let admin = Actor::local_operator();
        w.app.services.inventory().declare_edge(&admin, uses("stale-svc", "^2")).await.expect("edge");
        // Forty days on, checkout confirms its use; stale-svc and billing stay silent.
        w.clock.set(t0() + Duration::days(40));
        w.app.services.inventory().declare_edge(&admin, uses("checkout", "^2")).await.expect("refresh");
        crate::retirements::accept_webhooks(&w).await;

        let bad = schedule(&w, json!({ "notifySeenWithinDays": 0 })).await;
        assert_eq!(error_code(&bad), "VALIDATION", "{bad}");
        assert_eq!(crate::console::count(&w.app, "SELECT COUNT(*) FROM retirements").await, 0, "nothing written");

        let scheduled = schedule(&w, json!({ "notifySeenWithinDays": 30 })).await;
        let r = &scheduled["data"]["scheduleRetirement"];
        assert_eq!(r["notifySeenWithinDays"], 30, "{scheduled}");
        let id = r["id"].as_str().expect("id").to_owned();
        deliver(&w).await;
        let dependents = w.app.gql_ok(&w.governance, DEPENDENTS, json!({ "id": id })).await;
        let by_name = |n: &str| dependents["retirement"]["dependents"].as_array().expect("d").iter().find(|d| d["consumer"] == n).cloned().unwrap_or_else(|| panic!("{n} in {dependents}"));
        assert_eq!(by_name("checkout")["informedByOwner"], false);
        assert!(by_name("checkout")["notifiedAt"].is_string());
        for quiet in ["stale-svc", "billing"] {
            let d = by_name(quiet);
            assert_eq!(d["informedByOwner"], true, "{d}");
            assert!(d["notifiedAt"].is_null() && d["nextReminderAt"].is_null(), "{d}");
        }
        let to: Vec<String> = mails(&w.mail).iter().flat_map(|m| m.to.clone()).collect();
        assert!(to.iter().any(|t| t.contains("payments@example.org")), "{to:?}");
        assert!(!to.iter().any(|t| t.contains("stale-svc@example.org") || t.contains("billing@example.org")), "{to:?}");
        // The console's retirement page says who was told and who is left to its owner.
        let mut console = crate::console::Console::new(&w.app.address);
        assert_eq!(console.sign_in(&w.governance).await.status, 303);
        let page = console.get(&format!("/ui/retirements/{id}")).await;
        assert!(page.body.contains("only dependents seen within 30 days"), "{}", page.body);
        assert_eq!(page.body.matches("informed by its owner").count(), 2);
    }
}

on_both_backends! {
    /// In a brownout window a dependent that has not acknowledged gets 503 with
    /// Retry-After and the Sunset headers; one that acknowledged is served; outside the
    /// windows everyone is. The windows are in the calendar feed and the notices.
    async fn a_brownout_refuses_unacknowledged_dependents_for_its_window(backend: Backend = crate::support::backend) {
        let w = world_with(backend, |_| {}).await;
        let owner = w.app.token("ml-owner-up", "owner", Some("ml")).await;
        let put = w.app.client.put(format!("{}/v1/models/fraud/versions/2.1.0/artifacts/model.bin", w.app.address))
            .bearer_auth(&owner).body(vec![5u8; 64]).send().await.expect("put");
        assert_eq!(put.status(), 201);
        declare_consumer(&w, "batch-job").await;
        w.app.services.inventory().declare_edge(&Actor::local_operator(), uses("batch-job", "^2")).await.expect("edge");

        let window = t0() + Duration::days(20);
        let overlapping = schedule(&w, json!({ "brownouts": [
            { "start": window.to_rfc3339(), "minutes": 30 },
            { "start": (window + Duration::minutes(20)).to_rfc3339(), "minutes": 30 },
        ] })).await;
        assert_eq!(error_code(&overlapping), "VALIDATION", "{overlapping}");
        assert!(error_message(&overlapping).contains("overlap"), "{overlapping}");
        assert_eq!(crate::console::count(&w.app, "SELECT COUNT(*) FROM retirements").await, 0, "nothing written");

        let scheduled = schedule(&w, json!({
            "brownouts": [{ "start": window.to_rfc3339(), "minutes": 30 }],
            "dailyBrownouts": { "lastDays": 3, "atUtc": "14:00", "firstMinutes": 10, "lastMinutes": 30 },
        })).await;
        let id = scheduled["data"]["scheduleRetirement"]["id"].as_str().unwrap_or_else(|| panic!("{scheduled}")).to_owned();
        let windows = w.app.gql_ok(&w.governance, "query($id: ID!) { retirement(id: $id) { brownouts { start end } } }", json!({ "id": id })).await;
        assert_eq!(windows["retirement"]["brownouts"].as_array().map(Vec::len), Some(4), "{windows}");
        w.app.gql_ok(&w.governance, "mutation($id: ID!, $c: String!) { acknowledgeRetirement(id: $id, consumer: $c) { consumer } }", json!({ "id": id, "c": "checkout" })).await;

        // The notices announce the windows.
        crate::retirements::accept_webhooks(&w).await;
        deliver(&w).await;
        assert!(mails(&w.mail).iter().any(|m| m.data.contains("Brownouts:")));

        let batch = w.app.consumer_token("batch-deploy", "reader", "batch-job").await;
        let checkout = w.app.consumer_token("checkout-deploy", "reader", "checkout").await;
        assert_eq!(download(&w, &batch).await.status(), 200, "before the window");
        w.clock.set(window + Duration::minutes(5));
        let browned = download(&w, &batch).await;
        assert_eq!(browned.status(), 503);
        assert_eq!(browned.headers()["retry-after"], "1500");
        assert!(browned.headers()["link"].to_str().expect("ascii").contains(&format!("/v1/retirements/{id}")));
        assert!(browned.headers().contains_key("sunset"));
        let body: Value = browned.json().await.expect("json");
        assert_eq!(body["error"]["code"], "BROWNOUT");
        assert!(body["error"]["message"].as_str().expect("m").contains("has not acknowledged"), "{body}");
        assert_eq!(download(&w, &checkout).await.status(), 200, "an acknowledged dependent is served");
        let refusals = crate::console::count(&w.app, "SELECT COUNT(*) FROM audit_records WHERE action = 'artifact.download_refused' AND actor = 'batch-deploy'").await;
        assert_eq!(refusals, 1);
        w.clock.set(window + Duration::minutes(30));
        assert_eq!(download(&w, &batch).await.status(), 200, "the window's end is outside it");

        // The calendar lists every window as an event of its own.
        let ics = w.app.client.get(format!("{}/v1/retirements.ics", w.app.address))
            .bearer_auth(&w.governance).send().await.expect("ics").text().await.expect("text");
        assert_eq!(ics.matches("SUMMARY:Brownout of fraud ^2").count(), 4, "{ics}");
        assert!(ics.contains("DTSTART:20261221T100000Z\r\nDTEND:20261221T103000Z"), "{ics}");
        assert!(ics.contains("DTSTART:20261228T140000Z\r\nDTEND:20261228T141000Z"), "{ics}");
        // And in the console's calendar, on their days.
        let mut console = crate::console::Console::new(&w.app.address);
        assert_eq!(console.sign_in(&w.governance).await.status, 303);
        let month = console.get("/ui/calendar?month=2026-12").await;
        assert_eq!(month.body.matches("brownout of fraud ^2").count(), 4, "{}", month.body);
    }
}

on_both_backends! {
    /// Enforcement points learn brownouts like the kill switch: a signed push through
    /// the outbox on the retirement check (once per change: scheduled, a dependent
    /// acknowledging, the retirement cancelled), a list to poll with an ETag, and a
    /// subscription on another replica.
    async fn enforcement_points_learn_brownouts_by_push_poll_and_subscription(backend: Backend = crate::support::backend) {
        use crate::subscriptions::{connect, next};
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, ResponseTemplate};

        let w = world_with(backend, |_| {}).await;
        let secret = crate::retirements::decommission::enforcement_point(&w, "gw-edge", true).await.expect("secret");
        Mock::given(method("POST")).and(path("/gw-edge"))
            .and(crate::retirements::SignedWith { secret, clock: w.clock.clone() })
            .respond_with(ResponseTemplate::new(204)).mount(&w.receiver).await;
        crate::retirements::accept_webhooks(&w).await;
        let gw = w.app.consumer_token("gw-edge-token", "reader", "gw-edge").await;
        let other = w.app.spawn_sibling_on(w.clock.clone()).await;
        let mut socket = connect(&other.address, &gw).await;
        assert_eq!(next(&mut socket).await["type"], "connection_ack");
        socket.send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { brownoutsChanged { etag windows { retirementId model versions start end refused } } }" } }).to_string())).await.expect("subscribe");
        let pushed = |m: Value| m["payload"]["data"]["brownoutsChanged"].clone();
        assert_eq!(pushed(next(&mut socket).await)["windows"], json!([]), "the list as it stands first");

        let window = t0() + Duration::days(20);
        let later = window + Duration::days(1);
        let scheduled = schedule(&w, json!({ "brownouts": [{ "start": window.to_rfc3339(), "minutes": 30 }, { "start": later.to_rfc3339(), "minutes": 30 }] })).await;
        let id = scheduled["data"]["scheduleRetirement"]["id"].as_str().unwrap_or_else(|| panic!("{scheduled}")).to_owned();
        let seen = pushed(next(&mut socket).await);
        assert_eq!(seen["windows"][0]["refused"], json!(["billing", "checkout"]), "{seen}");
        assert_eq!(seen["windows"][0]["versions"], json!(["2.0.0", "2.1.0"]));

        // The push: one signed notice per change, on the retirement check.
        let retirements = w.app.services.retirements();
        assert_eq!(retirements.push_brownouts().await.expect("push"), 1);
        assert_eq!(retirements.push_brownouts().await.expect("push"), 0, "nothing changed");
        deliver(&w).await;
        let (etag, first) = poll(&w, &gw, None).await;
        assert_eq!(first["brownouts"][0]["refused"], json!(["billing", "checkout"]));
        assert_eq!(seen["etag"], etag, "the subscription and the list agree");
        let notices = point_notices(&w).await;
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0]["type"], "model.versions.brownouts");
        assert_eq!((notices[0]["data"]["retirementId"].as_str(), notices[0]["data"]["etag"].as_str()), (Some(id.as_str()), Some(etag.as_str())));
        assert_eq!(notices[0]["data"]["refused"], json!(["billing", "checkout"]));
        assert_eq!(notices[0]["data"]["brownouts"], json!([{ "start": window, "end": window + Duration::minutes(30) }, { "start": later, "end": later + Duration::minutes(30) }]));
        let anonymous = w.app.client.get(format!("{}/v1/brownouts", w.app.address)).send().await.expect("get");
        assert_eq!(anonymous.status(), 401, "a token is needed");
        let (again, unchanged) = poll(&w, &gw, Some(&etag)).await;
        assert_eq!((again.as_str(), unchanged), (etag.as_str(), Value::Null), "304 while nothing changed");

        // checkout acknowledges: no longer refused, told everywhere.
        w.app.gql_ok(&w.governance, "mutation($id: ID!) { acknowledgeRetirement(id: $id, consumer: \"checkout\") { consumer } }", json!({ "id": id })).await;
        assert_eq!(pushed(next(&mut socket).await)["windows"][0]["refused"], json!(["billing"]));
        assert_eq!(retirements.push_brownouts().await.expect("push"), 1);
        deliver(&w).await;
        let (etag2, _) = poll(&w, &gw, Some(&etag)).await;
        assert_ne!(etag2, etag);
        let notices = point_notices(&w).await;
        assert_eq!((notices.len(), notices[1]["data"]["refused"].clone()), (2, json!(["billing"])));

        // A window ending is no news to a point holding the list: nothing is pushed.
        w.clock.set(window + Duration::hours(1));
        assert_eq!(retirements.push_brownouts().await.expect("push"), 0);
        assert_eq!(poll(&w, &gw, None).await.1["brownouts"].as_array().map(Vec::len), Some(1), "the window to come");

        // Cancelled: nothing left to refuse, and the points hear that too.
        w.app.gql_ok(&w.governance, "mutation($id: ID!) { cancelRetirement(id: $id, reason: \"no longer needed, plans changed\") { state } }", json!({ "id": id })).await;
        assert_eq!(pushed(next(&mut socket).await)["windows"], json!([]));
        assert_eq!(retirements.push_brownouts().await.expect("push"), 1);
        assert_eq!(retirements.push_brownouts().await.expect("push"), 0);
        deliver(&w).await;
        let notices = point_notices(&w).await;
        assert_eq!(notices.len(), 3);
        assert!(notices[2]["data"].get("brownouts").is_none() && notices[2]["data"].get("refused").is_none(), "{}", notices[2]);
        assert_eq!(poll(&w, &gw, None).await.1["brownouts"], json!([]));
    }
}

/// `GET /v1/brownouts` with `If-None-Match: known`: the ETag, and the body unless 304.
async fn poll(w: &World, token: &str, known: Option<&str>) -> (String, Value) {
    let mut request = w
        .app
        .client
        .get(format!("{}/v1/brownouts", w.app.address))
        .bearer_auth(token);
    if let Some(etag) = known {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.expect("get");
    let etag = response.headers()["etag"]
        .to_str()
        .expect("ascii")
        .to_owned();
    if response.status() == 304 {
        return (etag, Value::Null);
    }
    assert_eq!(response.status(), 200);
    (etag, response.json().await.expect("json"))
}

/// The notices gw-edge received, in order.
async fn point_notices(w: &World) -> Vec<Value> {
    w.receiver
        .received_requests()
        .await
        .expect("requests")
        .iter()
        .filter(|r| r.url.path() == "/gw-edge")
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect()
}
