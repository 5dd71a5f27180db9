//! Declaring consumers and edges, removing them, and recording observed usage: each a
//! change of the inventory, audited, with its revision.
//!
//! Why this file is long: each change (consumer, use, dependency, derivation, removal)
//! is one use case with its own checks and audit record, and they share the resolution
//! of names to graph ids (`resolve`) and the views audit records show (`describe`),
//! which would otherwise be made public to a second file.

use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{
    Consumer, ConsumerKind, ConsumerName, Contacts, Derivation, EdgeOrigin, Environment,
    EvidenceRemover, ModelName, Role, TeamName, Version, VersionRange, WebhookUrl,
};
use crate::graph::{ConsumerId, EdgeRecord, InventoryGraph, Link, VersionId};
use crate::service::ServiceError;
use crate::store::inventory::{self as repo, Entity, NewConsumer, Sighting};
use crate::store::{Conn, registry as registry_repo};
use serde::Serialize;
use std::sync::Arc;

use super::*;

/// The longest text a consumer search takes (a consumer name's limit).
const MAX_SEARCH: usize = 100;

impl crate::service::Inventory<'_> {
    pub async fn consumer(&self, name: &str) -> Result<Consumer, ServiceError> {
        let name = ConsumerName::parse(name)?;
        repo::find_consumer(self.store().reader(), &name)
            .await?
            .map(|(_, c)| c)
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {name}")))
    }

    /// Consumers by name, optionally of one team, after a name (keyset paging).
    pub fn consumers(
        &self,
        team: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Consumer>, ServiceError> {
        let team = team.map(TeamName::parse).transpose()?;
        let g = self.read_graph();
        Ok(g.consumers()
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| team.as_ref().is_none_or(|t| &c.owner_team == t))
            .filter(|c| after.is_none_or(|a| c.name.as_str() > a))
            .take(limit)
            .cloned()
            .collect())
    }

    /// Consumers whose name contains `part` (any when empty), by name, after `after`,
    /// at most `limit`: what the console's consumer search lists.
    pub fn search_consumers(
        &self,
        part: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Consumer>, ServiceError> {
        let part = part.trim();
        if part.len() > MAX_SEARCH {
            return Err(crate::domain::ParseError::new(
                "q",
                format!("a consumer name has at most {MAX_SEARCH} characters"),
            )
            .into());
        }
        let g = self.read_graph();
        Ok(g.consumers()
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| after.is_none_or(|a| c.name.as_str() > a))
            .filter(|c| c.name.as_str().contains(part))
            .take(limit)
            .cloned()
            .collect())
    }

    /// Every edge at a consumer, both ways.
    pub fn consumer_edges(&self, name: &ConsumerName) -> Vec<EdgeView> {
        let g = self.read_graph();
        let Some(id) = g.consumer_id(name.as_str()) else {
            return Vec::new();
        };
        g.edges_of_consumer(id)
            .into_iter()
            .map(|e| edge_view(&g, &e))
            .collect()
    }

    pub async fn declare_consumer(
        &self,
        actor: &Actor,
        input: ConsumerInput,
    ) -> Result<DeclaredConsumer, ServiceError> {
        let consumer = parse_consumer(input)?;
        if let Some(url) = &consumer.webhook_url {
            self.retirements().check_webhook_destination(url)?;
        }
        may_manage(actor, &consumer.owner_team, "declare consumers of team")?;
        require_admin_for_points(actor, consumer.kind)?;
        let sealer = self.service_key().secret_sealer();
        let binding = secret_binding(&consumer.name);
        let declared = in_write_tx!(self, |tx| {
            let now = self.now();
            let existing = repo::find_consumer(tx.conn(), &consumer.name).await?;
            let (id, created, secret, before) = match existing {
                None => {
                    let secret = consumer.webhook_url.as_ref().map(|_| new_whsec());
                    let sealed = secret
                        .as_deref()
                        .map(|s| sealer.seal(&binding, s.as_bytes()));
                    let id = repo::insert_consumer(
                        tx.conn(),
                        NewConsumer {
                            consumer: &consumer,
                            sealed_secret: sealed.as_deref(),
                            at: now,
                            by: &actor.name,
                        },
                    )
                    .await?;
                    (id, true, secret, None)
                }
                Some((id, old)) => {
                    may_manage(actor, &old.owner_team, "change consumers of team")?;
                    require_admin_for_points(actor, old.kind)?;
                    let has_secret = repo::consumer_secret(tx.conn(), id).await?.is_some();
                    let secret = (consumer.webhook_url.is_some() && !has_secret).then(new_whsec);
                    let sealed = secret
                        .as_deref()
                        .map(|s| sealer.seal(&binding, s.as_bytes()));
                    let replace = if consumer.webhook_url.is_none() {
                        Some(None)
                    } else {
                        sealed.as_deref().map(Some)
                    };
                    repo::update_consumer(tx.conn(), id, &consumer, replace, now).await?;
                    (id, false, secret, Some(old))
                }
            };
            repo::record_change(tx.conn(), now, Entity::Consumer, id).await?;
            let mut entry = AuditEntry::new(
                actor.audit_identity(),
                if created {
                    Action::ConsumerDeclared
                } else {
                    Action::ConsumerUpdated
                },
                SubjectType::Consumer,
                consumer.name.as_str(),
            )
            .after(&consumer);
            if let Some(before) = &before {
                entry = entry.before(before);
            }
            self.append_audit(tx, now, entry).await?;
            Ok(DeclaredConsumer {
                consumer: consumer.clone(),
                created,
                webhook_secret: secret,
            })
        })?;
        self.after_inventory_commit().await;
        Ok(declared)
    }

    pub async fn remove_consumer(&self, actor: &Actor, name: &str) -> Result<(), ServiceError> {
        let name = ConsumerName::parse(name)?;
        in_write_tx!(self, |tx| {
            let now = self.now();
            let (id, old) = repo::find_consumer(tx.conn(), &name)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {name}")))?;
            may_manage(actor, &old.owner_team, "remove consumers of team")?;
            require_admin_for_points(actor, old.kind)?;
            let edges = repo::delete_consumer(tx.conn(), id).await?;
            for edge in &edges {
                repo::record_change(tx.conn(), now, Entity::Edge, *edge).await?;
            }
            repo::record_change(tx.conn(), now, Entity::Consumer, id).await?;
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Removed<'a> {
                consumer: &'a Consumer,
                edges_removed: usize,
            }
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::ConsumerRemoved,
                SubjectType::Consumer,
                name.as_str(),
            )
            .before(&Removed {
                consumer: &old,
                edges_removed: edges.len(),
            });
            self.append_audit(tx, now, entry).await
        })?;
        self.after_inventory_commit().await;
        Ok(())
    }

    /// A use the model's policy does not allow: a consumer in an environment it does not
    /// list.
    async fn refuse_by_policy(
        &self,
        conn: &impl Conn,
        resolved: &Resolved,
    ) -> Result<(), ServiceError> {
        let Link::Uses {
            consumer, model, ..
        } = &resolved.link
        else {
            return Ok(());
        };
        let Some(tier) = crate::store::policies::tier_of(conn, *model).await? else {
            return Ok(());
        };
        let policy = self.registry().policy_in(conn, *model, tier).await?;
        if policy.environments.is_empty() {
            return Ok(());
        }
        let Some(c) = repo::consumer_by_id(conn, *consumer).await? else {
            return Ok(());
        };
        match policy.refuses_environment(&c.environment) {
            Some(why) => Err(ServiceError::Policy(format!(
                "{} may not use {}: {why}",
                resolved.from, resolved.to
            ))),
            None => Ok(()),
        }
    }

    /// A new use of versions a retirement froze new consumers out of is refused (a use
    /// declared again by a dependent is not new).
    async fn refuse_if_frozen(
        &self,
        conn: &impl Conn,
        resolved: &Resolved,
    ) -> Result<(), ServiceError> {
        let Link::Uses {
            consumer,
            model,
            range,
        } = &resolved.link
        else {
            return Ok(());
        };
        let Some((name, _)) = resolved.to.split_once('@') else {
            return Ok(());
        };
        let (Ok(model_name), Ok(consumer_name)) = (
            crate::domain::ModelName::parse(name),
            crate::domain::ConsumerName::parse(&resolved.from),
        ) else {
            return Ok(());
        };
        self.retirements()
            .refuse_new_use_if_frozen(
                conn,
                (*model, &model_name),
                range,
                (*consumer, &consumer_name),
            )
            .await
    }

    /// Declares an edge (origin `api`), or confirms it again, which refreshes its
    /// last-seen time so it does not go stale.
    pub async fn declare_edge(
        &self,
        actor: &Actor,
        spec: EdgeSpec,
    ) -> Result<Vec<EdgeView>, ServiceError> {
        let views = in_write_tx!(self, |tx| {
            let now = self.now();
            let resolved = resolve(tx.conn(), &spec, true).await?;
            may_manage_any(actor, &resolved.teams, "declare edges of team")?;
            self.refuse_if_frozen(tx.conn(), &resolved).await?;
            self.refuse_by_policy(tx.conn(), &resolved).await?;
            if let Link::DerivedFrom {
                version, parent, ..
            } = &resolved.link
            {
                self.refuse_derivation_cycle(*version, *parent, &[])?;
            }
            let (record, _) = repo::record_edge(
                tx.conn(),
                Sighting {
                    link: &resolved.link,
                    origin: EdgeOrigin::Api,
                    origin_name: &actor.name,
                    at: now,
                    since: None,
                    count: 1,
                },
            )
            .await?;
            repo::record_change(tx.conn(), now, Entity::Edge, record.id).await?;
            let view = describe(&resolved, &record);
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::EdgeDeclared,
                SubjectType::InventoryEdge,
                format!("{} {} {}", view.from, view.kind, view.to),
            )
            .after(&view);
            self.append_audit(tx, now, entry).await?;
            Ok(repo::edges_of_link(tx.conn(), &resolved.link)
                .await?
                .iter()
                .map(|e| describe(&resolved, e))
                .collect::<Vec<_>>())
        })?;
        self.after_inventory_commit().await;
        Ok(views)
    }

    /// Removes a link, with the evidence of every origin. Observed usage that goes on
    /// will be recorded again by the next scan or download.
    pub async fn remove_edge(&self, actor: &Actor, spec: EdgeSpec) -> Result<usize, ServiceError> {
        let removed = in_write_tx!(self, |tx| {
            let now = self.now();
            let resolved = resolve(tx.conn(), &spec, false).await?;
            may_manage_any(actor, &resolved.teams, "remove edges of team")?;
            let rows = repo::edges_of_link(tx.conn(), &resolved.link).await?;
            if rows.is_empty() {
                return Err(ServiceError::NotFound(format!(
                    "there is no {} edge from {} to {}",
                    resolved.link.kind(),
                    resolved.from,
                    resolved.to
                )));
            }
            let remover = EvidenceRemover {
                name: &actor.name,
                is_admin: actor.role == Role::Admin,
                owns_dependent: resolved
                    .teams
                    .first()
                    .is_some_and(|team| may_manage(actor, team, "").is_ok()),
            };
            let (removable, kept): (Vec<_>, Vec<_>) = rows
                .iter()
                .partition(|e| e.origin.removable_by(&e.origin_name, &remover));
            if removable.is_empty() {
                let others: Vec<String> = kept
                    .iter()
                    .map(|e| format!("{} from {}", e.origin, e.origin_name))
                    .collect();
                return Err(ServiceError::Forbidden(format!(
                    "none of the evidence of {} {} {} is yours to remove ({}): evidence \
                     belongs to whoever gave it, observed usage goes stale on its own, and an \
                     admin may remove any",
                    resolved.from,
                    resolved.link.kind(),
                    resolved.to,
                    others.join(", ")
                )));
            }
            for row in &removable {
                repo::delete_edge(tx.conn(), row.id).await?;
                repo::record_change(tx.conn(), now, Entity::Edge, row.id).await?;
            }
            let views: Vec<EdgeView> = rows.iter().map(|e| describe(&resolved, e)).collect();
            let remaining: Vec<EdgeView> = kept.iter().map(|e| describe(&resolved, e)).collect();
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::EdgeRemoved,
                SubjectType::InventoryEdge,
                format!("{} {} {}", resolved.from, resolved.link.kind(), resolved.to),
            )
            .before(&views)
            .after(&serde_json::json!({ "remaining": remaining }));
            self.append_audit(tx, now, entry).await?;
            Ok(removable.len())
        })?;
        self.after_inventory_commit().await;
        Ok(removed)
    }

    /// Refuses a derivation that would close a circle, counting `also` (version, parent)
    /// pairs not committed yet: the derivations a message declared before this one.
    pub(crate) fn refuse_derivation_cycle(
        &self,
        version: VersionId,
        parent: VersionId,
        also: &[(VersionId, VersionId)],
    ) -> Result<(), ServiceError> {
        if version == parent {
            return Err(ServiceError::Conflict(
                "a version cannot be derived from itself".into(),
            ));
        }
        // If the parent already derives from the child, the new edge would close a circle.
        if self.read_graph().derives_from_with(parent, version, also) {
            return Err(ServiceError::Conflict(
                "the parent version is itself derived from this version; derivations cannot form a circle".into(),
            ));
        }
        Ok(())
    }
}

