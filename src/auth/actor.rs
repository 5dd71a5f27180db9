//! The authenticated party behind a request or command.

use crate::audit::AuditIdentity;
use crate::domain::{ConsumerName, Role, TeamName, TokenInfo};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A bearer token presented over HTTP.
    Token,
    /// Someone running the `sunset` CLI on the host, with access to its data folder.
    LocalOperator,
    /// The service itself (scheduled jobs).
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token name, or `cli:<user>` / `system` for the other kinds. Recorded in audit records.
    pub name: String,
    pub role: Role,
    pub team: Option<TeamName>,
    pub kind: ActorKind,
    /// The consumer a bound token acts for.
    pub consumer: Option<ConsumerName>,
    /// The client's address, for a request that came over the network (the connection's
    /// peer, or what a trusted proxy said it was). Recorded in audit records.
    pub client_ip: Option<IpAddr>,
}

impl Actor {
    pub fn from_token(info: &TokenInfo) -> Self {
        Self {
            name: info.name.to_string(),
            role: info.role,
            team: info.team.clone(),
            kind: ActorKind::Token,
            consumer: info.consumer.clone(),
            client_ip: None,
        }
    }

    /// The operator at the host's shell. Whoever can read the data folder already holds
    /// every key, so the CLI acts with the admin role, under the login name.
    pub fn local_operator() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| {
                uid()
                    .map(|u| format!("uid{u}"))
                    .unwrap_or_else(|| "unknown".into())
            });
        let user: String = user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .take(48)
            .collect();
        Self {
            name: format!("cli:{user}"),
            role: Role::Admin,
            team: None,
            kind: ActorKind::LocalOperator,
            consumer: None,
            client_ip: None,
        }
    }

    pub fn system() -> Self {
        Self {
            name: "system".into(),
            role: Role::Admin,
            team: None,
            kind: ActorKind::System,
            consumer: None,
            client_ip: None,
        }
    }

    /// Who is recorded in audit records: name, role and client address.
    pub fn audit_identity(&self) -> AuditIdentity<'_> {
        AuditIdentity {
            name: &self.name,
            role: self.role.as_str(),
            client_ip: self.client_ip,
        }
    }

    /// The same actor, seen from `ip`.
    pub fn from_address(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    pub fn has_role(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }
}

/// The real user id, from procfs, for hosts where neither USER nor LOGNAME is set.
fn uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
