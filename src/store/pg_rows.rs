//! Many rows in one PostgreSQL statement whose text never changes: the rows travel as one
//! JSON array parameter, which the statement reads with `jsonb_to_recordset`.
//!
//! Why: sea-query's many-row statements (`VALUES` lists, `IN` lists, `OR` chains) change
//! their text with the row count. Each count is then a prepared statement of its own,
//! parsed and planned apart, rows are cut into power-of-two chunks to keep the counts few
//! (a group of 22 messages cost three statements per table), and a lookup's plan cached
//! while its table was small goes on scanning the table whole as it grows (measured: 5 ms
//! per lookup after 30,000 registrations in a fresh database, most of a group commit).
//! One text per statement is one plan, chosen once, and one round trip for any number of
//! rows. Lookups probe the index row by row (`LATERAL (… OFFSET 0)`), so no plan can turn
//! them into a scan of the table.

use super::StoreError;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, DbBackend, EntityTrait, IdenStatic, Iterable, Statement, Value};
use serde_json::{Map, Value as Json};

/// A PostgreSQL statement with these parameters.
pub(crate) fn statement(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The rows as one JSON array (text, for `CAST($n AS jsonb)`), each an object of the
/// columns the row sets, by column name; a column left unset is absent, which
/// `jsonb_to_recordset` reads as NULL.
pub(crate) fn active_rows<A: ActiveModelTrait>(rows: &[A]) -> Result<Value, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut object = Map::new();
        for column in <A::Entity as EntityTrait>::Column::iter() {
            if let Some(value) = row.get(column).into_value() {
                object.insert(column.as_str().to_owned(), json_of(value)?);
            }
        }
        out.push(Json::Object(object));
    }
    Ok(Value::from(Json::Array(out).to_string()))
}

/// The rows as one JSON array (text, for `CAST($n AS jsonb)`).
pub(crate) fn rows<T: serde::Serialize>(rows: &[T]) -> Result<Value, StoreError> {
    serde_json::to_string(rows)
        .map(Value::from)
        .map_err(|e| StoreError::Corrupt(format!("rows that cannot be sent as JSON: {e}")))
}

/// An instant as PostgreSQL keeps it: to the microsecond, cut (not rounded) as the
/// driver's own binary encoding cuts it, so a row written this way reads back exactly
/// as one bound as a parameter.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn json_of(value: Value) -> Result<Json, StoreError> {
    Ok(match value {
        Value::Bool(v) => v.map_or(Json::Null, Json::from),
        Value::Int(v) => v.map_or(Json::Null, Json::from),
        Value::BigInt(v) => v.map_or(Json::Null, Json::from),
        Value::String(v) => v.map_or(Json::Null, Json::from),
        Value::ChronoDateTimeUtc(v) => v.map_or(Json::Null, |t| Json::from(time(t))),
        other => {
            return Err(StoreError::Corrupt(format!(
                "a column of a type JSON rows do not carry: {other:?}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn instants_are_cut_to_the_microsecond_as_the_driver_cuts_them() {
        let t = Utc.timestamp_opt(1_796_000_000, 123_456_999).unwrap();
        assert_eq!(time(t), "2026-11-30T00:53:20.123456Z");
        let whole = Utc.timestamp_opt(1_796_000_000, 0).unwrap();
        assert_eq!(time(whole), "2026-11-30T00:53:20.000000Z");
    }

    #[test]
    fn a_row_carries_the_columns_it_sets_and_only_those() {
        use crate::store::entities::webhook_receipt;
        use sea_orm::Set;
        let at = Utc.timestamp_opt(1_796_000_000, 5_000).unwrap();
        let row = webhook_receipt::ActiveModel {
            source_id: Set(7),
            message_id: Set("msg \"1\"".into()),
            received_at: Set(at),
        };
        let Value::String(Some(text)) = active_rows(&[row]).unwrap() else {
            panic!("text");
        };
        let parsed: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([{ "source_id": 7, "message_id": "msg \"1\"",
                                 "received_at": "2026-11-30T00:53:20.000005Z" }])
        );
        let unset = crate::store::entities::inventory_change::ActiveModel {
            revision: Set(3),
            ..Default::default()
        };
        let Value::String(Some(text)) = active_rows(&[unset]).unwrap() else {
            panic!("text");
        };
        assert_eq!(text, r#"[{"revision":3}]"#);
    }
}
