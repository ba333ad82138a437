//! The row codec of the event store's SQL tables: the one list of the `sagas` columns, and
//! the decoding of a `sagas` row ([`decode_record`]) and of a `saga_events` row
//! ([`decode_event`]). A row that does not decode is [`Error::Corrupt`].

use super::{Error, Result, SagaRecord, StoredEvent};
use saga_protocol::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

/// Every column of `sagas`, in the order [`decode_record`] reads them.
macro_rules! saga_columns {
    () => {
        "saga_id, name, definition_version, status, version, idempotency_key, input_digest, \
         created_at, updated_at, deadline_at"
    };
}

/// Every column of `saga_events`, in the order [`decode_event`] reads them.
macro_rules! event_columns {
    () => {
        "saga_id, sequence, global_position, position, event_type, schema_version, payload, \
         occurred_at, recorded_at"
    };
}

/// `SELECT <every sagas column> FROM sagas <rest>`.
macro_rules! select_sagas {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            $crate::store::rows::saga_columns!(),
            " FROM sagas ",
            $rest
        )
    };
}

pub(crate) use {event_columns, saga_columns, select_sagas};

/// Every column of `sagas`, each qualified by `table` (`s.saga_id, s.name, …`), for a query
/// that joins other tables.
pub(super) fn saga_columns_of(table: &str) -> String {
    saga_columns!()
        .split(',')
        .map(|column| format!("{table}.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The read model's version of `saga_id`, read through `conn` (the pool or a transaction).
pub(super) async fn current_version<'c, E>(conn: E, saga_id: Uuid) -> Result<Option<u64>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let version: Option<i64> = sqlx::query_scalar("SELECT version FROM sagas WHERE saga_id = $1")
        .bind(saga_id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(Error::Database)?;
    version.map(|v| to_u64(v, "version")).transpose()
}

pub(super) fn sql_int(saga_id: Uuid, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::Corrupt(format!(
            "saga {saga_id}: version {value} does not fit a BIGINT"
        ))
    })
}

pub(super) fn decode_record(row: &AnyRow) -> Result<SagaRecord> {
    Ok(SagaRecord {
        saga_id: parse_uuid(&get::<String>(row, "saga_id")?)?,
        name: get(row, "name")?,
        definition_version: to_u32(get(row, "definition_version")?, "definition_version")?,
        status: get(row, "status")?,
        version: to_u64(get(row, "version")?, "version")?,
        idempotency_key: get(row, "idempotency_key")?,
        input_digest: get(row, "input_digest")?,
        created_at: Timestamp(get(row, "created_at")?),
        updated_at: Timestamp(get(row, "updated_at")?),
        deadline_at: get::<Option<i64>>(row, "deadline_at")?.map(Timestamp),
    })
}

pub(super) fn decode_event(row: &AnyRow) -> Result<StoredEvent> {
    let payload: String = get(row, "payload")?;
    Ok(StoredEvent {
        saga_id: parse_uuid(&get::<String>(row, "saga_id")?)?,
        sequence: to_u64(get(row, "sequence")?, "sequence")?,
        global_position: get(row, "global_position")?,
        position: match get::<Option<i64>>(row, "position")? {
            Some(position) => to_u64(position, "position")?,
            None => return Err(Error::Corrupt("an event without a feed position".into())),
        },
        event_type: get(row, "event_type")?,
        schema_version: to_u32(get(row, "schema_version")?, "schema_version")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| Error::Corrupt(format!("event payload is not JSON: {e}")))?,
        occurred_at: Timestamp(get(row, "occurred_at")?),
        recorded_at: Timestamp(get(row, "recorded_at")?),
    })
}

/// A column that must decode; a failure means the row does not match the schema.
pub(super) fn get<T>(row: &AnyRow, column: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column)
        .map_err(|e| Error::Corrupt(format!("column `{column}`: {e}")))
}

pub(super) fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| Error::Corrupt(format!("saga id `{text}`: {e}")))
}

pub(super) fn to_u64(value: i64, column: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("negative {column}: {value}")))
}

pub(super) fn to_u32(value: i64, column: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Corrupt(format!("{column} out of range: {value}")))
}
