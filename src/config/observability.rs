//! What a replica tells about itself: its log lines, Prometheus metrics, and
//! OpenTelemetry traces.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (default) or `json` (one object per line, with the request's trace id).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Prometheus metrics, on a listener of their own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Where `GET /metrics` is served; never the API's address, so that the API's
    /// exposure decides nothing about it. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Whether to serve it at all.
    pub enabled: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9480)),
            enabled: true,
        }
    }
}

/// OpenTelemetry traces over OTLP/HTTP (protobuf), off unless `endpoint` is set. A
/// request carrying a W3C `traceparent` continues the caller's trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceSettings {
    /// The collector's OTLP/HTTP address, such as `http://127.0.0.1:4318`; spans are
    /// posted to `{endpoint}/v1/traces`. Unset (the default): no traces are sent.
    pub endpoint: Option<String>,
    /// The spans' `service.name`.
    pub service_name: String,
    /// The share of new traces kept, from 0.0 to 1.0; a caller's decision (the sampled
    /// flag of its `traceparent`) is followed.
    pub sample_ratio: f64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "sunset".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TraceSettings {
    /// Where spans are posted, when traces are on.
    pub fn traces_url(&self) -> Option<String> {
        let endpoint = self.endpoint.as_deref()?.trim_end_matches('/');
        Some(if endpoint.ends_with("/v1/traces") {
            endpoint.to_owned()
        } else {
            format!("{endpoint}/v1/traces")
        })
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.endpoint {
            let url: axum::http::Uri = endpoint
                .parse()
                .map_err(|e| ConfigError(format!("traces.endpoint: {e}")))?;
            if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
                return Err(ConfigError(
                    "traces.endpoint must be an http:// or https:// address".into(),
                ));
            }
            if url.authority().is_some_and(|a| a.as_str().contains('@')) {
                return Err(ConfigError(
                    "traces.endpoint must not hold credentials; give the collector's headers in OTEL_EXPORTER_OTLP_TRACES_HEADERS"
                        .into(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError(
                "traces.sample_ratio must be between 0.0 and 1.0".into(),
            ));
        }
        if self.service_name.is_empty() || self.service_name.len() > 64 {
            return Err(ConfigError(
                "traces.service_name must be 1 to 64 characters".into(),
            ));
        }
        Ok(())
    }
}
