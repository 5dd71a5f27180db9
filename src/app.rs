//! Building and running the service: data folder, keys, database, router, jobs.

use crate::attest::{KeyFileError, ServiceKey};
use crate::clock::Clock;
use crate::config::Settings;
use crate::graphql::build_schemas;
use crate::http::{AppState, router};
use crate::scheduler;
use crate::service::Services;
use crate::store::{Store, StoreError};
use crate::supervisor::Supervisor;
use crate::vault::Vault;
use std::future::{Future, IntoFuture};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("artifact vault: {0}")]
    Vault(#[from] crate::vault::VaultError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("audit.checkpoint_schedule: {0}")]
    Schedule(String),
    #[error("{0}")]
    ClientAddresses(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("loading the inventory graph: {0}")]
    Inventory(#[source] crate::service::ServiceError),
    #[error("recording this instance's first heartbeat: {0}")]
    Heartbeat(#[source] crate::service::ServiceError),
    #[error("reading the retirement changes announced so far: {0}")]
    RetirementFollow(#[source] crate::service::ServiceError),
    #[error(
        "{path} {} does not authenticate the {records} audit records the database holds: it is not the service key this database was written with. Restore the original key file (from the backup of the key folder) and start again; refusing to start rather than make every audit record read as forged",
        if *created { "was missing (a new key was made and removed again); the new key" } else { "is present but" }
    )]
    ForeignServiceKey {
        path: String,
        records: i64,
        created: bool,
    },
    #[error(
        "the key store {folder} does not open the data keys the database holds under KEK epoch {epoch} ({reason}). Every instance must use the key folder (or HSM token) the database was written with; refusing to start rather than wrap new keys under a KEK the other instances lack. After restoring a backup taken before an erasure, run `sunset restore verify`"
    )]
    ForeignKek {
        folder: String,
        epoch: u32,
        reason: crate::vault::VaultError,
    },
}

