//! Settings: built-in defaults, then a TOML file, then `SUNSET_*` environment variables
//! (nested keys with `__`, e.g. `SUNSET_DATABASE__URL`), then `DATABASE_URL`, then CLI
//! flags. With nothing set, sunset runs on SQLite in `./sunset-data` on loopback.
//!
//! Why this file is long: it is the settings reference, one documented struct per section
//! with its defaults and its checks, read in one place; the tests are in `config/tests.rs`.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod observability;
mod policy;
mod vault;
pub use observability::{LogFormat, LogSettings, MetricsSettings, TraceSettings};
pub use policy::{PolicySettings, TierPolicySettings};
pub use vault::{
    BlobSettings, BucketUrl, KekBackend, KekSettings, PKCS11_PIN_VARIABLE, VaultSettings,
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";
pub const DEFAULT_DATA_DIR: &str = "sunset-data";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Where the SQLite database, the key folder and the checkpoint file live.
    pub data_dir: PathBuf,
    /// The service key kept outside the data folder: a file every replica mounts (a
    /// Kubernetes Secret), made once by `sunset keys create-service-key`. Never created
    /// by `serve`; it may be readable by its group (a Secret volume's `fsGroup`), never by
    /// others. Unset: `keys/service-ed25519.key` in the data folder, created on first start.
    pub service_key_file: Option<PathBuf>,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub graphql: GraphqlSettings,
    pub audit: AuditSettings,
    pub inventory: InventorySettings,
    pub scan: ScanSettings,
    pub retirement: RetirementSettings,
    /// Each tier's default model policy.
    pub policy: PolicySettings,
    pub notifications: NotificationSettings,
    pub vault: VaultSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub traces: TraceSettings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://…` selects PostgreSQL; unset means SQLite in the data folder.
    pub url: Option<DatabaseUrl>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Largest request body accepted on `/graphql`, in bytes.
    pub max_body_bytes: usize,
    /// Serve the GraphiQL page (static HTML, no data) on `GET /graphql`.
    pub graphiql: bool,
    /// The most one request may take, in seconds, to its response; artifact uploads and
    /// downloads (streams bounded by their own size limits) are exempt.
    pub request_timeout_secs: u64,
    /// Requests served at once; past that a request is answered 503 with `Retry-After`
    /// at once (health checks are exempt, so probes still see a busy replica as alive).
    pub max_concurrent_requests: usize,
    /// Serve the web console under `/ui` (people sign in with an API token).
    pub console: bool,
    /// How long a console session lasts from sign-in, in hours (1 to 24).
    pub console_session_hours: u64,
    /// HTTPS on `listen` (plain HTTP when no certificate is named).
    pub tls: TlsSettings,
    /// Reverse proxies (addresses or CIDR ranges) whose `client_ip_header` is believed
    /// for the client's address in audit records; from anyone else the connection's
    /// peer is the client. Empty by default: no header is believed.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies name the client in.
    pub client_ip_header: String,
}

/// `[http.tls]`: PEM files, read at start and again on SIGHUP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// The server's certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// CA certificates that issue clients' certificates: the webhook routes then refuse
    /// a request whose connection presented none.
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlSettings {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Most aliases one document may write.
    pub max_aliases: usize,
    /// How long a subscription socket may wait for its `connection_init`, in seconds.
    pub connection_init_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// When to sign a checkpoint of the chain head (cron with seconds; UTC).
    pub checkpoint_schedule: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8480))),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            service_key_file: None,
            database: DatabaseSettings::default(),
            http: HttpSettings::default(),
            graphql: GraphqlSettings::default(),
            audit: AuditSettings::default(),
            inventory: InventorySettings::default(),
            scan: ScanSettings::default(),
            retirement: RetirementSettings::default(),
            policy: PolicySettings::default(),
            notifications: NotificationSettings::default(),
            vault: VaultSettings::default(),
            metrics: MetricsSettings::default(),
            log: LogSettings::default(),
            traces: TraceSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventorySettings {
    /// An edge not confirmed (declared again or observed) for this many days is stale.
    pub stale_after_days: u32,
    /// How often an instance looks for inventory changes made by others, in milliseconds
    /// (and for kill switches and retirement changes): on PostgreSQL the safety net
    /// behind `listen`.
    pub poll_interval_ms: u64,
    /// On PostgreSQL, wake at once on other replicas' commits (`LISTEN`/`NOTIFY`) rather
    /// than at the next poll.
    pub listen: bool,
    /// The deepest `maxDepth` a question may ask for.
    pub max_depth: u32,
    /// The most nodes one answer returns (`limit`).
    pub max_results: usize,
    /// Registration webhooks whose timestamp is further than this from now are refused.
    pub webhook_tolerance_secs: u64,
    /// The most registrations one webhook body may carry.
    pub max_registrations: usize,
    /// How long rows of the inventory change sequence are kept (the newest always is).
    /// An instance that falls further behind loads the graph again whole.
    pub change_retention_days: u32,
}