/// Resolves names to rows. `for_declare` also checks what only a new edge must satisfy.
pub(super) async fn resolve(
    db: &impl Conn,
    spec: &EdgeSpec,
    for_declare: bool,
) -> Result<Resolved, ServiceError> {
    match spec {
        EdgeSpec::Uses {
            consumer,
            model,
            version,
        } => {
            let (cid, c) = find_consumer(db, consumer).await?;
            let model = ModelName::parse(model)?;
            let range = VersionRange::parse(version)?;
            let (mid, m) = registry_repo::find_model(db, &model)
                .await?
                .ok_or_else(|| no_model(&model))?;
            if for_declare
                && let Some(exact) = range.as_exact()
                && registry_repo::find_version(db, mid, &model, exact)
                    .await?
                    .is_none()
            {
                return Err(no_pinned_version(&model, exact));
            }
            Ok(Resolved {
                to: format!("{model}@{range}"),
                from: c.name.to_string(),
                link: Link::Uses {
                    consumer: cid,
                    model: mid,
                    range: Arc::new(range),
                },
                teams: vec![c.owner_team, m.owner_team],
            })
        }
        EdgeSpec::DependsOn { consumer, target } => {
            let (cid, c) = find_consumer(db, consumer).await?;
            let (tid, t) = find_consumer(db, target).await?;
            if cid == tid {
                return Err(self_dependency(consumer));
            }
            Ok(Resolved {
                link: Link::DependsOn {
                    consumer: cid,
                    target: tid,
                },
                from: c.name.to_string(),
                to: t.name.to_string(),
                teams: vec![c.owner_team],
            })
        }
        EdgeSpec::DerivedFrom {
            model,
            version,
            parent_model,
            parent_version,
            derivation,
        } => {
            let (vid, team, label) = find_version(db, model, version).await?;
            let (pid, _, parent_label) = find_version(db, parent_model, parent_version).await?;
            let derivation = derivation
                .as_deref()
                .map(Derivation::parse)
                .transpose()?
                .unwrap_or(Derivation::Other);
            Ok(Resolved {
                link: Link::DerivedFrom {
                    version: vid,
                    parent: pid,
                    derivation,
                },
                from: label,
                to: parent_label,
                teams: vec![team],
            })
        }
    }
}

