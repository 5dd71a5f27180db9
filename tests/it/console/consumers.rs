//! Consumers: the search, and a consumer's page with what it depends on and the
//! retirements that affect it.

use super::Console;
use crate::retirements::{World, scheduled, t0};
use chrono::Duration;

async fn world(backend: crate::support::Backend) -> World {
    crate::retirements::world_with(backend, |_| {}).await
}

on_both_backends! {
    async fn a_reader_finds_a_consumer_and_sees_what_it_uses_and_what_affects_it(w: World = world) {
        let id = scheduled(&w, t0() + Duration::days(30)).await;
        let reader = w.app.token("rita", "reader", None).await;
        let mut rita = Console::new(&w.app.address);
        assert_eq!(rita.sign_in(&reader).await.status, 303);

        let found = rita.get("/ui/consumers?q=ill").await;
        assert_eq!(found.status, 200);
        assert!(found.body.contains("href=\"/ui/consumers/billing\""), "{}", found.body);
        assert!(!found.body.contains("href=\"/ui/consumers/analytics\""));
        let too_long = format!("/ui/consumers?q={}", "x".repeat(101));
        assert_eq!(rita.get(&too_long).await.status, 422);

        // billing depends on checkout, which uses fraud ^2: both reach it, transitively.
        let billing = rita.get("/ui/consumers/billing").await;
        assert_eq!(billing.status, 200, "{}", billing.body);
        assert!(billing.body.contains("href=\"/ui/consumers/checkout\""), "{}", billing.body);
        assert!(billing.body.contains("fraud@2.1.0"));
        assert!(billing.body.contains("Retirements affecting it (1)"));
        assert!(billing.body.contains(&format!("href=\"/ui/retirements/{id}\"")));
        assert!(!billing.body.contains("Acknowledge retirement"), "a reader acts for nobody");

        let analytics = rita.get("/ui/consumers/analytics").await;
        assert!(analytics.body.contains("Retirements affecting it (0)"), "{}", analytics.body);
        assert!(analytics.body.contains("fraud@3.0.0"));
        assert_eq!(rita.get("/ui/consumers/nobody").await.status, 404);
    }
}
