//! What an instance keeps for retirements between calls: the notice policy, the
//! channels notices go out on, and the events subscriptions hear.

use super::RetirementEvent;

/// What this instance keeps for retirements between calls.
pub(in crate::service) struct State {
    pub(in crate::service) notice_policy: crate::domain::NoticePolicy,
    pub(in crate::service) notifications: crate::config::NotificationSettings,
    /// Where dependents reach this service (acknowledgement links).
    pub(in crate::service) public_url: String,
    /// Built on first delivery; an error when the configuration cannot make them.
    pub(in crate::service) channels:
        std::sync::OnceLock<Result<crate::service::delivery::Channels, String>>,
    /// Wakes the delivery worker after a commit that wrote notices.
    pub(in crate::service) delivery_wake: tokio::sync::Notify,
    /// Committed retirement changes made through this instance, for subscriptions.
    pub(in crate::service) events: tokio::sync::broadcast::Sender<RetirementEvent>,
    /// The last announced change (of any instance) this instance has passed on, or
    /// `NOT_FOLLOWING` before the first read: set when the instance is built, so a change
    /// committed while its follower is still starting is not taken as already seen.
    pub(in crate::service) followed_to: std::sync::atomic::AtomicI64,
}

/// [`State::followed_to`] before anything was read.
pub(in crate::service) const NOT_FOLLOWING: i64 = -1;

impl State {
    /// From `settings`, whose retirement policy must have been checked: an unusable one
    /// falls back to the defaults.
    pub(in crate::service) fn new(settings: &crate::config::Settings) -> Self {
        let notice_policy = settings.retirement.policy().unwrap_or_else(|e| {
            tracing::error!(error = %e, "retirement policy unusable; using the defaults");
            crate::config::RetirementSettings::default()
                .policy()
                .unwrap_or_else(|_| unreachable!("the default policy parses"))
        });
        let public_url = settings
            .notifications
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.listen));
        Self {
            notice_policy,
            notifications: settings.notifications.clone(),
            public_url,
            channels: std::sync::OnceLock::new(),
            delivery_wake: tokio::sync::Notify::new(),
            events: tokio::sync::broadcast::channel(256).0,
            followed_to: std::sync::atomic::AtomicI64::new(NOT_FOLLOWING),
        }
    }
}
