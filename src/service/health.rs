//! Readiness: what each check of `/readyz` found on this instance.

use serde::Serialize;

/// One instance's readiness, check by check. Holds nothing secret: the KEK epochs are
/// numbers, shown so an operator (and a test) can see that a destroyed epoch is gone
/// from every replica.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub ready: bool,
    pub database: Check,
    pub inventory: InventoryCheck,
    pub kek: KekCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryCheck {
    pub ok: bool,
    /// The last inventory revision this instance applied.
    pub revision: i64,
    /// Whether it knows it is behind the database and is reloading.
    pub behind: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KekCheck {
    pub ok: bool,
    /// Why it is not ok: the key store (folder or HSM) could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The KEK epochs this instance holds in memory, oldest first.
    pub epochs: Vec<u32>,
}

impl super::Admin<'_> {
    /// Runs every readiness check; `ready` only when all pass.
    pub async fn readiness(&self) -> Readiness {
        let database = match self.store().ping().await {
            Ok(()) => Check {
                ok: true,
                error: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the database is not reachable");
                Check {
                    ok: false,
                    error: Some("the database is not reachable".into()),
                }
            }
        };
        let behind = self.inner.inventory.is_behind();
        let inventory = InventoryCheck {
            ok: !behind,
            revision: self.read_graph().revision(),
            behind,
        };
        let kek = self.kek_check().await;
        Readiness {
            ready: database.ok && inventory.ok && kek.ok,
            database,
            inventory,
            kek,
        }
    }

    /// Reads the key store (the folder, or the HSM over PKCS#11): reachable and holding
    /// at least one epoch.
    async fn kek_check(&self) -> KekCheck {
        let Ok(vault) = self.vault() else {
            return KekCheck {
                ok: false,
                error: Some("no vault in this process".into()),
                epochs: Vec::new(),
            };
        };
        let kek = vault.kek.clone();
        let reached = tokio::task::spawn_blocking(move || kek.refresh().map(|()| kek.epochs()))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match reached {
            Ok(epochs) => KekCheck {
                ok: !epochs.is_empty(),
                error: epochs
                    .is_empty()
                    .then(|| "the key store holds no KEK".into()),
                epochs,
            },
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the key store is not reachable");
                KekCheck {
                    ok: false,
                    error: Some("the key store is not reachable".into()),
                    epochs: Vec::new(),
                }
            }
        }
    }
}

/// What `/metrics` reports as gauges, read from the database and this replica.
#[derive(Debug, Clone)]
pub struct Gauges {
    pub notices_by_state: Vec<(String, i64)>,
    pub oldest_pending_notice: Option<chrono::DateTime<chrono::Utc>>,
    pub retirements_by_state: Vec<(String, i64)>,
    pub inventory_head: i64,
    pub graph_revision: i64,
    pub kek_epochs: usize,
}

impl super::Admin<'_> {
    pub async fn gauges(&self) -> Result<Gauges, super::ServiceError> {
        let read = crate::store::gauges::read(self.store().reader()).await?;
        Ok(Gauges {
            notices_by_state: read.notices_by_state,
            oldest_pending_notice: read.oldest_pending_notice,
            retirements_by_state: read.retirements_by_state,
            inventory_head: read.inventory_head,
            graph_revision: self.read_graph().revision(),
            kek_epochs: self.vault().map(|v| v.kek.epochs().len()).unwrap_or(0),
        })
    }
}