async fn find_consumer(db: &impl Conn, name: &str) -> Result<(ConsumerId, Consumer), ServiceError> {
    let name = ConsumerName::parse(name)?;
    repo::find_consumer(db, &name)
        .await?
        .ok_or_else(|| no_consumer(&name))
}

// What resolving a link can find wrong, worded once for every path that resolves links.

async fn find_version(
    db: &impl Conn,
    model: &str,
    version: &str,
) -> Result<(VersionId, TeamName, String), ServiceError> {
    let model = ModelName::parse(model)?;
    let version = Version::parse(version)?;
    let (mid, m) = registry_repo::find_model(db, &model)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no model named {model}")))?;
    let (vid, _) = registry_repo::find_version(db, mid, &model, version)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))?;
    Ok((vid, m.owner_team, format!("{model}@{version}")))
}

pub(super) fn describe(r: &Resolved, e: &EdgeRecord) -> EdgeView {
    let (range, derivation) = match &e.link {
        Link::Uses { range, .. } => (Some(range.to_string()), None),
        Link::DerivedFrom { derivation, .. } => (None, Some(*derivation)),
        Link::DependsOn { .. } => (None, None),
    };
    EdgeView {
        kind: e.link.kind(),
        from: r.from.clone(),
        to: r.to.clone(),
        range,
        derivation,
        origin: e.origin,
        origin_name: e.origin_name.to_string(),
        first_seen: e.first_seen,
        last_seen: e.last_seen,
        observations: e.observations,
    }
}

