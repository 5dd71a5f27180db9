//! Role guards: the declaration, on each field, of who may call it.

use crate::auth::Actor;
use crate::domain::Role;
use async_graphql::{Context, Guard, Result};

pub const ANY_ROLE: &[Role] = &Role::ALL;

pub struct RoleGuard(&'static [Role]);

impl RoleGuard {
    pub const fn new(roles: &'static [Role]) -> Self {
        Self(roles)
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let actor = actor(ctx)?;
        if actor.has_role(self.0) {
            return Ok(());
        }
        Err(refusal(ctx, self.0, actor, ""))
    }
}

/// A role guard on a field that acts on one retirement: the role that counts is the
/// actor's on the retirement's model, which a grant may set.
pub struct RetirementGuard<'i> {
    roles: &'static [Role],
    id: &'i async_graphql::ID,
}

impl<'i> RetirementGuard<'i> {
    pub const fn new(roles: &'static [Role], id: &'i async_graphql::ID) -> Self {
        Self { roles, id }
    }
}

impl Guard for RetirementGuard<'_> {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let actor = actor(ctx)?;
        // An id that does not parse is the resolver's to refuse, with its reason.
        let acting = match self.id.parse::<crate::domain::RetirementId>() {
            Ok(id) => services(ctx)?.acting_on_retirement(actor, id).await?,
            Err(_) => actor.clone(),
        };
        admit(ctx, self.roles, (actor, &acting), || {
            format!("the model of retirement {}", self.id.as_str())
        })
    }
}

/// Admits `acting` (the actor as a grant on `scope` makes it) when it holds one of
/// `roles`; the refusal says when the role is a grant's.
fn admit(
    ctx: &Context<'_>,
    roles: &[Role],
    (actor, acting): (&Actor, &Actor),
    scope: impl FnOnce() -> String,
) -> Result<()> {
    if acting.has_role(roles) {
        return Ok(());
    }
    let on = if acting.role == actor.role {
        String::new()
    } else {
        format!(" on {} (by a grant)", scope())
    };
    Err(refusal(ctx, roles, acting, &on))
}

/// "`field` needs the role a or b; token t has role r`on`".
fn refusal(ctx: &Context<'_>, roles: &[Role], acting: &Actor, on: &str) -> async_graphql::Error {
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    super::error::forbidden(format!(
        "{} needs the role {}; token {} has role {}{on}",
        ctx.field().name(),
        roles.join(" or "),
        acting.name,
        acting.role
    ))
}

/// A role guard on a field that acts on one model: the actor's role there counts, which
/// a grant on the model may set (see `domain::grant`).
pub struct ModelGuard<'m> {
    roles: &'static [Role],
    model: &'m str,
}

impl<'m> ModelGuard<'m> {
    pub const fn new(roles: &'static [Role], model: &'m str) -> Self {
        Self { roles, model }
    }
}

impl Guard for ModelGuard<'_> {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let actor = actor(ctx)?;
        // A name that does not parse is the use case's to refuse, with its reason.
        let acting = match crate::domain::ModelName::parse(self.model) {
            Ok(model) => services(ctx)?.acting_on(actor, &model).await?,
            Err(_) => actor.clone(),
        };
        admit(ctx, self.roles, (actor, &acting), || {
            format!("model {}", self.model)
        })
    }
}

pub fn actor<'a>(ctx: &Context<'a>) -> Result<&'a Actor> {
    ctx.data_opt::<Actor>()
        .ok_or_else(super::error::unauthenticated)
}

pub fn services<'a>(ctx: &Context<'a>) -> Result<&'a crate::service::Services> {
    ctx.data_opt::<crate::service::Services>()
        .ok_or_else(|| async_graphql::Error::new("service unavailable"))
}
