//! The consumer inventory over GraphQL: consumers and edges (declared by their owners or
//! admins, all audited), and the questions `dependents`, `dependencies` and `impact`.
//! Every answer names the graph revision it was computed on and whether it is complete.
//!
//! Why this file is long: about half of it is the output and input types the schema shows
//! (each with its documentation, which is the SDL's); the resolvers are thin calls into
//! `service`.

use super::guard::{ANY_ROLE, RoleGuard, actor, services};
use crate::domain::{self, Role};
use crate::graph;
use crate::service::{Ask, ConsumerInput, EdgeSpec, EdgeView};
use async_graphql::{
    ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use futures_util::Stream;

const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ConsumerKind")]
pub enum ConsumerKindGql {
    Service,
    Pipeline,
    Job,
    Notebook,
    Model,
    /// An embedding or RAG index or a cache built from a model's outputs.
    DerivedStore,
    /// A gateway serving models: an enforcement point of kill switches (registered by an
    /// admin only).
    Gateway,
    Other,
}

impl ConsumerKindGql {
    fn domain(self) -> domain::ConsumerKind {
        use domain::ConsumerKind as K;
        match self {
            Self::Service => K::Service,
            Self::Pipeline => K::Pipeline,
            Self::Job => K::Job,
            Self::Notebook => K::Notebook,
            Self::Model => K::Model,
            Self::DerivedStore => K::DerivedStore,
            Self::Gateway => K::Gateway,
            Self::Other => K::Other,
        }
    }
}

impl From<domain::ConsumerKind> for ConsumerKindGql {
    fn from(k: domain::ConsumerKind) -> Self {
        use domain::ConsumerKind as K;
        match k {
            K::Service => Self::Service,
            K::Pipeline => Self::Pipeline,
            K::Job => Self::Job,
            K::Notebook => Self::Notebook,
            K::Model => Self::Model,
            K::DerivedStore => Self::DerivedStore,
            K::Gateway => Self::Gateway,
            K::Other => Self::Other,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "EdgeKind")]
pub enum EdgeKindGql {
    /// A consumer uses a model at a version or range.
    Uses,
    /// A model version was made from another.
    DerivedFrom,
    /// A consumer calls another consumer.
    DependsOn,
}

impl From<domain::EdgeKind> for EdgeKindGql {
    fn from(k: domain::EdgeKind) -> Self {
        match k {
            domain::EdgeKind::Uses => Self::Uses,
            domain::EdgeKind::DerivedFrom => Self::DerivedFrom,
            domain::EdgeKind::DependsOn => Self::DependsOn,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "EdgeOrigin")]
pub enum EdgeOriginGql {
    /// Declared through GraphQL.
    Api,
    /// Declared by a registration webhook.
    Webhook,
    /// Observed in gateway access logs.
    Scan,
    /// Observed as a download with a token bound to the consumer.
    Download,
}

impl From<domain::EdgeOrigin> for EdgeOriginGql {
    fn from(o: domain::EdgeOrigin) -> Self {
        match o {
            domain::EdgeOrigin::Api => Self::Api,
            domain::EdgeOrigin::Webhook => Self::Webhook,
            domain::EdgeOrigin::Scan => Self::Scan,
            domain::EdgeOrigin::Download => Self::Download,
        }
    }
}

/// A system that uses models: a service, pipeline, job, notebook, model or derived store.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Consumer {
    name: String,
    kind: ConsumerKindGql,
    owner_team: String,
    environment: String,
    contacts: Vec<String>,
    /// Where retirement notices are posted (Standard Webhooks, signed with its secret).
    webhook_url: Option<String>,
    /// Created from observed traffic; nobody has declared it yet.
    discovered: bool,
}

impl From<&domain::Consumer> for Consumer {
    fn from(c: &domain::Consumer) -> Self {
        Self {
            name: c.name.to_string(),
            kind: c.kind.into(),
            owner_team: c.owner_team.to_string(),
            environment: c.environment.to_string(),
            contacts: c
                .contacts
                .as_slice()
                .iter()
                .map(|e| e.to_string())
                .collect(),
            webhook_url: c.webhook_url.as_ref().map(|u| u.as_str().to_owned()),
            discovered: c.discovered,
        }
    }
}

#[ComplexObject]
impl Consumer {
    /// Every edge at this consumer, both ways, one per origin.
    async fn edges(&self, ctx: &Context<'_>) -> Result<Vec<Edge>> {
        let name =
            domain::ConsumerName::parse(&self.name).map_err(crate::service::ServiceError::from)?;
        Ok(services(ctx)?
            .inventory()
            .consumer_edges(&name)
            .into_iter()
            .map(<Edge as From<EdgeView>>::from)
            .collect())
    }
}

/// One origin's record of a link between two nodes.
#[derive(SimpleObject)]
pub struct Edge {
    kind: EdgeKindGql,
    from: String,
    to: String,
    /// For `USES`: the version or semver range.
    range: Option<String>,
    /// For `DERIVED_FROM`: fine-tune, adapter, distillation, quantisation, merge or other.
    derivation: Option<String>,
    origin: EdgeOriginGql,
    /// The token, webhook source or scan source that reported it.
    origin_name: String,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    observations: u64,
}

impl From<EdgeView> for Edge {
    fn from(e: EdgeView) -> Self {
        Self {
            kind: e.kind.into(),
            from: e.from,
            to: e.to,
            range: e.range,
            derivation: e.derivation.map(|d| d.to_string()),
            origin: e.origin.into(),
            origin_name: e.origin_name,
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            observations: e.observations,
        }
    }
}

#[derive(SimpleObject)]
pub struct Evidence {
    origin: EdgeOriginGql,
    origin_name: String,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    observations: u64,
    /// Not confirmed within the configured time (`inventory.stale_after_days`).
    stale: bool,
}

/// One edge of the path that explains why a node is in an answer.
#[derive(SimpleObject)]
pub struct PathStep {
    kind: EdgeKindGql,
    from: String,
    to: String,
    range: Option<String>,
    derivation: Option<String>,
    /// Every origin that reported this link.
    evidence: Vec<Evidence>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum NodeKind {
    Consumer,
    ModelVersion,
}

/// A consumer or model version an answer reaches.
#[derive(SimpleObject)]
pub struct ReachedNode {
    kind: NodeKind,
    /// The consumer name, or `model@version`.
    name: String,
    /// Edges between the node asked about and this one.
    depth: u32,
    consumer: Option<Consumer>,
    model: Option<String>,
    version: Option<String>,
    /// A shortest path, read from the dependent towards the dependency.
    path: Vec<PathStep>,
}

/// Consumers that depend on each other in a circle.
#[derive(SimpleObject)]
pub struct InventoryCycle {
    consumers: Vec<String>,
}

/// An answer from the inventory graph.
#[derive(SimpleObject)]
pub struct InventoryAnswer {
    /// The inventory revision the answer was computed on.
    revision: i64,
    /// False when a depth or size limit left nodes out (see the `omitted…` counts), or
    /// when `behind` is true.
    complete: bool,
    /// True when this instance's graph met a change it could not apply and is being
    /// loaded again: the answer may lack what that change added.
    behind: bool,
    /// Nodes within the depth limit.
    total: u64,
    /// Of `total`, the consumers; the rest are derived model versions.
    consumers_total: u64,
    omitted_by_depth: u64,
    omitted_by_limit: u64,
    /// Stale edges not followed (only when `includeStale` is false).
    stale_edges_skipped: u64,
    cycles: Vec<InventoryCycle>,
    nodes: Vec<ReachedNode>,
}

impl From<graph::Answer> for InventoryAnswer {
    fn from(a: graph::Answer) -> Self {
        Self {
            revision: a.revision,
            complete: a.complete(),
            behind: a.behind,
            total: a.total as u64,
            consumers_total: a.consumers_total as u64,
            omitted_by_depth: a.omitted_by_depth as u64,
            omitted_by_limit: a.omitted_by_limit as u64,
            stale_edges_skipped: a.stale_edges_skipped as u64,
            cycles: cycles(a.cycles),
            nodes: a.reached.into_iter().map(reached).collect(),
        }
    }
}

fn cycles(c: Vec<graph::Cycle>) -> Vec<InventoryCycle> {
    c.into_iter()
        .map(|c| InventoryCycle {
            consumers: c.consumers.iter().map(|n| n.to_string()).collect(),
        })
        .collect()
}

fn reached(r: graph::Reached) -> ReachedNode {
    let name = r.target.label();
    let path = r
        .path
        .into_iter()
        .map(|s| PathStep {
            kind: s.kind.into(),
            from: s.from.to_string(),
            to: s.to.to_string(),
            range: s.range.map(|r| r.to_string()),
            derivation: s.derivation.map(|d| d.to_string()),
            evidence: s
                .evidence
                .into_iter()
                .map(|e| Evidence {
                    origin: e.origin.into(),
                    origin_name: e.origin_name.to_string(),
                    first_seen: e.first_seen,
                    last_seen: e.last_seen,
                    observations: e.observations,
                    stale: e.stale,
                })
                .collect(),
        })
        .collect();
    match r.target {
        graph::Target::Consumer(c) => ReachedNode {
            kind: NodeKind::Consumer,
            name,
            depth: r.depth,
            consumer: Some(Consumer::from(c.as_ref())),
            model: None,
            version: None,
            path,
        },
        graph::Target::Version { model, version } => ReachedNode {
            kind: NodeKind::ModelVersion,
            name,
            depth: r.depth,
            consumer: None,
            model: Some(model.to_string()),
            version: Some(version.to_string()),
            path,
        },
    }
}

#[derive(SimpleObject)]
pub struct Count {
    key: String,
    count: u64,
}

fn counts(c: graph::Counts) -> Vec<Count> {
    c.into_iter()
        .map(|(key, count)| Count {
            key,
            count: count as u64,
        })
        .collect()
}

/// What retiring a version would reach.
#[derive(SimpleObject)]
pub struct Impact {
    revision: i64,
    /// Consumers that use the version itself.
    direct: u64,
    /// Consumers reached directly or transitively, stale edges included.
    total: u64,
    /// Model versions derived from it, directly or transitively.
    derived_versions: u64,
    by_team: Vec<Count>,
    by_environment: Vec<Count>,
    by_kind: Vec<Count>,
    /// Consumers with traffic observed (scan or download) within `activeDays`.
    active: u64,
    active_days: u32,
    stale_edges: u64,
    cycles: Vec<InventoryCycle>,
}

#[derive(SimpleObject)]
pub struct DeclareConsumerPayload {
    consumer: Consumer,
    created: bool,
    /// The `whsec_` secret that signs this consumer's notices: shown only here, once.
    webhook_secret: Option<String>,
}

/// A system allowed to post registration webhooks.
#[derive(SimpleObject)]
pub struct WebhookSource {
    name: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl From<crate::service::WebhookSourceInfo> for WebhookSource {
    fn from(s: crate::service::WebhookSourceInfo) -> Self {
        Self {
            name: s.name,
            enabled: s.enabled,
            created_at: s.created_at,
            created_by: s.created_by,
        }
    }
}

#[derive(SimpleObject)]
pub struct CreatedWebhookSource {
    source: WebhookSource,
    /// The `whsec_` secret the source signs with (Standard Webhooks): shown this once.
    secret: String,
}

#[derive(InputObject)]
pub struct ConsumerInputGql {
    name: String,
    kind: ConsumerKindGql,
    owner_team: String,
    environment: String,
    #[graphql(default)]
    contacts: Vec<String>,
    webhook_url: Option<String>,
}

#[derive(Default)]
pub struct InventoryQuery;

#[Object]
impl InventoryQuery {
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn consumer(&self, ctx: &Context<'_>, name: String) -> Result<Consumer> {
        Ok(Consumer::from(
            &services(ctx)?.inventory().consumer(&name).await?,
        ))
    }

    /// Consumers by name, optionally of one team; page with `after` (the last name seen).
    #[graphql(
        guard = "RoleGuard::new(ANY_ROLE)",
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn consumers(
        &self,
        ctx: &Context<'_>,
        team: Option<String>,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Vec<Consumer>> {
        let first = super::page_size(first)? as usize;
        Ok(services(ctx)?
            .inventory()
            .consumers(team.as_deref(), after.as_deref(), first)?
            .iter()
            .map(Consumer::from)
            .collect())
    }

    /// Every consumer and derived model version that depends on `model@version`,
    /// directly or (by default) transitively, each with the path that explains it.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        guard = "RoleGuard::new(ANY_ROLE)",
        complexity = "(limit.unwrap_or(1_000) as usize / 100 + 1) * child_complexity"
    )]
    async fn dependents(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        #[graphql(default = true)] transitive: bool,
        max_depth: Option<u32>,
        #[graphql(default = true)] include_stale: bool,
        limit: Option<u32>,
    ) -> Result<InventoryAnswer> {
        let ask = Ask {
            transitive,
            max_depth,
            include_stale,
            limit: limit.map(|l| l as usize),
        };
        Ok(services(ctx)?
            .inventory()
            .dependents(&model, &version, ask)
            .await?
            .into())
    }

    /// Every consumer and model version `consumer` depends on.
    #[graphql(
        guard = "RoleGuard::new(ANY_ROLE)",
        complexity = "(limit.unwrap_or(1_000) as usize / 100 + 1) * child_complexity"
    )]
    async fn dependencies(
        &self,
        ctx: &Context<'_>,
        consumer: String,
        #[graphql(default = true)] transitive: bool,
        max_depth: Option<u32>,
        #[graphql(default = true)] include_stale: bool,
        limit: Option<u32>,
    ) -> Result<InventoryAnswer> {
        let ask = Ask {
            transitive,
            max_depth,
            include_stale,
            limit: limit.map(|l| l as usize),
        };
        Ok(services(ctx)?
            .inventory()
            .dependencies(&consumer, ask)
            .await?
            .into())
    }

    /// Systems allowed to post registration webhooks.
    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn webhook_sources(&self, ctx: &Context<'_>) -> Result<Vec<WebhookSource>> {
        Ok(services(ctx)?
            .inventory()
            .webhook_sources()
            .await?
            .into_iter()
            .map(WebhookSource::from)
            .collect())
    }

    /// A summary of what retiring `model@version` would reach.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn impact(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        #[graphql(default = 30)] active_days: u32,
    ) -> Result<Impact> {
        let i = services(ctx)?
            .inventory()
            .impact(&model, &version, active_days)
            .await?;
        Ok(Impact {
            revision: i.revision,
            direct: i.direct as u64,
            total: i.total as u64,
            derived_versions: i.derived_versions as u64,
            by_team: counts(i.by_team),
            by_environment: counts(i.by_environment),
            by_kind: counts(i.by_kind),
            active: i.active as u64,
            active_days: i.active_days,
            stale_edges: i.stale_edges as u64,
            cycles: cycles(i.cycles),
        })
    }
}