impl Default for InventorySettings {
    fn default() -> Self {
        Self {
            stale_after_days: 30,
            poll_interval_ms: 250,
            max_depth: 50,
            max_results: 20_000,
            webhook_tolerance_secs: 300,
            max_registrations: 1_000,
            change_retention_days: 7,
            listen: true,
        }
    }
}

impl InventorySettings {
    pub fn stale_after(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.stale_after_days))
    }
}

/// The retirement policy: notice and reminders per criticality tier of the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetirementSettings {
    pub critical: TierNoticeSettings,
    pub high: TierNoticeSettings,
    pub standard: TierNoticeSettings,
    /// A dependent that neither acknowledged nor was seen using the model for this many
    /// days (the end of its notice included) no longer holds a retirement back.
    pub no_traffic_days: u32,
    /// When pending retirements are looked at (new dependents, reminders, deadlines): a
    /// cron expression with seconds, in UTC. One instance runs each tick.
    pub check_schedule: String,
    /// When retention looks for deprecated versions the models' policies no longer keep
    /// (and proposes or schedules their retirement): a cron expression with seconds, in
    /// UTC. One instance runs each tick.
    pub retention_schedule: String,
    /// Whether to look at pending retirements as soon as a committed inventory change
    /// touches their model, besides the schedule.
    pub watch_inventory: bool,
    /// The allowed time, in milliseconds, from pulling a kill switch to its enforcement
    /// (downloads refused): the response time AISVS 3.6.4 asks a policy to state. Each
    /// execution's measured time is recorded next to it, and on the certificate.
    pub kill_switch_response_ms: u64,
    /// How long an enforcement point has to confirm a kill switch (a signed
    /// acknowledgement, or a poll that gets the new list) before governance is told.
    pub enforcement_confirm_secs: u64,
    /// The webhook sources whose signed critical security alerts trip the circuit
    /// breaker (an emergency retirement of the named version). Empty: the breaker is off,
    /// and alerts are only recorded.
    pub circuit_breaker_sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierNoticeSettings {
    /// The least notice a retirement gives, in days from when it is scheduled (or from
    /// when a dependent is found).
    pub min_notice_days: u32,
    /// When dependents are reminded while their notice runs: cron expressions with
    /// seconds, in UTC.
    pub reminders: Vec<String>,
}

/// The most reminder schedules one tier may list.
const MAX_REMINDER_SCHEDULES: usize = 8;

impl Default for RetirementSettings {
    fn default() -> Self {
        let tier = |days: u32, reminders: &[&str]| TierNoticeSettings {
            min_notice_days: days,
            reminders: reminders.iter().map(|r| (*r).to_owned()).collect(),
        };
        // Mondays at 09:00 UTC; the short standard notice also on Thursdays, so it
        // holds more than one reminder.
        Self {
            critical: tier(90, &["0 0 9 * * Mon"]),
            high: tier(30, &["0 0 9 * * Mon"]),
            standard: tier(7, &["0 0 9 * * Mon,Thu"]),
            no_traffic_days: 14,
            check_schedule: "0 * * * * *".into(),
            retention_schedule: "0 30 * * * *".into(),
            watch_inventory: true,
            kill_switch_response_ms: 1_000,
            enforcement_confirm_secs: 300,
            circuit_breaker_sources: Vec::new(),
        }
    }
}

