//! Field types, shared by saga inputs and the participants catalogue.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The type of an input or command field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Integer,
    Boolean,
    /// A string holding a UUID.
    Uuid,
    /// A string holding a decimal number, e.g. "12.50" (no binary floating point for money).
    Decimal,
    Object,
    Array,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Boolean => "boolean",
            FieldType::Uuid => "uuid",
            FieldType::Decimal => "decimal",
            FieldType::Object => "object",
            FieldType::Array => "array",
        })
    }
}

impl FieldType {
    /// Whether `value` is of this type.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        match self {
            FieldType::String => value.is_string(),
            FieldType::Integer => value.is_i64(),
            FieldType::Boolean => value.is_boolean(),
            FieldType::Uuid => value
                .as_str()
                .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
            FieldType::Decimal => value.as_str().is_some_and(is_decimal),
            FieldType::Object => value.is_object(),
            FieldType::Array => value.is_array(),
        }
    }

    /// Whether a value of type `self` may be given where `wanted` is expected: the same type,
    /// or a string-shaped type where a plain string is wanted.
    pub fn fits(self, wanted: FieldType) -> bool {
        self == wanted
            || (wanted == FieldType::String && matches!(self, FieldType::Uuid | FieldType::Decimal))
    }
}

/// `-12`, `3.50`: optional sign, digits, optional fraction.
fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
}

/// A field: its type, whether it must be given, and the value used when it is not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

/// The TOML shape of a field: `amount = "integer"` or
/// `note = { type = "string", required = false, default = "" }`. Kept as a TOML value so
/// that a wrong type name gets a message that says what the types are.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct RawField(toml::Value);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFieldFull {
    #[serde(rename = "type")]
    ty: String,
    required: Option<bool>,
    default: Option<toml::Value>,
}

const TYPES: [&str; 7] = [
    "string", "integer", "boolean", "uuid", "decimal", "object", "array",
];

fn field_type(name: &str) -> Result<FieldType, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        let hint = super::source::closest(name, TYPES)
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
        format!(
            "unknown type `{name}`: {hint}the types are {}",
            TYPES.join(", ")
        )
    })
}

impl RawField {
    /// The field, or what is wrong with it.
    pub fn resolve(self) -> Result<Field, String> {
        let full = match self.0 {
            toml::Value::String(ty) => {
                return Ok(Field {
                    ty: field_type(&ty)?,
                    required: true,
                    default: None,
                });
            }
            other @ toml::Value::Table(_) => {
                RawFieldFull::deserialize(other).map_err(|e| e.to_string())?
            }
            other => {
                return Err(format!(
                    "a field is a type name (\"integer\") or a table ({{ type = \"integer\", required = false }}), not {}",
                    other.type_str()
                ));
            }
        };
        let ty = field_type(&full.ty)?;
        let default = match full.default {
            None => None,
            Some(v) => {
                let json = serde_json::to_value(&v).map_err(|e| e.to_string())?;
                if !ty.accepts(&json) {
                    return Err(format!("the default {json} is not a {ty}"));
                }
                Some(json)
            }
        };
        // A field with a default is optional; one without is required unless told.
        let required = full.required.unwrap_or(default.is_none());
        if required && default.is_some() {
            return Err("a required field cannot have a default".into());
        }
        Ok(Field {
            ty,
            required,
            default,
        })
    }
}
