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
        let roles: Vec<&str> = self.0.iter().map(|r| r.as_str()).collect();
        Err(super::error::forbidden(format!(
            "{} needs the role {}; token {} has role {}",
            ctx.field().name(),
            roles.join(" or "),
            actor.name,
            actor.role
        )))
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
