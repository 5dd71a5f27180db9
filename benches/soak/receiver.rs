//! The dependents' webhook receivers: one loopback server that records every notice it
//! is sent (path, `webhook-id`, type, retirement, arrival), answering after a short
//! delay, as a real receiver does, so kills land while deliveries are in flight.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Arrival {
    pub path: String,
    pub id: String,
    pub kind: String,
    pub retirement: String,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub arrivals: Arc<Mutex<Vec<Arrival>>>,
}

impl Receiver {
    /// Starts the receiver; returns it and its base URL.
    pub async fn start(delay: Duration) -> (Self, String) {
        let receiver = Self::default();
        let seen = receiver.arrivals.clone();
        let app = axum::Router::new().route(
            "/hook/{name}",
            axum::routing::post(
                move |uri: axum::http::Uri,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        let at = Instant::now();
                        let notice: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let header = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        seen.lock().expect("lock").push(Arrival {
                            path: uri.path().to_owned(),
                            id: header("webhook-id"),
                            kind: notice["type"].as_str().unwrap_or_default().to_owned(),
                            retirement: notice["data"]["retirementId"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            at,
                        });
                        tokio::time::sleep(delay).await;
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().expect("lock").clone()
    }
}