/// Creates `dir` with owner-only permissions, or tightens an existing one.
pub fn prepare_private_dir(dir: &Path) -> Result<(), StartupError> {
    let err = |source| StartupError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        tracing::warn!(path = %dir.display(), mode = format!("{mode:o}"), "tightening folder permissions to 700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Opens the data folder, key and database as every command sees them, migrated.
pub async fn open(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Services, StartupError> {
    let (services, store, vault) = open_unchecked(settings, clock).await?;
    check_kek_matches(&store, &vault).await?;
    Ok(services)
}

/// [`open`] without the check that the key store opens every KEK epoch the database
/// uses: for `sunset restore`, which reports and settles exactly that.
pub async fn open_for_restore(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Services, StartupError> {
    Ok(open_unchecked(settings, clock).await?.0)
}

async fn open_unchecked(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<(Services, Store, Vault), StartupError> {
    prepare_private_dir(&settings.data_dir)?;
    prepare_private_dir(&settings.key_dir())?;
    let (key, created) = match settings.service_key_file {
        Some(_) => (ServiceKey::load_configured(settings)?, false),
        None => ServiceKey::load_or_create_noting(&settings.key_dir())?,
    };
    let vault = Vault::open(&settings.vault, &settings.key_dir(), &settings.data_dir)?;
    let store = Store::connect(settings.database_url().expose()).await?;
    store.migrate().await?;
    check_service_key(&store, &key, created, &settings.service_key_path()).await?;
    let services = Services::new(store.clone(), clock, key, Some(vault.clone()), settings);
    Ok((services, store, vault))
}

/// Refuses a service key that does not authenticate the newest audit record: a missing
/// key file replaced by a new one (removed again, so the right one can be restored), or
/// another deployment's. Either would make every audit record read as forged, and leave
/// the sealed webhook secrets unopenable.
async fn check_service_key(
    store: &Store,
    key: &ServiceKey,
    created: bool,
    path: &Path,
) -> Result<(), StartupError> {
    let (head, _) = crate::store::audit::head(store.reader()).await?;
    if head == 0 {
        return Ok(());
    }
    let filter = crate::store::audit::RecordFilter::default();
    let newest = crate::store::audit::find_records(store.reader(), &filter, head - 1, 1).await?;
    let authentic = newest
        .first()
        .is_some_and(|r| r.authenticates(key.audit_mac_key()));
    if authentic {
        return Ok(());
    }
    if created {
        let _ = std::fs::remove_file(path);
    }
    Err(StartupError::ForeignServiceKey {
        path: path.display().to_string(),
        records: head,
        created,
    })
}

/// Opens one surviving data key per KEK epoch in use: an instance given a key folder
/// of its own (a fresh one creates its own epoch 1) would otherwise serve nothing
/// already stored and wrap new uploads under a KEK no other instance has.
async fn check_kek_matches(store: &Store, vault: &Vault) -> Result<(), StartupError> {
    let sample = crate::store::erasure::one_wrapping_per_epoch(store.reader()).await?;
    let sample = sample
        .into_iter()
        .map(|(_, id, epoch, bytes)| (epoch, id, bytes));
    match vault
        .opens_each(sample)
        .find_map(|(epoch, r)| r.err().map(|e| (epoch, e)))
    {
        Some((epoch, reason)) => Err(StartupError::ForeignKek {
            folder: vault.kek.describe(),
            epoch,
            reason,
        }),
        None => Ok(()),
    }
}

pub struct Application {
    listener: TcpListener,
    /// HTTPS on `listener`, when `http.tls` names a certificate.
    tls: Option<crate::tls::Tls>,
    /// `/metrics`, when enabled.
    metrics: Option<TcpListener>,
    services: Services,
    router: axum::Router,
    schedule: cron::Schedule,
    retirement_checks: cron::Schedule,
    retention: cron::Schedule,
    /// Whether this instance runs the notice delivery worker.
    deliver: bool,
    /// Whether it checks retirements as soon as the inventory changes.
    watch_inventory: bool,
    clock: Arc<dyn Clock>,
}

impl Application {
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let schedule: cron::Schedule = settings
            .audit
            .checkpoint_schedule
            .parse()
            .map_err(|e: cron::error::Error| StartupError::Schedule(e.to_string()))?;
        let retirement_checks: cron::Schedule = settings
            .retirement
            .check_schedule
            .parse()
            .map_err(|e: cron::error::Error| StartupError::Schedule(e.to_string()))?;
        let retention: cron::Schedule = settings
            .retirement
            .retention_schedule
            .parse()
            .map_err(|e: cron::error::Error| StartupError::Schedule(e.to_string()))?;
        let services = open(&settings, clock.clone()).await?;
        services
            .inventory()
            .load_inventory()
            .await
            .map_err(StartupError::Inventory)?;
        services
            .join_fleet()
            .await
            .map_err(StartupError::Heartbeat)?;
        services
            .retirements()
            .start_following_retirements()
            .await
            .map_err(StartupError::RetirementFollow)?;
        let schemas = build_schemas(Some(services.clone()), &settings.graphql);
        let state = AppState {
            services: services.clone(),
            schema: schemas.data.clone(),
            graphql: schemas,
            graphiql: settings.http.graphiql,
            connection_init_timeout_secs: settings.graphql.connection_init_timeout_secs,
            client_addresses: std::sync::Arc::new(
                crate::http::ClientAddresses::from_settings(&settings.http)
                    .map_err(StartupError::ClientAddresses)?,
            ),
        };
        let router = router(state, &settings);
        let tls = crate::tls::Tls::from_settings(&settings.http.tls)?;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Listen {
                    addr: settings.listen.to_string(),
                    source,
                })?;
        let metrics = if settings.metrics.enabled {
            let addr = settings.metrics.listen;
            Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Listen {
                        addr: format!("{addr} (metrics.listen)"),
                        source,
                    })?,
            )
        } else {
            None
        };
        Ok(Self {
            listener,
            tls,
            metrics,
            services,
            router,
            schedule,
            retirement_checks,
            retention,
            deliver: settings.notifications.deliver,
            watch_inventory: settings.retirement.watch_inventory,
            clock,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The metrics listener's port, when metrics are enabled.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    pub fn services(&self) -> Services {
        self.services.clone()
    }

    /// Starts the background work under one supervisor, which restarts a worker that
    /// fails and stops them all at shutdown.
    fn start_workers(&self) -> Supervisor {
        let workers = Supervisor::default();
        let (services, clock) = (self.services.clone(), self.clock.clone());
        for source in services.inventory().scan_sources() {
            // Checked when the settings were loaded; a failure here only skips the source.
            let Ok(schedule) = source.schedule.parse::<cron::Schedule>() else {
                continue;
            };
            let (s, c, name) = (services.clone(), clock.clone(), source.name.clone());
            workers.keep_running("scan", move || {
                scheduler::scans(s.clone(), name.clone(), schedule.clone(), c.clone())
            });
        }
        let (s, c, schedule) = (
            services.clone(),
            clock.clone(),
            self.retirement_checks.clone(),
        );
        workers.keep_running("retirement-checks", move || {
            scheduler::retirement_checks(s.clone(), schedule.clone(), c.clone())
        });
        let (s, c, schedule) = (services.clone(), clock.clone(), self.retention.clone());
        workers.keep_running("retention", move || {
            scheduler::retention(s.clone(), schedule.clone(), c.clone())
        });
        let (s, c, schedule) = (services.clone(), clock.clone(), self.schedule.clone());
        workers.keep_running("audit-checkpoints", move || {
            scheduler::checkpoints(s.clone(), schedule.clone(), c.clone())
        });
        let s = services.clone();
        workers.keep_running("heartbeat", move || s.clone().run_heartbeat());
        let s = services.clone();
        workers.keep_running("change-listener", move || s.clone().run_change_listener());
        if self.deliver {
            let s = services.clone();
            workers.keep_running("delivery", move || s.clone().run_delivery());
        }
        if self.watch_inventory {
            let s = services.clone();
            workers.keep_running("retirement-watch", move || s.clone().run_retirement_watch());
        }
        // Subscribers hear of kill switches pulled through any instance, and of
        // retirement changes made through any instance.
        let s = services.clone();
        workers.keep_running("kill-switch-watch", move || {
            s.clone().run_kill_switch_watch()
        });
        let s = services.clone();
        workers.keep_running("retirement-follow", move || {
            s.clone().run_retirement_follow()
        });
        // Other instances change the inventory too; follow them until the process ends.
        let s = services.clone();
        workers.keep_running("inventory-follow", move || {
            let s = s.clone();
            async move { s.inventory().follow_inventory().await }
        });
        if self.metrics.is_some() {
            let s = services.clone();
            workers.keep_running("metrics-sampler", move || {
                crate::prometheus::sample(s.clone())
            });
        }
        // An execution a crash cut short resumes now, not at the next check.
        workers.run_once("resume-decommissions", async move {
            match services.decommission().resume_decommissions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(finished = n, "resumed decommissions finished"),
                Err(e) => tracing::error!(error = %e, "resuming decommissions failed"),
            }
        });
        workers
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for up to 10 s.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, "sunset is listening");
        let workers = self.start_workers();
        if let Some(listener) = self.metrics {
            let metrics_addr = listener.local_addr()?;
            tracing::info!(addr = %metrics_addr, "metrics at /metrics");
            // Ends with the process; a scrape in flight at shutdown is of no consequence.
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, crate::prometheus::router()).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        }
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        // systemd (`Type=notify`): ready now the listeners are bound and the graph loaded.
        notify_systemd(sd_notify::NotifyState::Ready);
        let graceful = async move {
            shutdown.await;
            notify_systemd(sd_notify::NotifyState::Stopping);
            let _ = stopping_tx.send(());
        };
        // Every request knows its peer, and whether it presented a client certificate.
        let app = self
            .router
            .into_make_service_with_connect_info::<crate::tls::Peer>();
        let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
            match self.tls {
                None => Box::pin(
                    axum::serve(self.listener, app)
                        .with_graceful_shutdown(graceful)
                        .into_future(),
                ),
                Some(tls) => {
                    tls.reload_on_hangup();
                    Box::pin(
                        axum::serve(tls.listen(self.listener)?, app)
                            .with_graceful_shutdown(graceful)
                            .into_future(),
                    )
                }
            };
        let drained = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        };
        let result = tokio::select! {
            r = server => r,
            () = drained => {
                tracing::warn!("requests still running 10 s after shutdown began; stopping anyway");
                Ok(())
            }
        };
        workers.shutdown().await;
        self.services.leave_fleet().await;
        // Leave the log signed up to its head, so that a deletion of the newest records
        // while the service is down shows against the checkpoint.
        if let Err(e) = self.services.audit().sign_audit_checkpoint_if_moved().await {
            tracing::warn!(error = %e, "could not sign an audit checkpoint at shutdown");
        }
        tracing::info!("sunset stopped");
        result
    }
}

/// Tells systemd, when it started us with `NOTIFY_SOCKET`; otherwise does nothing.
fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
