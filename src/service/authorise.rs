//! Who may do what, stated once: a use case names the roles that may act and what the
//! act is, and a refusal always reads the same way ("role reader may not execute
//! retirements; governance may"). Team ownership and the two-person rule build on it in
//! the use cases that need them.

use super::ServiceError;
use crate::auth::Actor;
use crate::domain::Role;

/// Refuses `actor` unless its role is one of `roles`; `what` completes "may not …".
pub(crate) fn require(actor: &Actor, roles: &[Role], what: &str) -> Result<(), ServiceError> {
    if actor.has_role(roles) {
        return Ok(());
    }
    Err(ServiceError::Forbidden(format!(
        "role {} may not {what}; {} may",
        actor.role,
        either(roles)
    )))
}

/// `a`, `a or b`, `a, b or c`.
fn either(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    match names.split_last() {
        None => "nobody".into(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            role,
            ..Actor::local_operator()
        }
    }

    #[test]
    fn a_refusal_names_the_role_the_act_and_who_may() {
        assert!(require(&actor(Role::Governance), &[Role::Governance], "x").is_ok());
        let refused = |roles: &[Role]| {
            require(&actor(Role::Reader), roles, "roll back models")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(&[Role::Admin]),
            "role reader may not roll back models; admin may"
        );
        assert_eq!(
            refused(&[Role::Auditor, Role::Admin]),
            "role reader may not roll back models; auditor or admin may"
        );
        assert_eq!(
            refused(&[Role::Owner, Role::Governance, Role::Security]),
            "role reader may not roll back models; owner, governance or security may"
        );
    }
}