impl RetirementSettings {
    /// The policy these settings describe, or what is wrong with them.
    pub fn policy(&self) -> Result<crate::domain::NoticePolicy, ConfigError> {
        let tier = |name: &str, t: &TierNoticeSettings| {
            let at = format!("retirement.{name}");
            if !(1..=3_650).contains(&t.min_notice_days) {
                return Err(ConfigError(format!(
                    "{at}.min_notice_days must be 1 to 3650, not {}",
                    t.min_notice_days
                )));
            }
            if t.reminders.len() > MAX_REMINDER_SCHEDULES {
                return Err(ConfigError(format!(
                    "{at}.reminders lists {} schedules; at most {MAX_REMINDER_SCHEDULES}",
                    t.reminders.len()
                )));
            }
            let reminders = t
                .reminders
                .iter()
                .map(|r| {
                    r.parse::<cron::Schedule>()
                        .map_err(|e| ConfigError(format!("{at}.reminders: {r:?}: {e}")))
                })
                .collect::<Result<_, _>>()?;
            Ok(crate::domain::TierNotice {
                min_notice: chrono::Duration::days(i64::from(t.min_notice_days)),
                reminders,
            })
        };
        self.check_schedule
            .parse::<cron::Schedule>()
            .map_err(|e| ConfigError(format!("retirement.check_schedule: {e}")))?;
        self.retention_schedule
            .parse::<cron::Schedule>()
            .map_err(|e| ConfigError(format!("retirement.retention_schedule: {e}")))?;
        if !(1..=365).contains(&self.no_traffic_days) {
            return Err(ConfigError(format!(
                "retirement.no_traffic_days must be 1 to 365, not {}",
                self.no_traffic_days
            )));
        }
        Ok(crate::domain::NoticePolicy::new(
            tier("critical", &self.critical)?,
            tier("high", &self.high)?,
            tier("standard", &self.standard)?,
            chrono::Duration::days(i64::from(self.no_traffic_days)),
        ))
    }
}

/// How notices reach dependents: webhooks always, email when an SMTP server is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// A folder whose `notice.subject.txt`, `notice.txt` and `notice.html` replace the
    /// built-in templates, file by file. Checked at start-up.
    pub templates_dir: Option<PathBuf>,
    /// The most one webhook delivery attempt may take, in seconds.
    pub webhook_timeout_secs: u64,
    pub smtp: Option<SmtpConfig>,
    /// The address dependents reach this service at, for the acknowledgement links in
    /// notices (e.g. `https://sunset.example.org`). Defaults to `http://` and the listen
    /// address, which suits only a local trial.
    pub public_url: Option<String>,
    /// Where undeliverable notices are escalated, beside the model's own contacts.
    pub governance_contacts: Vec<String>,
    /// Whether this instance runs the delivery worker. Every instance may: claims keep
    /// them from sending one notice twice at once.
    pub deliver: bool,
    /// Deliveries one worker makes at once.
    pub concurrency: usize,
    /// How long an acknowledgement link stays valid after the retirement's effective
    /// date, in days.
    pub link_valid_days_after: u32,
    /// Whether webhook URLs may use plain `http://` (tests, development). Off: `https://`
    /// only.
    pub webhook_allow_http: bool,
    /// Internal networks (CIDR, e.g. `10.20.0.0/16`, or single addresses) that webhooks
    /// may reach. Loopback, link-local, private, unique-local, multicast and reserved
    /// addresses are refused unless listed here.
    pub webhook_allow: Vec<String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            templates_dir: None,
            webhook_timeout_secs: 10,
            smtp: None,
            public_url: None,
            governance_contacts: Vec::new(),
            deliver: true,
            concurrency: 64,
            link_valid_days_after: 30,
            webhook_allow_http: false,
            webhook_allow: Vec::new(),
        }
    }
}

/// The SMTP server notices are sent through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "SmtpConfig::default_port")]
    pub port: u16,
    /// `starttls` (required upgrade, the default), `tls` (from the first byte) or
    /// `plain` (a relay on the same host only).
    #[serde(default = "SmtpConfig::default_security")]
    pub security: notifiers::email::Security,
    pub username: Option<String>,
    /// Better set through `SUNSET_NOTIFICATIONS__SMTP__PASSWORD` than in the file.
    pub password: Option<Password>,
    /// The From address, e.g. `sunset <sunset@example.org>`.
    pub from: String,
    #[serde(default = "SmtpConfig::default_timeout_secs")]
    pub timeout_secs: u64,
}

