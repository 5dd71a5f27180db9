//! Retention proposals over GraphQL: anyone may see what retention proposes; governance
//! accepts (scheduling the retirement with the tier's notice) or dismisses each.

use super::guard::{ANY_ROLE, ModelGuard, RoleGuard, actor, services};
use super::retirements::Retirement;
use crate::domain::{self, Role};
use async_graphql::{ComplexObject, Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

const GOVERNANCE: &[Role] = &[Role::Governance];

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "RetentionProposalState")]
pub enum ProposalStateGql {
    /// Waiting for governance.
    Proposed,
    /// Accepted: its retirement is scheduled with the tier's notice.
    Accepted,
    /// Dismissed: the version is kept and not proposed again.
    Dismissed,
    /// No longer due before anyone decided.
    Lapsed,
    /// Scheduled by the service after the policy's quiet period, without a proposal.
    Scheduled,
}

impl ProposalStateGql {
    fn domain(self) -> domain::ProposalState {
        use domain::ProposalState as S;
        match self {
            Self::Proposed => S::Proposed,
            Self::Accepted => S::Accepted,
            Self::Dismissed => S::Dismissed,
            Self::Lapsed => S::Lapsed,
            Self::Scheduled => S::Scheduled,
        }
    }
}

impl From<domain::ProposalState> for ProposalStateGql {
    fn from(s: domain::ProposalState) -> Self {
        use domain::ProposalState as S;
        match s {
            S::Proposed => Self::Proposed,
            S::Accepted => Self::Accepted,
            S::Dismissed => Self::Dismissed,
            S::Lapsed => Self::Lapsed,
            S::Scheduled => Self::Scheduled,
        }
    }
}

/// Which rule of the model's policy made the version due.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "RetentionRule")]
pub enum RuleGql {
    /// Deprecated longer than `retentionDays`.
    RetentionDays,
    /// Beyond `maxVersions`.
    MaxVersions,
}

/// A deprecated version its model's policy no longer keeps, proposed for retirement.
#[derive(SimpleObject)]
#[graphql(name = "RetentionProposal", complex)]
pub struct ProposalGql {
    id: ID,
    model: String,
    version: String,
    rule: RuleGql,
    /// The rule's finding in words.
    why: String,
    state: ProposalStateGql,
    proposed_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    decided_by: Option<String>,
    /// Governance's note on its decision, or why the proposal lapsed.
    note: Option<String>,
    #[graphql(skip)]
    retirement_id: Option<domain::RetirementId>,
}

#[ComplexObject]
impl ProposalGql {
    /// The retirement accepting it scheduled (or the service, after the quiet period).
    async fn retirement(&self, ctx: &Context<'_>) -> Result<Option<Retirement>> {
        let Some(id) = self.retirement_id else {
            return Ok(None);
        };
        Ok(Some(
            services(ctx)?.retirements().retirement(id).await?.into(),
        ))
    }
}

impl From<domain::RetentionProposal> for ProposalGql {
    fn from(p: domain::RetentionProposal) -> Self {
        Self {
            id: ID(p.id.to_string()),
            model: p.model.to_string(),
            version: p.version.to_string(),
            rule: match p.because {
                domain::DueBecause::Retention => RuleGql::RetentionDays,
                domain::DueBecause::MaxVersions => RuleGql::MaxVersions,
            },
            why: p.why,
            state: p.state.into(),
            proposed_at: p.proposed_at,
            decided_at: p.decided_at,
            decided_by: p.decided_by,
            note: p.note,
            retirement_id: p.retirement,
        }
    }
}

#[derive(Default)]
pub struct RetentionQuery;

#[Object]
impl RetentionQuery {
    /// What retention proposed, newest first (at most 500): of one model or all, in one
    /// state or any.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn retention_proposals(
        &self,
        ctx: &Context<'_>,
        model: Option<String>,
        state: Option<ProposalStateGql>,
    ) -> Result<Vec<ProposalGql>> {
        Ok(services(ctx)?
            .retirements()
            .retention_proposals(model.as_deref(), state.map(ProposalStateGql::domain))
            .await?
            .into_iter()
            .map(ProposalGql::from)
            .collect())
    }
}

#[derive(Default)]
pub struct RetentionMutation;

#[Object]
impl RetentionMutation {
    /// Accepts the open retention proposal for `model@version`: schedules its
    /// retirement with the tier's notice (to the next midnight UTC), the production
    /// version as its replacement. Refused when the version is no longer due. Audited.
    #[graphql(guard = "ModelGuard::new(GOVERNANCE, &model)")]
    async fn accept_retention_proposal(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        note: Option<String>,
    ) -> Result<ProposalGql> {
        let (proposal, _) = services(ctx)?
            .retirements()
            .accept_retention_proposal(actor(ctx)?, &model, &version, note.as_deref())
            .await?;
        Ok(proposal.into())
    }

    /// Dismisses the open retention proposal for `model@version`, saying why the version
    /// is kept; it is not proposed again. Audited.
    #[graphql(guard = "ModelGuard::new(GOVERNANCE, &model)")]
    async fn dismiss_retention_proposal(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        note: String,
    ) -> Result<ProposalGql> {
        Ok(services(ctx)?
            .retirements()
            .dismiss_retention_proposal(actor(ctx)?, &model, &version, &note)
            .await?
            .into())
    }
}