fn edge_view(g: &InventoryGraph, e: &EdgeRecord) -> EdgeView {
    let consumer = |id| {
        g.consumer(id)
            .map(|c| c.name.to_string())
            .unwrap_or_else(|| format!("consumer #{id}"))
    };
    let version = |id| {
        g.version(id)
            .map(|v| format!("{}@{}", v.model_name, v.version))
            .unwrap_or_else(|| format!("version #{id}"))
    };
    let (from, to) = match &e.link {
        Link::Uses {
            consumer: c,
            model,
            range,
        } => (
            consumer(*c),
            format!(
                "{}@{range}",
                g.model(*model)
                    .map(|m| m.name.to_string())
                    .unwrap_or_else(|| format!("model #{model}"))
            ),
        ),
        Link::DependsOn {
            consumer: c,
            target,
        } => (consumer(*c), consumer(*target)),
        Link::DerivedFrom {
            version: v, parent, ..
        } => (version(*v), version(*parent)),
    };
    describe(
        &Resolved {
            link: e.link.clone(),
            from,
            to,
            teams: Vec::new(),
        },
        e,
    )
}

/// Owners manage their own team's consumers; admins any.
pub(in crate::service) fn may_manage(
    actor: &Actor,
    team: &TeamName,
    what: &str,
) -> Result<(), ServiceError> {
    match actor.role {
        Role::Admin => Ok(()),
        Role::Owner if actor.team.as_ref() == Some(team) => Ok(()),
        Role::Owner => Err(ServiceError::Forbidden(format!(
            "an owner of team {} may not {what} {team}",
            actor
                .team
                .as_ref()
                .map(TeamName::as_str)
                .unwrap_or("(none)")
        ))),
        other => Err(ServiceError::Forbidden(format!(
            "role {other} may not {what} {team}; its owners and admins may"
        ))),
    }
}

