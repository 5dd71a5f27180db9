//! Prometheus metrics: served apart from the API, named and described as `promtool`
//! expects, counting what the replica did.

use serde_json::json;

async fn scrape(app: &crate::support::TestApp) -> String {
    let address = app
        .metrics_address
        .as_deref()
        .expect("metrics are on by default");
    let response = app
        .client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.expect("text")
}

/// The value of the sample `name{labels}` (labels as rendered, sorted), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

on_both_backends! {
    async fn metrics_count_requests_and_operations_pass_promtool_and_stay_off_the_api(app) {
        let reader = app.token("metrics-reader", "reader", None).await;
        let before = scrape(&app).await;
        let series = "sunset_graphql_operations_total{type=\"query\",field=\"models\",outcome=\"ok\"}";
        let ops_before = sample(&before, series).unwrap_or(0.0);
        for _ in 0..3 {
            app.gql_ok(&reader, "{ models(first: 1) { edges { node { name } } } }", json!({})).await;
        }
        let refused = app.gql(&reader, "{ nosuchfield }", json!({})).await;
        assert!(refused.get("errors").is_some());
        assert_eq!(app.client.get(format!("{}/metrics", app.address)).send().await.expect("get").status(), 404, "never on the API's address");
        sunset::prometheus::sample_once(&app.services).await;

        let text = scrape(&app).await;
        assert!(sample(&text, series).unwrap_or(0.0) >= ops_before + 3.0, "{text}");
        assert!(sample(&text, "sunset_graphql_operations_total{type=\"unknown\",field=\"-\",outcome=\"refused\"}").is_some(), "{text}");
        assert!(text.contains("sunset_http_requests_total{route=\"/graphql\",method=\"POST\",status=\"200\"}"), "{text}");
        assert!(text.contains("sunset_http_request_duration_seconds_bucket{route=\"/graphql\",method=\"POST\",le=\"0.005\"}"), "{text}");
        assert!(text.contains("sunset_build_info{version=\""), "{text}");
        assert!(sample(&text, "sunset_outbox_notices{state=\"pending\"}").is_some(), "{text}");
        assert!(sample(&text, "sunset_retirements{state=\"scheduled\"}").is_some(), "{text}");
        assert!(sample(&text, "sunset_kek_epochs_held").is_some_and(|n| n >= 1.0), "{text}");
        assert!(sample(&text, "sunset_inventory_graph_lag_revisions").is_some(), "{text}");
        assert!(sample(&text, "sunset_outbox_oldest_pending_age_seconds").is_some(), "{text}");

        let mut promtool = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (tests/run installs the prometheus package)");
        use std::io::Write;
        promtool.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        let out = promtool.wait_with_output().expect("promtool");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
    }
}
