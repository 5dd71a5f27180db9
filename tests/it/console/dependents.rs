//! The dependents page: the API's answer drawn and listed, a node's evidence, filters,
//! and a hub drawn as groups.

use super::Console;
use serde_json::json;

const DEPENDENTS: &str =
    "query { dependents(model: \"base\", version: \"1.0.0\") { revision complete total } }";

/// Every `href` of the drawn nodes, in drawing order.
fn drawn(body: &str) -> Vec<String> {
    body.split("<a href=\"")
        .skip(1)
        .filter(|s| s.contains("class=\"node "))
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&").replace("&#38;", "&"))
        .collect()
}

on_both_backends! {
    /// A reader sees base@1.0.0's dependents (a consumer, a fine-tuned version, a
    /// consumer of it and a consumer calling that one) drawn and listed with the API's
    /// revision and counts, opens one node's evidence, and filters by kind.
    async fn a_reader_sees_the_dependents_drawn_and_opens_a_nodes_evidence(app) {
        let (ml, _) = crate::inventory::landscape(&app).await;
        let api = app.gql_ok(&ml, DEPENDENTS, json!({})).await["dependents"].clone();
        let reader = app.token("reader", "reader", None).await;
        let mut console = Console::new(&app.address);
        assert_eq!(console.sign_in(&reader).await.status, 303);

        let page = console.get("/ui/models/base/versions/1.0.0/dependents").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains(&format!("revision {}", api["revision"])), "{}", page.body);
        assert!(page.body.contains(&format!("{} within the depth limit", api["total"])));
        assert!(page.body.contains("<strong>complete</strong>"));
        let nodes = drawn(&page.body);
        assert_eq!(nodes.len(), 5, "the version and its four dependents: {nodes:?}");
        crate::console::pages::assert_inert(&page.body);

        let frontend = nodes.iter().find(|h| h.contains("node=frontend")).expect("frontend drawn");
        let evidence = console.get(frontend.trim_end_matches("#evidence")).await;
        assert_eq!(evidence.status, 200);
        let panel = evidence.body.split("id=\"evidence\"").nth(1).expect("an evidence panel");
        assert!(panel.contains("Evidence for frontend"), "{panel}");
        for step in ["frontend <strong>depends_on</strong> search", "search <strong>uses</strong> tuned@1.0.0", "tuned@1.0.0 <strong>derived_from</strong> base@1.0.0"] {
            assert!(panel.contains(step), "{step} in {panel}");
        }
        assert!(panel.contains("<td>api</td>"), "declared through the API: {panel}");

        let services = console.get("/ui/models/base/versions/1.0.0/dependents?kind=service").await;
        assert!(services.body.contains("3 dependents of 4 listed"), "{}", services.body);
        assert!(!drawn(&services.body).iter().any(|h| h.contains("tuned")));
        assert_eq!(console.get("/ui/models/base/versions/9.9.9/dependents").await.status, 404);
        assert_eq!(console.get("/ui/models/base/versions/1.0.0/dependents?limit=0").await.status, 422);
    }
}

on_both_backends! {
    /// Past forty dependents the drawing shows groups (kind and depth) linking to the
    /// filtered list, and the list pages through them all.
    async fn a_hub_is_drawn_as_groups_and_listed_in_pages(app) {
        let ml = app.token("ml-owner", "owner", Some("ml")).await;
        app.create_model(&ml, "hub", "ml").await;
        app.gql_ok(&ml, "mutation { createVersion(input: { model: \"hub\", version: \"1.0.0\" }) { version } }", json!({})).await;
        for i in 0..120 {
            let name = format!("svc-{i:03}");
            app.gql_ok(&ml, "mutation($i: ConsumerInputGql!) { declareConsumer(input: $i) { created } }",
                json!({ "i": { "name": name, "kind": "SERVICE", "ownerTeam": "ml", "environment": "production", "contacts": ["ml@example.org"] } })).await;
            app.gql_ok(&ml, "mutation($c: String!) { declareUse(consumer: $c, model: \"hub\", version: \"1.0.0\") { kind } }", json!({ "c": name })).await;
        }
        let reader = app.token("reader", "reader", None).await;
        let mut console = Console::new(&app.address);
        assert_eq!(console.sign_in(&reader).await.status, 303);
        let page = console.get("/ui/models/hub/versions/1.0.0/dependents").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("120 × service"), "{}", page.body);
        let nodes = drawn(&page.body);
        assert_eq!(nodes.len(), 2, "the hub and one group: {nodes:?}");
        assert!(nodes[1].contains("kind=service") && nodes[1].contains("depth=1"), "{nodes:?}");
        assert_eq!(page.body.matches("<td><a href=").count(), 100, "a page of the list");
        let next = page.body.split("<a href=\"").find(|s| s.starts_with("/ui/models/hub/versions/1.0.0/dependents?") && s.contains("page=1")).expect("a next page");
        let second = console.get(&next.split('"').next().unwrap_or("").replace("&amp;", "&").replace("&#38;", "&")).await;
        assert_eq!(second.body.matches("<td><a href=").count(), 20);
        assert!(second.body.contains("svc-119"));
    }
}