#[derive(Default)]
pub struct InventoryMutation;

#[Object]
impl InventoryMutation {
    /// Declares a consumer, or updates one (owner of its team, or admin). Setting a
    /// webhook URL for the first time creates its signing secret, returned once.
    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn declare_consumer(
        &self,
        ctx: &Context<'_>,
        input: ConsumerInputGql,
    ) -> Result<DeclareConsumerPayload> {
        let d = services(ctx)?
            .inventory()
            .declare_consumer(
                actor(ctx)?,
                ConsumerInput {
                    name: input.name,
                    kind: input.kind.domain().as_str().to_owned(),
                    owner_team: input.owner_team,
                    environment: input.environment,
                    contacts: input.contacts,
                    webhook_url: input.webhook_url,
                },
            )
            .await?;
        Ok(DeclareConsumerPayload {
            consumer: Consumer::from(&d.consumer),
            created: d.created,
            webhook_secret: d.webhook_secret,
        })
    }

    /// Registers a system allowed to post `/v1/hooks/registrations`, with its own secret.
    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn create_webhook_source(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<CreatedWebhookSource> {
        let (source, secret) = services(ctx)?
            .inventory()
            .create_webhook_source(actor(ctx)?, &name)
            .await?;
        Ok(CreatedWebhookSource {
            source: source.into(),
            secret,
        })
    }

    /// Stops accepting a source's webhooks.
    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn disable_webhook_source(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<WebhookSource> {
        Ok(services(ctx)?
            .inventory()
            .disable_webhook_source(actor(ctx)?, &name)
            .await?
            .into())
    }

    /// Removes a consumer and every edge at it.
    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn remove_consumer(&self, ctx: &Context<'_>, name: String) -> Result<bool> {
        services(ctx)?
            .inventory()
            .remove_consumer(actor(ctx)?, &name)
            .await?;
        Ok(true)
    }

    /// Declares that `consumer` uses `model` at `version`: an exact version (`2.1.0`)
    /// or a semver range (`^2.1`, `>=1.4, <2`). Declaring it again confirms it.
    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn declare_use(
        &self,
        ctx: &Context<'_>,
        consumer: String,
        model: String,
        version: String,
    ) -> Result<Vec<Edge>> {
        edges(
            services(ctx)?
                .inventory()
                .declare_edge(
                    actor(ctx)?,
                    EdgeSpec::Uses {
                        consumer,
                        model,
                        version,
                    },
                )
                .await?,
        )
    }

    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn remove_use(
        &self,
        ctx: &Context<'_>,
        consumer: String,
        model: String,
        version: String,
    ) -> Result<u64> {
        let n = services(ctx)?
            .inventory()
            .remove_edge(
                actor(ctx)?,
                EdgeSpec::Uses {
                    consumer,
                    model,
                    version,
                },
            )
            .await?;
        Ok(n as u64)
    }

    /// Declares that `consumer` calls `dependsOn`.
    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn declare_dependency(
        &self,
        ctx: &Context<'_>,
        consumer: String,
        depends_on: String,
    ) -> Result<Vec<Edge>> {
        edges(
            services(ctx)?
                .inventory()
                .declare_edge(
                    actor(ctx)?,
                    EdgeSpec::DependsOn {
                        consumer,
                        target: depends_on,
                    },
                )
                .await?,
        )
    }

    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn remove_dependency(
        &self,
        ctx: &Context<'_>,
        consumer: String,
        depends_on: String,
    ) -> Result<u64> {
        let n = services(ctx)?
            .inventory()
            .remove_edge(
                actor(ctx)?,
                EdgeSpec::DependsOn {
                    consumer,
                    target: depends_on,
                },
            )
            .await?;
        Ok(n as u64)
    }

    /// Declares that `model@version` was made from `fromModel@fromVersion`; `derivation`
    /// is fine-tune, adapter, distillation, quantisation, merge or other.
    #[allow(clippy::too_many_arguments)]
    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn declare_derivation(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        from_model: String,
        from_version: String,
        derivation: Option<String>,
    ) -> Result<Vec<Edge>> {
        edges(
            services(ctx)?
                .inventory()
                .declare_edge(
                    actor(ctx)?,
                    EdgeSpec::DerivedFrom {
                        model,
                        version,
                        parent_model: from_model,
                        parent_version: from_version,
                        derivation,
                    },
                )
                .await?,
        )
    }

    #[graphql(guard = "RoleGuard::new(MANAGERS)")]
    async fn remove_derivation(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        from_model: String,
        from_version: String,
    ) -> Result<u64> {
        let n = services(ctx)?
            .inventory()
            .remove_edge(
                actor(ctx)?,
                EdgeSpec::DerivedFrom {
                    model,
                    version,
                    parent_model: from_model,
                    parent_version: from_version,
                    derivation: None,
                },
            )
            .await?;
        Ok(n as u64)
    }
}

fn edges(views: Vec<EdgeView>) -> Result<Vec<Edge>> {
    Ok(views
        .into_iter()
        .map(<Edge as From<EdgeView>>::from)
        .collect())
}

/// A committed inventory change that can alter the answers about a model.
#[derive(SimpleObject, Clone)]
pub struct InventoryChange {
    /// The inventory revision that committed it; query with it to read the new state.
    revision: i64,
    /// CONSUMER, EDGE, MODEL or VERSION; GRAPH when this replica loaded its graph again
    /// whole (it cannot say what changed: query again).
    entity: String,
    /// False when the thing was removed.
    present: bool,
    /// Changes this subscription missed because it read too slowly: re-query when not 0.
    missed: u64,
}

#[derive(Default)]
pub struct InventorySubscription;

#[Subscription]
impl InventorySubscription {
    /// Pushes every committed change that can alter `dependents` of any version of
    /// `model`: new and removed consumers, uses, dependencies and derivations,
    /// declared or observed, made through this instance or another.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn inventory_changed(
        &self,
        ctx: &Context<'_>,
        model: String,
    ) -> Result<impl Stream<Item = InventoryChange> + use<>> {
        let model = domain::ModelName::parse(&model).map_err(crate::service::ServiceError::from)?;
        let events = services(ctx)?.inventory().inventory_events();
        Ok(futures_util::stream::unfold(events, move |mut events| {
            let model = model.clone();
            async move {
                loop {
                    match events.recv().await {
                        Ok(e) if e.entity == "graph" || e.models.contains(&model) => {
                            let change = InventoryChange {
                                revision: e.revision,
                                entity: e.entity.to_ascii_uppercase(),
                                present: e.present,
                                missed: 0,
                            };
                            return Some((change, events));
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let change = InventoryChange {
                                revision: 0,
                                entity: "UNKNOWN".into(),
                                present: true,
                                missed: n,
                            };
                            return Some((change, events));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        }))
    }
}
