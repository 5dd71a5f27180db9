//! What a replica reports to Prometheus, on a listener of its own (`metrics.listen`, on
//! loopback by default) so that it is never served with the API by accident.
//!
//! Counters and histograms are recorded where things happen, through the `metrics`
//! facade (`record_*` below); gauges that are counts in the database (outbox, retirements,
//! the inventory's head) are sampled every [`SAMPLE_EVERY`] by one worker. One recorder
//! per process: replicas are processes, so each reports its own.

use crate::service::Services;
use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often the database's gauges are read again.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Latency buckets, in seconds: from a cached answer to a slow transfer.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// The process's recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .unwrap_or_else(|_| {
                    // Another recorder is installed (a test harness): render an empty one.
                    PrometheusBuilder::new().build_recorder().handle()
                });
            describe();
            gauge!("sunset_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "sunset_http_requests_total",
        "HTTP requests answered, by route, method and status."
    );
    describe_histogram!(
        "sunset_http_request_duration_seconds",
        Unit::Seconds,
        "Time to an HTTP response's head, by route and method."
    );
    describe_counter!(
        "sunset_graphql_operations_total",
        "GraphQL operations, by type, first root field and outcome (ok, errors, refused)."
    );
    describe_histogram!(
        "sunset_graphql_operation_duration_seconds",
        Unit::Seconds,
        "Time to execute a GraphQL operation, by type and first root field."
    );
    describe_gauge!("sunset_outbox_notices", "Notices in the outbox, by state.");
    describe_gauge!(
        "sunset_outbox_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest notice not yet delivered (0 when none)."
    );
    describe_counter!(
        "sunset_notice_deliveries_total",
        "Notice delivery attempts by this replica, by channel and outcome."
    );
    describe_gauge!("sunset_retirements", "Retirements, by state.");
    describe_gauge!(
        "sunset_inventory_graph_revision",
        "The inventory change this replica's graph has taken in."
    );
    describe_gauge!(
        "sunset_inventory_graph_lag_revisions",
        "Inventory changes committed to the database that this replica's graph has not taken in yet."
    );
    describe_histogram!(
        "sunset_kill_switch_response_seconds",
        Unit::Seconds,
        "Time from executing a retirement to its downloads being refused."
    );
    describe_counter!(
        "sunset_scan_lines_total",
        "Access-log lines read by scans, by source."
    );
    describe_counter!(
        "sunset_scan_unknown_lines_total",
        "Scanned lines naming a model, version or caller the inventory does not know, by source."
    );
    describe_counter!(
        "sunset_registration_messages_total",
        "Registration webhook messages, by outcome (applied, refused)."
    );
    describe_gauge!(
        "sunset_kek_epochs_held",
        "Key-encryption-key epochs this replica holds."
    );
    describe_gauge!(
        "sunset_build_info",
        "Always 1; the version running, as a label."
    );
}

/// `GET /metrics` on the metrics listener.
pub fn router() -> axum::Router {
    let handle = handle();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

/// Counts and times every request by its route pattern (never the raw path, whose model
/// names and tokens would make labels without end).
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!("sunset_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    counter!("sunset_http_requests_total", "route" => route, "method" => method, "status" => status).increment(1);
    response
}

pub fn record_graphql(kind: &'static str, field: String, outcome: &'static str, took: Duration) {
    histogram!("sunset_graphql_operation_duration_seconds", "type" => kind, "field" => field.clone())
        .record(took.as_secs_f64());
    counter!("sunset_graphql_operations_total", "type" => kind, "field" => field, "outcome" => outcome)
        .increment(1);
}

pub fn record_delivery(channel: &str, outcome: &'static str) {
    counter!("sunset_notice_deliveries_total", "channel" => channel.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub fn record_kill_switch(took: Duration) {
    histogram!("sunset_kill_switch_response_seconds").record(took.as_secs_f64());
}

pub fn record_scan(source: &str, lines: u64, unknown: u64) {
    counter!("sunset_scan_lines_total", "source" => source.to_owned()).increment(lines);
    counter!("sunset_scan_unknown_lines_total", "source" => source.to_owned()).increment(unknown);
}

pub fn record_registrations(outcome: &'static str, messages: u64) {
    counter!("sunset_registration_messages_total", "outcome" => outcome).increment(messages);
}

/// Reads the database's gauges every [`SAMPLE_EVERY`] until the process stops.
pub async fn sample(services: Services) {
    loop {
        sample_once(&services).await;
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// Reads the database's gauges once.
pub async fn sample_once(services: &Services) {
    match services.admin().gauges().await {
        Ok(g) => {
            // Every state is reported, a count of 0 included, so a series never vanishes.
            for state in crate::domain::NoticeState::ALL {
                let n = count_of(&g.notices_by_state, state.as_str());
                gauge!("sunset_outbox_notices", "state" => state.as_str()).set(n);
            }
            let age = g.oldest_pending_notice.map_or(0.0, |t| {
                (services.now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            gauge!("sunset_outbox_oldest_pending_age_seconds").set(age);
            for state in crate::domain::RetirementState::ALL {
                let n = count_of(&g.retirements_by_state, state.as_str());
                gauge!("sunset_retirements", "state" => state.as_str()).set(n);
            }
            gauge!("sunset_inventory_graph_revision").set(g.graph_revision as f64);
            gauge!("sunset_inventory_graph_lag_revisions")
                .set((g.inventory_head - g.graph_revision).max(0) as f64);
            gauge!("sunset_kek_epochs_held").set(g.kek_epochs as f64);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the gauges for /metrics"),
    }
    handle().run_upkeep();
}

fn count_of(counts: &[(String, i64)], state: &str) -> f64 {
    counts
        .iter()
        .find(|(s, _)| s == state)
        .map_or(0.0, |(_, n)| *n as f64)
}