/// For an edge, owning either end is enough: the consumer's owner declares what it
/// uses, and a model's owner may record a consumer it knows of.
fn may_manage_any(actor: &Actor, teams: &[TeamName], what: &str) -> Result<(), ServiceError> {
    let first = teams
        .first()
        .ok_or_else(|| ServiceError::Forbidden(format!("nobody but an admin may {what} (none)")))?;
    if teams.iter().any(|t| may_manage(actor, t, what).is_ok()) {
        return Ok(());
    }
    may_manage(actor, first, what)
}

/// Enforcement points act on kill switches, so only an admin registers or changes one.
fn require_admin_for_points(actor: &Actor, kind: ConsumerKind) -> Result<(), ServiceError> {
    if kind != ConsumerKind::Gateway {
        return Ok(());
    }
    crate::service::authorise::require(
        actor,
        &[Role::Admin],
        "register or change an enforcement point",
    )
}

/// A declared consumer, parsed; an empty webhook URL is none.
fn parse_consumer(input: ConsumerInput) -> Result<Consumer, ServiceError> {
    Ok(Consumer {
        name: ConsumerName::parse(&input.name)?,
        kind: ConsumerKind::parse(&input.kind)?,
        owner_team: TeamName::parse(&input.owner_team)?,
        environment: Environment::parse(&input.environment)?,
        contacts: Contacts::parse(&input.contacts)?,
        webhook_url: input
            .webhook_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(WebhookUrl::parse)
            .transpose()?,
        discovered: false,
    })
}
