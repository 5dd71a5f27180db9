//! The console's pages over HTTP: the catalogue's search, a model's page, the headers
//! that keep scripts out, and untrusted text rendered inert.

use super::Console;
use serde_json::json;

const MARKUP: &str = "</script><img src=x onerror=alert(1)><script>alert(2)</script>";

/// Models of two teams and tiers; one with a production version and markup in its
/// description. Returns a reader's signed-in console.
async fn catalogue(app: &crate::support::TestApp) -> Console {
    let pay = app.token("pay-owner", "owner", Some("payments")).await;
    let ml = app.token("ml-owner", "owner", Some("ml-platform")).await;
    let create = "mutation($i: CreateModelInput!) { createModel(input: $i) { name } }";
    for (owner, name, team, tier, description) in [
        (&pay, "fraud-scorer", "payments", "CRITICAL", MARKUP),
        (
            &pay,
            "fraud-explainer",
            "payments",
            "STANDARD",
            "explains scores",
        ),
        (&ml, "embedder", "ml-platform", "HIGH", "text embeddings"),
    ] {
        app.gql_ok(owner, create, json!({ "i": { "name": name, "ownerTeam": team, "tier": tier, "description": description, "contacts": ["ml@example.org"] } })).await;
    }
    app.gql_ok(&pay, "mutation { createVersion(input: { model: \"fraud-scorer\", version: \"1.0.0\" }) { version } }", json!({})).await;
    let reader = app.token("reader", "reader", None).await;
    let mut console = Console::new(&app.address);
    assert_eq!(console.sign_in(&reader).await.status, 303);
    console
}

/// The names in the catalogue table of a page, in order.
fn listed(body: &str) -> Vec<String> {
    body.split("<td><a href=\"/ui/models/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

on_both_backends! {
    /// The catalogue searches by part of the name, team, tier and a version's status,
    /// and says why a search it cannot run is wrong.
    async fn the_catalogue_searches_by_name_team_tier_and_status(app) {
        let console = catalogue(&app).await;
        let all = console.get("/ui/models").await;
        assert_eq!(listed(&all.body), ["embedder", "fraud-explainer", "fraud-scorer"]);
        assert_eq!(listed(&console.get("/ui/models?q=fraud").await.body), ["fraud-explainer", "fraud-scorer"]);
        assert_eq!(listed(&console.get("/ui/models?team=ml-platform").await.body), ["embedder"]);
        assert_eq!(listed(&console.get("/ui/models?tier=critical").await.body), ["fraud-scorer"]);
        assert_eq!(listed(&console.get("/ui/models?status=development").await.body), ["fraud-scorer"]);
        assert!(listed(&console.get("/ui/models?q=fraud&tier=high").await.body).is_empty());
        let bad = console.get("/ui/models?q=%3Cb%3E").await;
        assert_eq!(bad.status, 422);
        assert!(bad.body.contains("letters, digits"), "{}", bad.body);
        assert!(bad.body.contains("value=\"&#60;b&#62;\"") || bad.body.contains("value=\"&lt;b&gt;\""), "the search is echoed escaped: {}", bad.body);
        assert_eq!(console.get("/ui/models?tier=gold").await.status, 422);
    }
}

on_both_backends! {
    /// A model's page shows each version's status, signature state and retirement; text
    /// with markup comes out as text on every page, and pages carry a policy that runs
    /// this origin's scripts only, with no inline script or handler in any page.
    async fn pages_render_untrusted_text_inert_under_a_strict_policy(app) {
        let console = catalogue(&app).await;
        let model = console.get("/ui/models/fraud-scorer").await;
        assert_eq!(model.status, 200, "{}", model.body);
        assert!(model.body.contains("1.0.0") && model.body.contains("development"));
        assert!(model.body.contains("unsigned"));
        assert!(model.body.contains("a second person approves each promotion to production"), "the critical tier's policy: {}", model.body);
        assert!(model.body.contains("Every rule is the critical tier's."), "{}", model.body);
        for page in [&model, &console.get("/ui/models").await] {
            assert!(!page.body.contains(MARKUP) && !page.body.contains("<img src=x"), "{}", page.body);
            assert!(page.body.contains("&#60;/script&#62;") || page.body.contains("&lt;/script&gt;"), "{}", page.body);
            assert_inert(&page.body);
            let policy = page.headers["content-security-policy"].to_str().expect("ascii");
            assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
            assert_eq!(page.headers["x-content-type-options"], "nosniff");
            assert_eq!(page.headers["cache-control"], "no-store");
        }
        assert_eq!(console.get("/ui/models/no-such-model").await.status, 404);
        let anonymous = Console::new(&app.address);
        let asset = anonymous.get("/ui/assets/console.js").await;
        assert_eq!(asset.status, 200, "assets need no session");
        assert!(asset.headers["content-type"].to_str().expect("ascii").starts_with("text/javascript"));
    }
}

/// No inline script and no event-handler attribute in any tag of a page (escaped text
/// holds no `<`, so only real tags are looked at).
pub fn assert_inert(body: &str) {
    for (at, _) in body.match_indices('<') {
        let tag = &body[at..body[at..].find('>').map_or(body.len(), |e| at + e + 1)];
        let lower = tag.to_ascii_lowercase();
        if lower.starts_with("<script") {
            assert!(
                tag.contains(" src=\"/ui/assets/"),
                "an inline script: {tag}"
            );
        }
        let handler = lower
            .split(|c: char| c.is_whitespace())
            .any(|word| word.starts_with("on") && word.contains('='));
        assert!(
            !handler && !lower.contains("javascript:"),
            "a handler in {tag}"
        );
    }
}
