//! Row ids. Each kind of row has its own type, so a consumer's id cannot be passed where
//! a version's is expected; they are database ids, stable for the life of a row, used
//! for joins and links and never parsed from anything but a trusted row or an API
//! argument that is looked up before use.

use serde::{Deserialize, Serialize};

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }
    };
}

row_id!(
    /// A model.
    ModelId
);
row_id!(
    /// A version of a model.
    VersionId
);
row_id!(
    /// A consumer in the inventory.
    ConsumerId
);
row_id!(
    /// An edge of the inventory (consumer to version, or consumer to consumer).
    EdgeId
);
row_id!(
    /// A retirement.
    RetirementId
);
row_id!(
    /// A grant of a role on models.
    GrantId
);
