//! The domain's row ids as query values, so a filter reads `Column::ConsumerId.eq(id)`.

use crate::domain::{ConsumerId, EdgeId, ModelId, RetirementId, VersionId};

macro_rules! as_value {
    ($($id:ty),*) => {$(
        impl From<$id> for sea_orm::Value {
            fn from(id: $id) -> Self {
                sea_orm::Value::BigInt(Some(id.0))
            }
        }
    )*};
}

as_value!(ConsumerId, EdgeId, ModelId, RetirementId, VersionId);
