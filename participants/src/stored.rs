//! A participant's stored event: one JSON text `{"schema_version": N, "type": …, …fields}`,
//! read through its log's upcasters ([`saga_protocol::upcast`]) and written at the newest
//! version of its type.

use saga_protocol::upcast::{Schema, Stored};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `event` (serialised with its `type` tag) as stored, at the newest version of its type.
pub fn encode<E: Serialize>(schema: &Schema, event_type: &str, event: &E) -> String {
    // Plain data with string keys: serialising cannot fail.
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.insert(
            "schema_version".into(),
            Value::from(schema.version_of(event_type)),
        );
    }
    value.to_string()
}

/// Reads a stored event back as the newest version of its type.
pub fn decode<E: DeserializeOwned>(
    schema: &Schema,
    payload: &str,
    stored: &Stored,
) -> Result<E, String> {
    let value: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let Value::Object(mut fields) = value else {
        return Err(format!("a stored {} event is a JSON object", schema.log));
    };
    let version = fields
        .remove("schema_version")
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("a stored {} event has no schema_version", schema.log))?;
    let Some(Value::String(event_type)) = fields.remove("type") else {
        return Err(format!("a stored {} event has no type", schema.log));
    };
    let mut upcast = schema
        .upcast(&event_type, version, Value::Object(fields), stored)
        .map_err(|e| e.to_string())?;
    if let Some(fields) = upcast.as_object_mut() {
        fields.insert("type".into(), Value::String(event_type));
    }
    serde_json::from_value(upcast).map_err(|e| e.to_string())
}
