//! The calendar: a month of effective dates at the service's clock, and subscription
//! addresses made, shown once, served as iCalendar and revoked from the page.

use super::Console;
use crate::retirements::{PUBLIC_URL, World, scheduled, t0};
use chrono::Duration;

async fn world(backend: crate::support::Backend) -> World {
    crate::retirements::world_with(backend, |_| {}).await
}

on_both_backends! {
    async fn the_month_shows_effective_dates_and_a_feed_is_made_shown_once_and_revoked(w: World = world) {
        let id = scheduled(&w, t0() + Duration::days(30)).await;
        let reader = w.app.token("rita", "reader", None).await;
        let mut rita = Console::new(&w.app.address);
        assert_eq!(rita.sign_in(&reader).await.status, 303);

        // The service's clock says 1 December 2026; the retirement takes effect on the 31st.
        let this_month = rita.get("/ui/calendar").await;
        assert_eq!(this_month.status, 200, "{}", this_month.body);
        assert!(this_month.body.contains("December 2026"), "{}", this_month.body);
        assert!(this_month.body.contains("aria-current=\"date\""), "today is marked");
        assert!(this_month.body.contains(&format!("href=\"/ui/retirements/{id}\"")), "{}", this_month.body);
        assert!(this_month.body.contains("fraud ^2") && this_month.body.contains("1 this month"));
        assert!(this_month.body.contains("href=\"/ui/calendar?month=2027-01\""), "the next month's link");
        let january = rita.get("/ui/calendar?month=2027-01").await;
        assert!(january.body.contains("January 2027") && january.body.contains("0 this month"), "{}", january.body);
        assert!(!january.body.contains(&format!("href=\"/ui/retirements/{id}\"")));
        assert_eq!(rita.get("/ui/calendar?month=soon").await.status, 422);

        // A feed: its address once, then served as iCalendar until it is revoked.
        let csrf = rita.csrf().await;
        let nameless = rita.post("/ui/calendar/feeds", &[("csrf", &csrf), ("name", "  ")]).await;
        assert_eq!(nameless.status, 422, "{}", nameless.body);
        assert!(!nameless.body.contains("/v1/calendars/"));
        let made = rita.post("/ui/calendar/feeds", &[("csrf", &csrf), ("name", "team calendar")]).await;
        assert_eq!(made.status, 200, "{}", made.body);
        let at = made.body.find("<code id=\"new-feed-url\">").expect("the address") + "<code id=\"new-feed-url\">".len();
        let url = made.body[at..].split('<').next().expect("url").replace(PUBLIC_URL, &w.app.address);
        assert!(url.contains("/v1/calendars/cal_"), "{url}");
        let feed = w.app.client.get(&url).send().await.expect("feed");
        assert_eq!(feed.status(), 200);
        assert!(feed.text().await.expect("body").contains("BEGIN:VCALENDAR"));
        let listed = rita.get("/ui/calendar").await;
        assert!(listed.body.contains("team calendar") && !listed.body.contains("/v1/calendars/cal_"), "the address is not shown again");

        // Someone else cannot revoke it; its maker can.
        let feed_id = listed.body.split("/ui/calendar/feeds/").nth(1).and_then(|s| s.split('/').next()).expect("feed id").to_owned();
        let other = w.app.token("otto", "reader", None).await;
        let mut otto = Console::new(&w.app.address);
        assert_eq!(otto.sign_in(&other).await.status, 303);
        let otto_csrf = otto.csrf().await;
        assert_eq!(otto.post(&format!("/ui/calendar/feeds/{feed_id}/revoke"), &[("csrf", &otto_csrf)]).await.status, 404);
        assert_eq!(w.app.client.get(&url).send().await.expect("feed").status(), 200);
        let revoked = rita.post(&format!("/ui/calendar/feeds/{feed_id}/revoke"), &[("csrf", &csrf)]).await;
        assert_eq!(revoked.status, 303);
        assert_eq!(w.app.client.get(&url).send().await.expect("feed").status(), 404);
        assert!(rita.get("/ui/calendar").await.body.contains("revoked"));
    }
}
