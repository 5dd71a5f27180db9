//! The command line: argument definitions and what each command does.

use crate::app::{self, Application};
use crate::audit::Checkpoint;
use crate::auth::Actor;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::service::read_checkpoint_lines;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod offline;
use offline::{verify_certificate, verify_report};

#[derive(Parser, Debug)]
#[command(
    name = "sunset",
    version,
    about = "Knows which systems use which AI models, and retires models safely."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SUNSET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data folder: SQLite database, key folder, checkpoint file.
    #[arg(long, global = true, env = "SUNSET_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve HTTP (GraphQL at /graphql); applies migrations first.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "SUNSET_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check and checkpoint the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the signers whose signatures on model versions count.
    #[command(subcommand)]
    Signer(SignerCommand),
    /// The service's own keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Destruction certificates.
    #[command(subcommand)]
    Certificate(CertificateCommand),
    /// Compliance reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// A model's past, from the audit trail.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Scan gateway access logs once now (every configured source, or one), from where
    /// the last scan stopped; prints a JSON report per source.
    Scan {
        #[arg(long)]
        source: Option<String>,
    },
    /// After restoring a database backup: what it holds under KEK epochs destroyed since.
    #[command(subcommand)]
    Restore(RestoreCommand),
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Report (JSON) the artifacts whose keys are wrapped under KEK epochs the key store
    /// no longer holds. Exit 0 when the service starts as it is, 1 when erasures must be
    /// accepted, 2 when the key store is the wrong one.
    Verify,
    /// Record the artifacts under destroyed epochs as erased (audited) so the service
    /// starts; refused while any key should open and does not.
    AcceptErasures {
        /// Required: the erased artifacts stay unrecoverable, and are recorded so.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print the service's public key (PEM): what verifies its checkpoints, revocation
    /// lists and destruction certificates. Give it to auditors.
    Public,
    /// Make a new service key in a file of its own (mode 0600), for `service_key_file`:
    /// the key every replica of a fleet mounts (as a Kubernetes Secret, say). Refuses a
    /// file that exists. Back it up: without it the audit trail cannot be verified.
    CreateServiceKey {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertificateCommand {
    /// Verify a destruction certificate (a DSSE envelope, as `GET /v1/certificates/{id}`
    /// serves it) offline. Exit 0 only when its signature verifies and it is a sunset
    /// destruction certificate; prints what it certifies.
    Verify {
        /// The certificate file.
        file: PathBuf,
        /// The service's public key (PEM, as `sunset keys public` prints it). Without it,
        /// the key in this data folder is used.
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Print (JSON) the model as it was at `--at` (RFC 3339): versions, statuses,
    /// artifacts, signatures, provenance and consumers, rebuilt from authenticated audit
    /// records, with the records it rests on. Recorded as a read of the log.
    AsOf {
        name: String,
        #[arg(long)]
        at: chrono::DateTime<chrono::Utc>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Verify a signed compliance report (a DSSE envelope, as
    /// `GET /v1/models/{name}/compliance-report?format=dsse` serves it) offline. Exit 0
    /// only when its signature verifies and it is a sunset compliance report; prints
    /// what it reports.
    Verify {
        /// The report file.
        file: PathBuf,
        /// The service's public key (PEM, as `sunset keys public` prints it). Without it,
        /// the key in this data folder is used.
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SignerCommand {
    /// Register a signer by its public key (PEM, ECDSA P-256 or Ed25519).
    Add {
        #[arg(long)]
        name: String,
        /// File holding the PEM public key, as `openssl pkey -pubout` writes it.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// What its signatures count for: `model-signing` (the default) and/or
        /// `validator` (signed validation results); repeat for both.
        #[arg(long = "purpose", value_name = "PURPOSE")]
        purposes: Vec<String>,
    },
    /// List signers (public keys and status).
    List,
    /// Disable a signer: its signatures stop counting.
    Disable { name: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print its secret on standard output, once.
    Create {
        #[arg(long)]
        name: String,
        /// reader, owner, governance, security, auditor or admin.
        #[arg(long)]
        role: String,
        /// The team an owner token acts for.
        #[arg(long)]
        team: Option<String>,
        /// The consumer the token acts for: its downloads are recorded as usage.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify the whole chain offline. Exit 0 only when intact; otherwise name the first broken record.
    Verify {
        /// A checkpoint kept elsewhere (JSON Lines, as printed by `sunset audit checkpoint`); may repeat.
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
    },
    /// Sign a checkpoint of the current head and print it as one JSON line, to keep elsewhere.
    Checkpoint,
}

impl Cli {
    /// The log format the settings ask for; text when they do not load (the command then
    /// reports why).
    /// How to log, and where traces go (none for commands other than `serve`, which
    /// are short and would only slow their exit sending spans).
    pub fn telemetry_settings(&self) -> (crate::config::LogFormat, crate::config::TraceSettings) {
        let settings = self.settings().ok();
        let format = settings.as_ref().map(|s| s.log.format).unwrap_or_default();
        let traces = match (&self.command, settings) {
            (Command::Serve { .. }, Some(s)) => s.traces,
            _ => crate::config::TraceSettings::default(),
        };
        (format, traces)
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            settings.data_dir.clone_from(dir);
        }
        Ok(settings)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut settings = cli.settings()?;
    let clock = || Arc::new(SystemClock);
    match cli.command {
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                settings.listen = addr;
            }
            let application = Application::build(settings, clock()).await?;
            application
                .run_until_stopped(app::shutdown_signal())
                .await?;
        }
        Command::Migrate => {
            app::open(&settings, clock()).await?;
            eprintln!("migrations applied");
        }
        Command::Token(command) => token(app::open(&settings, clock()).await?, command).await?,
        Command::Signer(command) => signer(&settings, command).await?,
        Command::Scan { source } => scan(app::open(&settings, clock()).await?, source).await?,
        Command::Audit(AuditCommand::Checkpoint) => {
            let services = app::open(&settings, clock()).await?;
            let operator = Actor::local_operator();
            let cp = services.audit().sign_audit_checkpoint(&operator).await?;
            println!("{}", serde_json::to_string(&cp)?);
        }
        Command::Model(ModelCommand::AsOf { name, at }) => {
            let services = app::open(&settings, clock()).await?;
            let past = services
                .audit()
                .model_as_of(&Actor::local_operator(), &name, at)
                .await?;
            println!("{}", serde_json::to_string_pretty(&past)?);
        }
        Command::Audit(AuditCommand::Verify { checkpoint }) => {
            return verify(&settings, &checkpoint).await;
        }
        Command::Keys(KeysCommand::Public) => {
            let key = load_service_key(&settings)?;
            print!("{}", key.public_key_pem());
        }
        Command::Keys(KeysCommand::CreateServiceKey { out }) => {
            anyhow::ensure!(
                crate::attest::ServiceKey::create_at(&out)?,
                "{} exists; a service key is never overwritten",
                out.display()
            );
            eprintln!("created the service key {}", out.display());
        }
        Command::Certificate(CertificateCommand::Verify { file, public_key }) => {
            return verify_certificate(&settings, &file, public_key.as_deref());
        }
        Command::Report(ReportCommand::Verify { file, public_key }) => {
            return verify_report(&settings, &file, public_key.as_deref());
        }
        Command::Restore(command) => return restore(&settings, command).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// `sunset token create | list | revoke`, as the local operator.
async fn token(services: crate::service::Services, command: TokenCommand) -> anyhow::Result<()> {
    let operator = Actor::local_operator();
    match command {
        TokenCommand::Create {
            name,
            role,
            team,
            consumer,
        } => {
            let (_, secret) = services
                .admin()
                .create_token(
                    &operator,
                    &name,
                    &role,
                    team.as_deref(),
                    consumer.as_deref(),
                )
                .await?;
            println!("{}", secret.expose());
        }
        TokenCommand::List => {
            println!(
                "{:<32} {:<11} {:<24} {:<26} REVOKED",
                "NAME", "ROLE", "TEAM", "CREATED"
            );
            let time = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            for t in services.admin().tokens(&operator).await? {
                println!(
                    "{:<32} {:<11} {:<24} {:<26} {}",
                    t.name.as_str(),
                    t.role.as_str(),
                    t.team.as_ref().map(|t| t.as_str()).unwrap_or("-"),
                    time(t.created_at),
                    t.revoked_at.map(time).unwrap_or_else(|| "-".into())
                );
            }
            return Ok(());
        }
        TokenCommand::Revoke { name } => {
            services.admin().revoke_token(&operator, &name).await?;
            eprintln!("token {name} revoked");
        }
    }
    checkpoint_at_rest(&services).await;
    Ok(())
}

/// `sunset signer add | list | disable`, as the local operator. The key file is read
/// before the database is opened, so a wrong path changes nothing.
async fn signer(settings: &Settings, command: SignerCommand) -> anyhow::Result<()> {
    let operator = Actor::local_operator();
    let services = match command {
        SignerCommand::Add {
            name,
            public_key,
            purposes,
        } => {
            let pem = std::fs::read_to_string(&public_key)
                .with_context(|| format!("reading the public key {}", public_key.display()))?;
            let services = app::open(settings, Arc::new(SystemClock)).await?;
            let signer = services
                .registry()
                .add_signer(&operator, &name, &pem, &purposes)
                .await?;
            eprintln!(
                "signer {} registered ({}, key id {})",
                signer.name, signer.algorithm, signer.key_id
            );
            services
        }
        SignerCommand::List => {
            let services = app::open(settings, Arc::new(SystemClock)).await?;
            println!(
                "{:<32} {:<11} {:<8} {:<64}",
                "NAME", "ALGORITHM", "ENABLED", "KEY ID"
            );
            for s in services.registry().signers().await? {
                println!(
                    "{:<32} {:<11} {:<8} {:<64}",
                    s.name.as_str(),
                    s.algorithm.as_str(),
                    if s.enabled { "yes" } else { "no" },
                    s.key_id
                );
            }
            return Ok(());
        }
        SignerCommand::Disable { name } => {
            let services = app::open(settings, Arc::new(SystemClock)).await?;
            services.registry().disable_signer(&operator, &name).await?;
            eprintln!("signer {name} disabled");
            services
        }
    };
    checkpoint_at_rest(&services).await;
    Ok(())
}

/// `sunset scan [source]`: every configured source, or the one named, with a progress
/// bar on the terminal and each report as a JSON line.
async fn scan(services: crate::service::Services, source: Option<String>) -> anyhow::Result<()> {
    let names: Vec<String> = match source {
        Some(name) => vec![name],
        None => services
            .inventory()
            .scan_sources()
            .iter()
            .map(|s| s.name.clone())
            .collect(),
    };
    anyhow::ensure!(
        !names.is_empty(),
        "no scan sources are configured; add [[scan.sources]] to the configuration"
    );
    for name in names {
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )?
            .progress_chars("=> "),
        );
        bar.set_prefix(name.clone());
        let report = services
            .inventory()
            .run_scan(&name, &|p| {
                bar.set_length(p.bytes_total);
                bar.set_position(p.bytes_done);
            })
            .await?;
        bar.finish_and_clear();
        println!("{}", serde_json::to_string(&report)?);
    }
    checkpoint_at_rest(&services).await;
    Ok(())
}

/// Leaves the log signed up to its head when a command is done writing, so that even
/// a deletion of the newest record shows against the checkpoint.
async fn checkpoint_at_rest(services: &crate::service::Services) {
    if let Err(e) = services.audit().sign_audit_checkpoint_if_moved().await {
        tracing::warn!(error = %e, "could not sign an audit checkpoint after the command");
    }
}

/// The service key of this data folder, which must exist: reading commands create none.
pub(super) fn load_service_key(settings: &Settings) -> anyhow::Result<crate::attest::ServiceKey> {
    let path = settings.service_key_path();
    crate::attest::ServiceKey::load_configured(settings).with_context(|| {
        format!(
            "no service key at {}; pass --data-dir, or --public-key with the service's PEM",
            path.display()
        )
    })
}

async fn verify(settings: &Settings, kept_files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    // Verification reads only: it must not create a database or a key where there is none.
    if settings.database.url.is_none() && !settings.data_dir.join("sunset.db").exists() {
        anyhow::bail!(
            "no database at {}; pass --data-dir or --config",
            settings.data_dir.join("sunset.db").display()
        );
    }
    let key = crate::attest::ServiceKey::load_configured(settings)
        .context("the service key is needed to check signed checkpoints")?;
    let store = crate::store::Store::connect(settings.database_url().expose()).await?;
    let services = crate::service::Services::new(store, Arc::new(SystemClock), key, None, settings);
    let mut kept: Vec<Checkpoint> = Vec::new();
    for f in kept_files {
        anyhow::ensure!(f.exists(), "checkpoint file {} does not exist", f.display());
        kept.extend(read_checkpoint_lines(f).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    match services.audit().verify_audit_chain(kept).await? {
        Ok(report) => {
            println!(
                "audit chain intact: {} records, head {}, {} signed checkpoints matched",
                report.records, report.head_hash, report.checkpoints_checked
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("audit chain BROKEN: {broken}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `sunset restore verify | accept-erasures`, as the local operator.
async fn restore(settings: &Settings, command: RestoreCommand) -> anyhow::Result<ExitCode> {
    let services = app::open_for_restore(settings, Arc::new(SystemClock)).await?;
    match command {
        RestoreCommand::Verify => {
            let report = services.admin().restore_report().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if !report.foreign.is_empty() {
                ExitCode::from(2)
            } else if !report.destroyed.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        RestoreCommand::AcceptErasures { yes } => {
            if !yes {
                anyhow::bail!(
                    "accepting erasures records artifacts as erased for good; run `sunset restore verify` first, then this again with --yes"
                );
            }
            let (before, recorded) = services
                .admin()
                .accept_restore_erasures(&Actor::local_operator())
                .await?;
            println!("{}", serde_json::to_string_pretty(&before)?);
            eprintln!(
                "{recorded} artifact(s) recorded as erased; the service starts on this database now"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
