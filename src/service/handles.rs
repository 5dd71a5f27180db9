//! The capabilities a caller asks [`Services`] for. Each handle is a borrowed view of the
//! one service (one store, one clock, one key set) that exposes only its capability's use
//! cases, so a transport names what it needs (`services.retirements().schedule(…)`) and a
//! reader finds a use case by its capability. Background workers, which must own the
//! service, stay on [`Services`] itself.

use super::Services;

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $accessor:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<'a>(&'a Services);

        impl std::ops::Deref for $name<'_> {
            type Target = Services;
            fn deref(&self) -> &Services {
                self.0
            }
        }

        impl Services {
            $(#[$doc])*
            pub fn $accessor(&self) -> $name<'_> {
                $name(self)
            }
        }
    };
}

handle!(
    /// Models, versions, their lifecycle and rollback; signers and signatures (C3.1–C3.3).
    Registry,
    registry
);
handle!(
    /// Encrypted artifacts: upload, list, open for download (C3.1, C3.3).
    Artifacts,
    artifacts
);
handle!(
    /// Who uses what: declared consumers and edges, registration webhooks, gateway-log
    /// scans, and the questions the graph answers (C3.1.5).
    Inventory,
    inventory
);
handle!(
    /// Retirements from schedule to their effective date: notices, reminders,
    /// acknowledgements, decisions, calendar feeds (C3.6.1).
    Retirements,
    retirements
);
handle!(
    /// Decommissioning: kill switch, erasure, revocation, enforcement points, purges,
    /// certificates, emergencies and security alerts (C3.6.2–C3.6.4).
    Decommission,
    decommission
);
handle!(
    /// The audit trail: reading, exporting, verifying, checkpoints, refusals (C3.4).
    Audit,
    audit
);
handle!(
    /// API tokens and readiness.
    Admin,
    admin
);
