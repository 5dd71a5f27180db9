//! Logging with `tracing`, to standard error so that standard output stays clean for
//! commands whose output is data (`sunset token create` prints only the token). Lines are
//! text for people, or JSON (`log.format = "json"`) for a log pipeline, where each
//! request's lines carry its span: method, route and the W3C trace id. With
//! `[traces] endpoint` set, the same spans go to an OpenTelemetry collector over
//! OTLP/HTTP, a request carrying `traceparent` continuing its caller's trace.

use crate::config::{LogFormat, TraceSettings};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the trace exporter running; [`Telemetry::shutdown`] sends what is buffered.
#[must_use]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter. Blocks for up to the
    /// exporter's timeout: call it from a thread that may block.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: could not send the last traces: {e}");
        }
    }
}

/// Installs the log subscriber and, when `traces` names an endpoint, the OTLP exporter.
/// A trace exporter that cannot be built is reported and left out: traces never stop
/// the service.
pub fn init(format: LogFormat, traces: &TraceSettings) -> Telemetry {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let provider = traces
        .traces_url()
        .and_then(|url| match tracer_provider(&url, traces) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: traces are off: the OTLP exporter for {url} failed: {e}");
                None
            }
        });
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing_opentelemetry::layer().with_tracer(p.tracer("sunset"))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Telemetry { traces: provider }
}

fn tracer_provider(
    url: &str,
    settings: &TraceSettings,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    // reqwest's rustls takes the process's provider; ring is the one the tree builds.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(std::time::Duration::from_secs(10))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// Joins `span` to the caller's trace named by `traceparent` (when traces are on) and
/// returns the span's trace id: the exported trace's when traces are on, otherwise the
/// caller's or a new one ([`trace_id`]), so log lines and traces name the same trace.
pub fn join_trace(span: &tracing::Span, traceparent: Option<&str>) -> String {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if let Some(header) = traceparent {
        let carrier =
            std::collections::HashMap::from([("traceparent".to_owned(), header.to_owned())]);
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    let context = span.context();
    let exported = context.span().span_context().trace_id();
    if exported == opentelemetry::trace::TraceId::INVALID {
        trace_id(traceparent)
    } else {
        exported.to_string()
    }
}

/// The trace id of a request: the one its W3C `traceparent` header carries, so its lines
/// join the caller's trace, or a new random one.
pub fn trace_id(traceparent: Option<&str>) -> String {
    traceparent
        .and_then(|t| {
            let mut parts = t.split('-');
            let (version, id) = (parts.next()?, parts.next()?);
            (version.len() == 2
                && id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && id.bytes().any(|b| b != b'0'))
            .then(|| id.to_owned())
        })
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_valid_traceparent_gives_its_trace_id_and_anything_else_a_new_one() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            super::trace_id(Some(&format!("00-{id}-00f067aa0ba902b7-01"))),
            id
        );
        for bad in [
            "00-0000000000000000000000000000000-x",
            "junk",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let made = super::trace_id(Some(bad));
            assert_eq!(made.len(), 32, "{bad}");
            assert_ne!(made, bad);
        }
        assert_ne!(super::trace_id(None), super::trace_id(None));
    }
}