impl SmtpConfig {
    fn default_port() -> u16 {
        587
    }
    fn default_security() -> notifiers::email::Security {
        notifiers::email::Security::StartTls
    }
    fn default_timeout_secs() -> u64 {
        30
    }

    /// The settings the email channel takes.
    pub fn to_smtp_settings(&self) -> notifiers::email::SmtpSettings {
        notifiers::email::SmtpSettings {
            host: self.host.clone(),
            port: self.port,
            security: self.security,
            credentials: self.username.clone().map(|user| {
                let password = self
                    .password
                    .as_ref()
                    .map(|p| p.0.clone())
                    .unwrap_or_default();
                (user, zeroize::Zeroizing::new(password))
            }),
            from: self.from.clone(),
            timeout: std::time::Duration::from_secs(self.timeout_secs),
        }
    }
}

/// A password from the configuration: never printed, and wiped from memory when dropped.
#[derive(Clone, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(transparent)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Password {
    /// Settings are serialised only as defaults, which hold no password; should one be
    /// serialised anyway, it does not leave in clear.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl NotificationSettings {
    /// Where outgoing webhooks may go (see `notifiers::outbound`).
    pub fn outbound_policy(&self) -> Result<notifiers::outbound::OutboundPolicy, ConfigError> {
        let allowed = self
            .webhook_allow
            .iter()
            .map(|n| notifiers::outbound::Network::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("notifications.webhook_allow: {e}")))?;
        Ok(notifiers::outbound::OutboundPolicy {
            allow_http: self.webhook_allow_http,
            allowed,
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !(1..=120).contains(&self.webhook_timeout_secs) {
            return Err(ConfigError(
                "notifications.webhook_timeout_secs must be 1 to 120".into(),
            ));
        }
        if !(1..=1_024).contains(&self.concurrency) {
            return Err(ConfigError(
                "notifications.concurrency must be 1 to 1024".into(),
            ));
        }
        if self.link_valid_days_after > 3_650 {
            return Err(ConfigError(
                "notifications.link_valid_days_after must be at most 3650".into(),
            ));
        }
        if let Some(url) = &self.public_url {
            crate::domain::WebhookUrl::parse(url)
                .map_err(|e| ConfigError(format!("notifications.public_url: {e}")))?;
        }
        crate::domain::Contacts::parse(&self.governance_contacts)
            .map_err(|e| ConfigError(format!("notifications.governance_contacts: {e}")))?;
        self.outbound_policy()?;
        notifiers::email::Templates::load(self.templates_dir.as_deref())
            .map_err(|e| ConfigError(format!("notifications.templates_dir: {e}")))?;
        if let Some(smtp) = &self.smtp {
            if !(1..=300).contains(&smtp.timeout_secs) {
                return Err(ConfigError(
                    "notifications.smtp.timeout_secs must be 1 to 300".into(),
                ));
            }
            if smtp.password.is_some() && smtp.username.is_none() {
                return Err(ConfigError(
                    "notifications.smtp: a password needs a username".into(),
                ));
            }
            smtp.to_smtp_settings()
                .check()
                .map_err(|e| ConfigError(format!("notifications.smtp: {e}")))?;
        }
        Ok(())
    }
}

/// Traffic scans of gateway access logs (JSON Lines).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSettings {
    pub sources: Vec<ScanSourceSettings>,
}

/// One gateway's logs. Point `paths` at the rotated files too (`access.jsonl*`), so lines
/// written just before a rotation are still read from the renamed file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSourceSettings {
    /// Names the source in evidence (`scan:<name>`) and on the command line.
    pub name: String,
    /// Files or glob patterns.
    pub paths: Vec<String>,
    /// When to scan (cron with seconds; UTC).
    pub schedule: String,
    /// The top-level field that names the caller.
    pub caller_field: String,
    /// The top-level field that holds the request path.
    pub path_field: String,
    /// A regular expression with the named groups `model` and `version`.
    pub path_pattern: String,
    /// The top-level field holding each line's time (RFC 3339, or Unix seconds or
    /// milliseconds), so evidence carries the traffic's own time; unset, the scan's time.
    pub time_field: Option<String>,
}

