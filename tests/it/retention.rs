//! Retention that acts (AISVS 3.6.1, 3.3.5): a year of the injected clock, reviewed each
//! week as the scheduled job would, with a model whose versions are promoted, deprecated,
//! rolled back and kept. What the policy no longer keeps is proposed once; governance
//! accepts (a retirement with the tier's notice) or dismisses; the production version and
//! the one rollback returns to are never proposed; a quiet version is scheduled by the
//! service itself when the policy says so, its dependents still told.

use crate::artifacts::{fill_with_fixture, signed_fixture_version};
use crate::support::{Backend, TestApp, error_code, error_message};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use sunset::clock::{Clock, ManualClock};
use sunset::service::RetentionReport;

const POLICY: &str = "mutation($i: ModelPolicyInput!) { setModelPolicy(model: \"fraud-scorer\", input: $i) { retentionDays quietDays } }";
const PROPOSALS: &str = "query($s: RetentionProposalState) { retentionProposals(model: \"fraud-scorer\", state: $s) { id version rule why state decidedBy note retirement { id createdBy effectiveAt affectedVersions replacementVersion reason dependents { consumer } } } }";
const ACCEPT: &str = "mutation($v: String!, $n: String) { acceptRetentionProposal(model: \"fraud-scorer\", version: $v, note: $n) { state decidedBy note retirement { id effectiveAt } } }";
const DISMISS: &str = "mutation($v: String!, $n: String!) { dismissRetentionProposal(model: \"fraud-scorer\", version: $v, note: $n) { state decidedBy note } }";

/// An app on a clock the test moves, with no job firing on its own.
async fn world(backend: Backend) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(crate::retirements::t0()));
    let app = TestApp::spawn_with(backend, clock.clone(), |s| {
        s.notifications.deliver = false;
        s.retirement.check_schedule = "0 0 0 1 1 * 2099".into();
        s.retirement.retention_schedule = "0 0 0 1 1 * 2099".into();
    })
    .await;
    (app, clock)
}

async fn promote(app: &TestApp, owner: &str, version: &str) {
    for to in ["STAGING", "PRODUCTION"] {
        app.gql_ok(owner, "mutation($v: String!, $to: LifecycleStatus!) { transitionVersion(model: \"fraud-scorer\", version: $v, to: $to) { status } }", json!({ "v": version, "to": to })).await;
    }
}

async fn new_production_version(app: &TestApp, owner: &str, version: &str) {
    app.gql_ok(owner, "mutation($v: String!) { createVersion(input: { model: \"fraud-scorer\", version: $v }) { version } }", json!({ "v": version })).await;
    fill_with_fixture(app, owner, version).await;
    promote(app, owner, version).await;
}

async fn review(app: &TestApp) -> RetentionReport {
    app.services
        .retirements()
        .review_retention()
        .await
        .expect("retention review")
}

async fn proposals(app: &TestApp, token: &str) -> BTreeMap<String, Value> {
    let data = app.gql_ok(token, PROPOSALS, json!({})).await;
    data["retentionProposals"]
        .as_array()
        .expect("proposals")
        .iter()
        .map(|p| {
            (
                p["version"].as_str().expect("version").to_owned(),
                p.clone(),
            )
        })
        .collect()
}

/// A consumer of the team that declares use of `versions` of fraud-scorer.
async fn consumer_using(app: &TestApp, owner: &str, name: &str, versions: &str) {
    app.gql_ok(owner, "mutation($n: String!) { declareConsumer(input: { name: $n, kind: SERVICE, ownerTeam: \"payments-ml\", environment: \"prod\" }) { created } }", json!({ "n": name })).await;
    app.gql_ok(owner, "mutation($n: String!, $v: String!) { declareUse(consumer: $n, model: \"fraud-scorer\", version: $v) { kind } }", json!({ "n": name, "v": versions })).await;
}

/// 1.0.0 promoted now, then each of `later` on its day from `start`.
async fn promoted_in_turn(app: &TestApp, clock: &ManualClock, owner: &str, later: &[(i64, &str)]) {
    let start = clock.now();
    promote(app, owner, "1.0.0").await;
    for &(d, v) in later {
        clock.set(start + Duration::days(d));
        new_production_version(app, owner, v).await;
    }
}

fn day(start: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - start).num_days()
}

