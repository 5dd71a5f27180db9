//! Test-only failure injection at the boundaries of decommission steps.
//!
//! With the `failpoints` feature (on for the integration tests and the binary they
//! start, never in a plain build), a named point can be armed per [`Services`] to fail
//! as a crash would: `error` stops the run there with an error, leaving everything the
//! steps before it committed; `abort` ends the process on the spot. The binary arms
//! points from `SUNSET_TEST_FAILPOINTS` (`name=abort,other=error`). Without the feature
//! [`Failpoints::hit`] is an empty inline function.
//!
//! [`Services`]: crate::service::Services

/// What an armed point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// Return an error from the step, as if the process had died there.
    Error,
    /// End the process at once (`std::process::abort`), with no clean-up.
    Abort,
    /// Panic where it fires: a background task dies as a bug would kill it.
    Panic,
}

/// The armed points of one service instance.
#[derive(Clone, Default)]
pub struct Failpoints {
    #[cfg(feature = "failpoints")]
    armed: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, FailAction>>>,
}

/// The error an armed `error` point returns.
#[derive(Debug, thiserror::Error)]
#[error("failpoint {0} fired")]
pub struct Fired(pub String);

impl Failpoints {
    /// Points armed by `SUNSET_TEST_FAILPOINTS`, when the feature is on.
    pub fn from_env() -> Self {
        let points = Self::default();
        #[cfg(feature = "failpoints")]
        if let Ok(spec) = std::env::var("SUNSET_TEST_FAILPOINTS") {
            for item in spec.split(',').filter(|s| !s.is_empty()) {
                let (name, action) = item.split_once('=').unwrap_or((item, "error"));
                let action = if action == "abort" {
                    FailAction::Abort
                } else {
                    FailAction::Error
                };
                points.arm(name, action);
            }
        }
        points
    }

    #[cfg(feature = "failpoints")]
    pub fn arm(&self, name: &str, action: FailAction) {
        self.lock().insert(name.to_owned(), action);
    }

    #[cfg(feature = "failpoints")]
    pub fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(feature = "failpoints")]
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, FailAction>> {
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fires point `name` if it is armed.
    #[inline]
    pub fn hit(&self, name: &str) -> Result<(), Fired> {
        #[cfg(feature = "failpoints")]
        {
            let action = self.lock().get(name).copied();
            match action {
                Some(FailAction::Abort) => {
                    eprintln!("failpoint {name}: aborting");
                    std::process::abort();
                }
                Some(FailAction::Error) => return Err(Fired(name.to_owned())),
                Some(FailAction::Panic) => panic!("failpoint {name}: panicking"),
                None => {}
            }
        }
        let _ = name;
        Ok(())
    }
}