impl Default for ScanSourceSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            paths: Vec::new(),
            schedule: "0 */5 * * * *".into(),
            caller_field: "caller".into(),
            path_field: "path".into(),
            path_pattern: r"^/v1/models/(?P<model>[a-z0-9._-]+)/versions/(?P<version>[0-9]+\.[0-9]+\.[0-9]+)(/|$)".into(),
            time_field: None,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            graphiql: true,
            request_timeout_secs: 30,
            max_concurrent_requests: 1024,
            console: true,
            console_session_hours: 8,
            tls: TlsSettings::default(),
            trusted_proxies: Vec::new(),
            client_ip_header: "x-forwarded-for".into(),
        }
    }
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 2_000,
            max_aliases: 30,
            connection_init_timeout_secs: 10,
        }
    }
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            checkpoint_schedule: "0 */15 * * * *".into(),
        }
    }
}

/// A database URL, which may hold a password: never printed in full, and wiped from
/// memory when dropped.
#[derive(
    Clone, Serialize, Deserialize, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.0.split_once("://").map(|(s, _)| s).unwrap_or("?");
        write!(f, "{scheme}://[redacted]")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub(crate) String);

/// Says where a bad setting came from: a `SUNSET_*` environment variable is named as the
/// user would type it, since a stray one in a shell is the likeliest cause.
fn explain(errors: figment::Error) -> ConfigError {
    let said: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.to_ascii_lowercase().contains("environment"));
            let mut path = e.path.clone();
            if let figment::error::Kind::UnknownField(field, _) = &e.kind
                && path.last() != Some(field)
            {
                path.push(field.clone());
            }
            if from_env && !path.is_empty() {
                let variable = format!("SUNSET_{}", path.join("__").to_ascii_uppercase());
                let what = match &e.kind {
                    figment::error::Kind::UnknownField(..) => {
                        "is not a setting; unset it, or see the configuration table in README.md"
                            .to_owned()
                    }
                    other => other.to_string(),
                };
                format!("environment variable {variable} {what}")
            } else {
                e.to_string()
            }
        })
        .collect();
    ConfigError(said.join("; "))
}