on_both_backends! {
    /// 1.0.0 to 1.3.0 promoted on days 0, 10, 20 and 30; deprecated versions kept 90
    /// days. Reviewed weekly for a year: 1.0.0 is proposed on the first review from day
    /// 100, accepted; 1.1.0 from day 110, dismissed; 1.2.0, where rollback returns, only
    /// once 1.4.0's promotion makes 1.3.0 the rollback target, and it lapses when the
    /// policy is relaxed. 1.3.0 and 1.4.0 are never proposed.
    async fn a_year_of_reviews_proposes_what_the_policy_no_longer_keeps(backend: Backend = crate::support::backend) {
        let (app, clock) = world(backend).await;
        let start = clock.now();
        let owner = signed_fixture_version(&app).await;
        let gov = app.token("gov", "governance", None).await;
        let reader = app.token("someone", "reader", None).await;
        app.gql_ok(&gov, POLICY, json!({ "i": { "retentionDays": 90 } })).await;
        consumer_using(&app, &owner, "batch-scorer", "1.0.0").await;
        promoted_in_turn(&app, &clock, &owner, &[(10, "1.1.0"), (20, "1.2.0"), (30, "1.3.0")]).await;
        assert_eq!(review(&app).await, RetentionReport::default(), "nothing is due on day 30");

        let mut proposed_on: BTreeMap<String, i64> = BTreeMap::new();
        let mut accepted = None;
        for week in 1..=48 {
            clock.advance(Duration::days(7));
            let today = day(start, clock.now());
            if week == 30 {
                // 1.3.0 becomes the rollback target; 1.2.0 is one no longer.
                new_production_version(&app, &owner, "1.4.0").await;
            }
            if week == 40 {
                app.gql_ok(&gov, POLICY, json!({ "i": { "retentionDays": 3650 } })).await;
            }
            let report = review(&app).await;
            let open = proposals(&app, &reader).await;
            for v in open.keys() {
                if !proposed_on.contains_key(v) {
                    proposed_on.insert(v.clone(), today);
                    assert_eq!(report.proposed, 1, "proposed once, on day {today}: {report:?}");
                }
            }
            if week == 11 {
                // Only governance decides.
                let refused = app.gql(&reader, ACCEPT, json!({ "v": "1.0.0" })).await;
                assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
                let done = app.gql_ok(&gov, ACCEPT, json!({ "v": "1.0.0", "n": "CHG-2231" })).await;
                let p = &done["acceptRetentionProposal"];
                assert_eq!((p["state"].as_str(), p["decidedBy"].as_str(), p["note"].as_str()), (Some("ACCEPTED"), Some("gov"), Some("CHG-2231")));
                accepted = Some((clock.now(), p["retirement"]["effectiveAt"].as_str().expect("date").to_owned()));
                let again = app.gql(&gov, ACCEPT, json!({ "v": "1.0.0" })).await;
                assert_eq!(error_code(&again), "CONFLICT", "{again}");
            }
            if week == 13 {
                let bad = app.gql(&gov, DISMISS, json!({ "v": "1.1.0", "n": " " })).await;
                assert_eq!(error_code(&bad), "VALIDATION", "a dismissal says why: {bad}");
                let kept = app.gql_ok(&gov, DISMISS, json!({ "v": "1.1.0", "n": "kept for the INC-5120 review" })).await;
                assert_eq!(kept["dismissRetentionProposal"]["state"], "DISMISSED");
            }
        }
        // Day 100 is week 10's review (30 + 70); 110 falls in week 12 (day 114); 1.2.0
        // is due at once when it stops being the rollback target (week 30, day 240).
        assert_eq!(proposed_on, BTreeMap::from([("1.0.0".to_owned(), 100), ("1.1.0".to_owned(), 114), ("1.2.0".to_owned(), 240)]));

        let all = proposals(&app, &reader).await;
        let first = &all["1.0.0"];
        assert_eq!((first["state"].as_str(), first["rule"].as_str()), (Some("ACCEPTED"), Some("RETENTION_DAYS")));
        assert!(first["why"].as_str().unwrap_or_default().contains("longer than the 90 days"), "{first}");
        let retirement = &first["retirement"];
        assert_eq!(retirement["affectedVersions"], json!(["1.0.0"]));
        assert_eq!(retirement["replacementVersion"], "1.3.0", "the production version then");
        assert_eq!(retirement["dependents"], json!([{ "consumer": "batch-scorer" }]), "its consumer is told");
        // The high tier's 30 days' notice, to the next midnight UTC.
        let (accepted_at, effective) = accepted.expect("accepted");
        let expected = sunset::domain::effective_date(accepted_at + Duration::days(30));
        assert_eq!(DateTime::parse_from_rfc3339(&effective).expect("date"), expected);
        assert_eq!(all["1.1.0"]["state"], "DISMISSED");
        assert_eq!(all["1.2.0"]["state"], "LAPSED", "the relaxed policy keeps it");
        assert!(!all.contains_key("1.3.0") && !all.contains_key("1.4.0"), "{all:?}");

        // Every step is in the audit trail.
        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { subject: \"fraud-scorer@1.2.0\" }) { edges { node { action actor } } } }", json!({})).await;
        let actions: Vec<(String, String)> = log["auditLog"]["edges"].as_array().expect("edges").iter()
            .map(|e| (e["node"]["action"].as_str().unwrap_or_default().to_owned(), e["node"]["actor"].as_str().unwrap_or_default().to_owned()))
            .filter(|(a, _)| a.starts_with("retention."))
            .collect();
        assert_eq!(actions, vec![("retention.proposed".to_owned(), "retention".to_owned()), ("retention.decided".to_owned(), "retention".to_owned())]);
    }
}

