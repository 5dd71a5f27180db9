//! Who may move a version along its lifecycle, and whether the move overrides failed
//! validations: the gate every `transitionVersion` and approved promotion passes, before
//! the policy and signature checks of `registry.rs`.

use super::ServiceError;
use crate::auth::Actor;
use crate::domain::{LifecycleStatus, ModelName, RegisteredVersion};

/// The rule for `from → to`, or a conflict naming where the version can go instead.
fn transition_rule(
    from: LifecycleStatus,
    to: LifecycleStatus,
    subject: &str,
) -> Result<crate::domain::TransitionRule, ServiceError> {
    from.rule_to(to).ok_or_else(|| {
        let allowed: Vec<&str> = from
            .successors()
            .into_iter()
            .map(LifecycleStatus::as_str)
            .collect();
        ServiceError::Conflict(format!(
            "{subject} is {from} and cannot move to {to}; from {from} it can move to: {}",
            if allowed.is_empty() {
                "nothing (final)".to_owned()
            } else {
                allowed.join(", ")
            }
        ))
    })
}

/// Whether `actor` may make this move, and whether it does so by override (the role the
/// rule lets pass failed validations, approving an emergency deployment). Failed
/// validations refuse anyone else.
fn authorise_transition(
    actor: &Actor,
    rule: &crate::domain::TransitionRule,
    (subject, from, to): (&str, LifecycleStatus, LifecycleStatus),
    (model, owner_team): (&ModelName, &crate::domain::TeamName),
    failed: &[String],
    emergency: bool,
) -> Result<bool, ServiceError> {
    if rule.override_role == Some(actor.role) {
        // Past the gate only through an emergency deployment (AISVS 3.2.4): a risk
        // assessment, a second person's approval, and a deadline for the validations.
        if !emergency {
            return Err(ServiceError::Forbidden(format!(
                "{subject} goes to {to} past its validation gate only through an emergency deployment: its owners ask with requestEmergencyDeployment (a risk assessment and how long it may run), and a {} actor who did not ask approves with approveEmergencyDeployment",
                actor.role
            )));
        }
        return Ok(true);
    }
    if !actor.has_role(rule.roles) {
        let roles: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
        return Err(ServiceError::Forbidden(format!(
            "role {} may not move {subject} from {from} to {to}; {} may",
            actor.role,
            roles.join(" or ")
        )));
    }
    super::registry::require_own_model(actor, owner_team, model)?;
    if !failed.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "{subject} cannot be promoted to {to}: validations failed: {}; every validation must pass, or a security-role actor may override with a justification",
            failed.join(", ")
        )));
    }
    Ok(false)
}

/// Whether `actor` may move `before` to `to` under the transition rules: the failed
/// validations the move overrides (empty unless an approved emergency deployment), or
/// why not.
pub(super) fn judge_transition(
    actor: &Actor,
    (subject, before, to): (&str, &RegisteredVersion, LifecycleStatus),
    owner: (&ModelName, &crate::domain::TeamName),
    (attested, emergency): (&[crate::store::validations::AttestedValidation], bool),
) -> Result<Vec<String>, ServiceError> {
    let from = before.status;
    let rule = transition_rule(from, to, subject)?;
    // Signed results stand over the version's own claims of the same name.
    let failed: Vec<String> = if rule.needs_passed_validations {
        super::validations::gate_results(&before.provenance.validations, attested)
            .into_iter()
            .filter(|(_, passed)| !passed)
            .map(|(name, _)| name)
            .collect()
    } else {
        Vec::new()
    };
    let is_override =
        authorise_transition(actor, &rule, (subject, from, to), owner, &failed, emergency)?;
    Ok(if is_override { failed } else { Vec::new() })
}