impl Settings {
    /// Loads settings from `file` (when given) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // SUNSET_CONFIG names the file and SUNSET_TEST_* steer the test suite; neither is a setting.
        let env = Env::prefixed("SUNSET_")
            .filter(|key| {
                // Keys arrive in their original case.
                let key = key.as_str().to_ascii_lowercase();
                key != "config" && key != "log" && key != "pkcs11_pin" && !key.starts_with("test")
            })
            .split("__");
        figment = figment.merge(env).merge(
            Env::raw()
                .only(&["DATABASE_URL"])
                .map(|_| "database.url".into()),
        );
        let settings: Settings = figment.extract().map_err(explain)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database.url
            && !url.is_postgres()
            && !url.expose().starts_with("sqlite:")
        {
            return Err(ConfigError(
                "database.url must start with postgres://, postgresql:// or sqlite:".into(),
            ));
        }
        self.audit
            .checkpoint_schedule
            .parse::<cron::Schedule>()
            .map_err(|e| ConfigError(format!("audit.checkpoint_schedule: {e}")))?;
        let inv = &self.inventory;
        if inv.stale_after_days == 0
            || !(10..=60_000).contains(&inv.poll_interval_ms)
            || !(1..=1_000).contains(&inv.max_depth)
            || !(1..=1_000_000).contains(&inv.max_results)
            || !(1..=86_400).contains(&inv.webhook_tolerance_secs)
            || !(1..=10_000).contains(&inv.max_registrations)
            || !(1..=3_650).contains(&inv.change_retention_days)
        {
            return Err(ConfigError(
                "inventory: stale_after_days must be at least 1, poll_interval_ms 10 to 60000, \
                 max_depth 1 to 1000, max_results 1 to 1000000, webhook_tolerance_secs 1 to \
                 86400, max_registrations 1 to 10000 and change_retention_days 1 to 3650"
                    .into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for source in &self.scan.sources {
            let at = format!("scan source {:?}", source.name);
            crate::domain::TokenName::parse(&source.name)
                .map_err(|e| ConfigError(format!("{at}: name {}", e.message)))?;
            if !names.insert(source.name.as_str()) {
                return Err(ConfigError(format!("{at} is configured twice")));
            }
            if source.paths.is_empty() || source.paths.len() > 64 {
                return Err(ConfigError(format!(
                    "{at}: paths must list 1 to 64 files or globs"
                )));
            }
            for p in &source.paths {
                glob::Pattern::new(p).map_err(|e| ConfigError(format!("{at}: path {p:?}: {e}")))?;
            }
            source
                .schedule
                .parse::<cron::Schedule>()
                .map_err(|e| ConfigError(format!("{at}: schedule: {e}")))?;
            crate::ingest::scan::LineFormat::new(
                &source.caller_field,
                &source.path_field,
                &source.path_pattern,
            )
            .map_err(|e| ConfigError(format!("{at}: {e}")))?;
            if let Some(field) = &source.time_field
                && (field.is_empty() || [&source.caller_field, &source.path_field].contains(&field))
            {
                return Err(ConfigError(format!(
                    "{at}: time_field must name a field of its own, not be empty or the caller or path field"
                )));
            }
        }
        self.retirement.policy()?;
        self.notifications.check()?;
        self.vault.check()?;
        self.policy.check()?;
        self.traces.check()?;
        if self.metrics.enabled && self.metrics.listen == self.listen && self.listen.port() != 0 {
            return Err(ConfigError(
                "metrics.listen must differ from listen: metrics are served apart from the API"
                    .into(),
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.http.max_body_bytes) {
            return Err(ConfigError(
                "http.max_body_bytes must be between 1024 and 67108864".into(),
            ));
        }
        if !(1..=3_600).contains(&self.http.request_timeout_secs)
            || !(1..=100_000).contains(&self.http.max_concurrent_requests)
        {
            return Err(ConfigError(
                "http.request_timeout_secs must be 1 to 3600 and http.max_concurrent_requests 1 to 100000".into(),
            ));
        }
        if !(1..=24).contains(&self.http.console_session_hours) {
            return Err(ConfigError(
                "http.console_session_hours must be 1 to 24: a console session is a working day at most".into(),
            ));
        }
        self.validate_client_addresses()
    }

    fn validate_client_addresses(&self) -> Result<(), ConfigError> {
        if self.http.trusted_proxies.len() > 256 {
            return Err(ConfigError(
                "http.trusted_proxies lists more than 256 entries; name ranges instead".into(),
            ));
        }
        for proxy in &self.http.trusted_proxies {
            parse_trusted_proxy(proxy).map_err(ConfigError)?;
        }
        if axum::http::HeaderName::try_from(self.http.client_ip_header.as_str()).is_err() {
            return Err(ConfigError(format!(
                "http.client_ip_header {:?} is not a header name",
                self.http.client_ip_header
            )));
        }
        Ok(())
    }

    /// The database to use: the configured URL, or SQLite in the data folder.
    pub fn database_url(&self) -> DatabaseUrl {
        self.database.url.clone().unwrap_or_else(|| {
            DatabaseUrl::new(format!(
                "sqlite://{}",
                self.data_dir.join("sunset.db").display()
            ))
        })
    }

    pub fn key_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// Where the service key is read: `service_key_file`, or the key folder's file.
    pub fn service_key_path(&self) -> PathBuf {
        self.service_key_file
            .clone()
            .unwrap_or_else(|| self.key_dir().join(crate::attest::service_key::FILE_NAME))
    }

    pub fn checkpoint_file(&self) -> PathBuf {
        self.data_dir.join("audit-checkpoints.jsonl")
    }
}

#[cfg(test)]
mod tests;

/// One entry of `http.trusted_proxies`: `10.0.0.0/8`, `2001:db8::/32`, or one address.
pub fn parse_trusted_proxy(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!(
                "http.trusted_proxies: {raw:?} is neither an address nor a CIDR range (10.0.0.0/8, 2001:db8::/32)"
            )
        })
}