on_both_backends! {
    /// With a quiet period in the policy, a due version whose consumers have not been
    /// seen for it is scheduled by the service, not proposed; its dependents are told
    /// all the same. Seen more recently, it is proposed, and scheduled once quiet.
    async fn a_quiet_due_version_is_scheduled_by_the_service_with_its_notice(backend: Backend = crate::support::backend) {
        let (app, clock) = world(backend).await;
        let start = clock.now();
        let owner = signed_fixture_version(&app).await;
        let gov = app.token("gov", "governance", None).await;
        let set = app.gql_ok(&gov, POLICY, json!({ "i": { "retentionDays": 30, "quietDays": 60 } })).await;
        assert_eq!(set["setModelPolicy"], json!({ "retentionDays": 30, "quietDays": 60 }));
        let bad = app.gql(&gov, POLICY, json!({ "i": { "quietDays": 0 } })).await;
        assert_eq!(error_code(&bad), "VALIDATION", "{bad}");
        assert!(error_message(&bad).contains("quietDays"), "{bad}");

        consumer_using(&app, &owner, "batch-scorer", "1.0.0").await;
        promoted_in_turn(&app, &clock, &owner, &[(1, "1.1.0"), (2, "1.2.0")]).await;
        // Day 31: 1.0.0 is due (deprecated on day 1); its consumer declared on day 0.
        clock.set(start + Duration::days(31));
        assert_eq!(review(&app).await, RetentionReport { proposed: 1, scheduled: 0, lapsed: 0 });
        // Day 61: nothing has shown the consumer since: the service schedules it.
        clock.set(start + Duration::days(61));
        assert_eq!(review(&app).await, RetentionReport { proposed: 0, scheduled: 1, lapsed: 0 });
        assert_eq!(review(&app).await, RetentionReport::default(), "once");

        let all = proposals(&app, &gov).await;
        let p = &all["1.0.0"];
        assert_eq!((p["state"].as_str(), p["decidedBy"].as_str(), p["note"].as_str()), (Some("SCHEDULED"), Some("retention"), Some("no consumer seen for 60 days")));
        let r = &p["retirement"];
        assert_eq!(r["createdBy"], "retention");
        assert_eq!(r["dependents"], json!([{ "consumer": "batch-scorer" }]), "told, quiet or not");
        assert!(r["reason"].as_str().unwrap_or_default().contains("no consumer seen for 60 days"), "{r}");
        let accept = app.gql(&gov, ACCEPT, json!({ "v": "1.0.0" })).await;
        assert_eq!(error_code(&accept), "CONFLICT", "{accept}");
        assert!(error_message(&accept).contains("is scheduled already"), "{accept}");
        assert!(!all.contains_key("1.1.0"), "where rollback returns");
    }
}

/// Two replicas on one PostgreSQL database run the same scheduled tick: one claims it,
/// and the version is proposed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_review_each_tick_once() {
    let (app, clock) = world(Backend::Postgres).await;
    let start = clock.now();
    let owner = signed_fixture_version(&app).await;
    let gov = app.token("gov", "governance", None).await;
    app.gql_ok(&gov, POLICY, json!({ "i": { "retentionDays": 30 } }))
        .await;
    promoted_in_turn(&app, &clock, &owner, &[(1, "1.1.0"), (2, "1.2.0")]).await;
    let other = app.spawn_sibling_on(clock.clone()).await;
    clock.set(start + Duration::days(40));
    let tick = clock.now();
    let (here, there) = (app.services.retirements(), other.services.retirements());
    let (a, b) = tokio::join!(
        here.run_scheduled_retention(tick, "replica-a"),
        there.run_scheduled_retention(tick, "replica-b"),
    );
    let ran: Vec<RetentionReport> = [a.expect("a"), b.expect("b")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        ran,
        vec![RetentionReport {
            proposed: 1,
            scheduled: 0,
            lapsed: 0
        }],
        "one replica ran the tick"
    );
    assert_eq!(proposals(&app, &gov).await.len(), 1);
}

