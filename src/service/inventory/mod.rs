//! The consumer inventory (AISVS 3.1.5): declaring consumers and their edges, recording
//! observed usage, keeping this instance's graph current, and answering questions.
//!
//! Every change commits with an inventory revision (`store::inventory`); after its
//! commit, the writer brings its own graph up to date before answering, so a client
//! reads its own writes. Other instances catch up from the same sequence on a short
//! poll (`Inventory::follow_inventory`).

mod declare;
mod follow;
pub use follow::load_graph;
mod questions;
mod usage;

pub(crate) use follow::Written;
pub(crate) use usage::Usage;

use crate::config::InventorySettings;
use crate::domain::{
    Consumer, ConsumerName, Derivation, EdgeKind, EdgeOrigin, ModelName, TeamName,
};
use crate::graph::{InventoryGraph, Link};
use crate::service::{ServiceError, Services};
use base64::Engine;
use serde::Serialize;
use std::sync::{Arc, RwLock};

/// This instance's graph and how it follows the database.
pub(crate) struct Inventory {
    graph: RwLock<InventoryGraph>,
    /// One refresh at a time, so changes apply in order.
    refresh: tokio::sync::Mutex<()>,
    settings: InventorySettings,
    revision: tokio::sync::watch::Sender<i64>,
    /// Committed changes as this instance applies them, for subscriptions.
    events: tokio::sync::broadcast::Sender<InventoryEvent>,
    /// Commands that only write (the CLI) never load the graph, and need not follow it.
    loaded: std::sync::atomic::AtomicBool,
    /// Set when the graph met a change referring to something it lacks, so it missed one;
    /// cleared only once it has been loaded again whole. Until then every refresh tries
    /// the load, so a load that fails (the database away for a moment) is retried rather
    /// than leaving the graph short of what it missed.
    needs_reload: std::sync::atomic::AtomicBool,
}

impl Inventory {
    pub(crate) fn new(settings: InventorySettings) -> Self {
        Self {
            loaded: std::sync::atomic::AtomicBool::new(false),
            needs_reload: std::sync::atomic::AtomicBool::new(false),
            graph: RwLock::new(InventoryGraph::new()),
            refresh: tokio::sync::Mutex::new(()),
            settings,
            revision: tokio::sync::watch::channel(0).0,
            events: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Whether this instance knows it missed a change and has not yet reloaded whole.
    pub(crate) fn is_behind(&self) -> bool {
        self.needs_reload.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// One committed inventory change, as a subscription sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEvent {
    pub revision: i64,
    /// `consumer`, `edge`, `model` or `version`; `graph` when the graph was loaded again
    /// whole (for every model: ask again).
    pub entity: &'static str,
    /// Whether the thing was created or changed (true) or removed (false).
    pub present: bool,
    /// The models whose dependents this change can alter.
    pub models: Arc<std::collections::BTreeSet<ModelName>>,
}

/// What a consumer is declared as.
#[derive(Debug, Clone, Default)]
pub struct ConsumerInput {
    pub name: String,
    pub kind: String,
    pub owner_team: String,
    pub environment: String,
    pub contacts: Vec<String>,
    /// Where notices go; a signing secret is generated the first time one is set.
    pub webhook_url: Option<String>,
}

/// A declared consumer, and its notice-signing secret when one was just made.
#[derive(Debug, Clone)]
pub struct DeclaredConsumer {
    pub consumer: Consumer,
    pub created: bool,
    /// `whsec_…`, shown once.
    pub webhook_secret: Option<String>,
}

/// How a question is asked, before bounds are applied.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub transitive: bool,
    pub max_depth: Option<u32>,
    pub include_stale: bool,
    pub limit: Option<usize>,
}

/// One side of an edge to declare or remove.
#[derive(Debug, Clone)]
pub enum EdgeSpec {
    Uses {
        consumer: String,
        model: String,
        version: String,
    },
    DependsOn {
        consumer: String,
        target: String,
    },
    DerivedFrom {
        model: String,
        version: String,
        parent_model: String,
        parent_version: String,
        derivation: Option<String>,
    },
}

/// An edge as audit records and answers show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    pub kind: EdgeKind,
    pub from: String,
    pub to: String,
    pub range: Option<String>,
    pub derivation: Option<Derivation>,
    pub origin: EdgeOrigin,
    pub origin_name: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub observations: u64,
}

/// A link resolved to database ids, with the names that describe it.
pub(crate) struct Resolved {
    pub link: Link,
    pub from: String,
    pub to: String,
    /// The teams whose owners may change it.
    pub teams: Vec<TeamName>,
}

impl Services {
    pub(crate) fn inventory_settings(&self) -> &InventorySettings {
        &self.inner.inventory.settings
    }
}

pub(crate) fn no_consumer(name: &ConsumerName) -> ServiceError {
    ServiceError::NotFound(format!("no consumer named {name}"))
}

pub(crate) fn no_model(name: &ModelName) -> ServiceError {
    ServiceError::NotFound(format!("no model named {name}"))
}

pub(crate) fn no_pinned_version(model: &ModelName, exact: crate::domain::Version) -> ServiceError {
    ServiceError::NotFound(format!(
        "no version {model}@{exact}; a pinned version must exist (use a range for future ones)"
    ))
}

pub(crate) fn self_dependency(consumer: &str) -> ServiceError {
    ServiceError::Invalid(crate::domain::ParseError::new(
        "dependsOn",
        format!("{consumer} cannot depend on itself"),
    ))
}

/// What a consumer's sealed webhook secret is bound to.
pub(in crate::service) fn secret_binding(name: &ConsumerName) -> String {
    format!("consumer-webhook:{name}")
}

/// A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes.
pub(crate) fn new_whsec() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