on_both_backends! {
    /// The model's page lists what retention proposed; governance keeps one (saying why)
    /// and schedules the other from it; a reader sees no form and is refused posting one.
    async fn governance_decides_proposals_from_the_model_page(backend: Backend = crate::support::backend) {
        let (app, clock) = world(backend).await;
        let start = clock.now();
        let owner = signed_fixture_version(&app).await;
        let gov = app.token("gov", "governance", None).await;
        let reader = app.token("rita", "reader", None).await;
        app.gql_ok(&gov, POLICY, json!({ "i": { "retentionDays": 30 } })).await;
        promoted_in_turn(&app, &clock, &owner, &[(1, "1.1.0"), (2, "1.2.0"), (3, "1.3.0")]).await;
        clock.set(start + Duration::days(40));
        assert_eq!(review(&app).await.proposed, 2, "1.0.0 and 1.1.0; 1.2.0 is where rollback returns");
        let page = "/ui/models/fraud-scorer";
        let form = |v: &str| format!("action=\"/ui/models/fraud-scorer/retention/{v}\"");

        let mut rita = crate::console::Console::new(&app.address);
        assert_eq!(rita.sign_in(&reader).await.status, 303);
        let csrf = rita.csrf().await;
        let seen = rita.get(page).await;
        assert!(seen.body.contains("<h2>Retention</h2>") && seen.body.contains("longer than the 30 days"), "{}", seen.body);
        assert!(!seen.body.contains(&form("1.0.0")), "no form for a reader");
        let refused = rita.post("/ui/models/fraud-scorer/retention/1.0.0", &[("csrf", &csrf), ("decision", "accept"), ("note", "")]).await;
        assert_eq!(refused.status, 403, "{}", refused.body);

        let mut g = crate::console::Console::new(&app.address);
        assert_eq!(g.sign_in(&gov).await.status, 303);
        let csrf = g.csrf().await;
        assert!(g.get(page).await.body.contains(&form("1.1.0")));
        let unsaid = g.post("/ui/models/fraud-scorer/retention/1.1.0", &[("csrf", &csrf), ("decision", "dismiss"), ("note", "")]).await;
        assert_eq!(unsaid.status, 422, "a dismissal says why: {}", unsaid.body);
        assert!(unsaid.body.contains("role=\"alert\"") && unsaid.body.contains("note"), "{}", unsaid.body);
        let kept = g.post("/ui/models/fraud-scorer/retention/1.1.0", &[("csrf", &csrf), ("decision", "dismiss"), ("note", "the INC-5120 review replays it")]).await;
        assert_eq!((kept.status, kept.location()), (303, page));
        let scheduled = g.post("/ui/models/fraud-scorer/retention/1.0.0", &[("csrf", &csrf), ("decision", "accept"), ("note", "CHG-2231")]).await;
        assert_eq!(scheduled.status, 303, "{}", scheduled.body);
        assert!(scheduled.location().starts_with("/ui/retirements/"), "{}", scheduled.location());
        let after = g.get(page).await.body;
        assert!(after.contains("dismissed by gov: the INC-5120 review replays it"), "{after}");
        assert!(after.contains("accepted by gov: CHG-2231") && after.contains(&format!("href=\"{}\"", scheduled.location())), "{after}");
        assert!(!after.contains(&form("1.0.0")) && !after.contains(&form("1.1.0")), "decided: no more forms");
    }
}

on_both_backends! {
    /// A version governance retires by hand while its proposal waits: the next review
    /// lapses the proposal, saying why.
    async fn a_proposal_a_hand_scheduled_retirement_covers_lapses(backend: Backend = crate::support::backend) {
        let (app, clock) = world(backend).await;
        let start = clock.now();
        let owner = signed_fixture_version(&app).await;
        let gov = app.token("gov", "governance", None).await;
        app.gql_ok(&gov, POLICY, json!({ "i": { "retentionDays": 30 } })).await;
        promoted_in_turn(&app, &clock, &owner, &[(1, "1.1.0"), (2, "1.2.0")]).await;
        clock.set(start + Duration::days(31));
        assert_eq!(review(&app).await.proposed, 1);
        let effective = (clock.now() + Duration::days(31)).to_rfc3339();
        app.gql_ok(&gov, "mutation($at: DateTime!) { scheduleRetirement(input: { model: \"fraud-scorer\", versions: \"1.0.0\", reason: \"superseded by 1.2.0\", effectiveAt: $at }) { id } }", json!({ "at": effective })).await;
        assert_eq!(review(&app).await, RetentionReport { proposed: 0, scheduled: 0, lapsed: 1 });
        let p = &proposals(&app, &gov).await["1.0.0"];
        assert_eq!((p["state"].as_str(), p["note"].as_str()), (Some("LAPSED"), Some("a retirement scheduled meanwhile covers it")), "{p}");
        assert_eq!(review(&app).await, RetentionReport::default());
    }
}
