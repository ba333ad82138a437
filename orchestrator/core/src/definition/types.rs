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

/// A field: its type, whether it must be given, the value used when it is not, and the rules
/// a given value must keep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Absent rules are not serialized, so a definition without any hashes as before rules
    /// existed.
    #[serde(flatten)]
    pub rules: Rules,
}

/// What a value of a field must be besides its type: an integer's bounds, a string's or an
/// array's length, a string's pattern, a set of allowed values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// The values allowed (TOML key `enum`).
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
}

/// A regular expression a string must match somewhere (anchor it with `^…$` to match the
/// whole string), kept with its source.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Field {
    /// The field as a JSON Schema (2020-12, as OpenAPI 3.1 uses it): its type, its default and
    /// its rules, so a client generated from it knows what a start accepts.
    pub fn json_schema(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let mut schema = match self.ty {
            FieldType::String => json!({"type": "string"}),
            FieldType::Integer => json!({"type": "integer", "format": "int64"}),
            FieldType::Boolean => json!({"type": "boolean"}),
            FieldType::Uuid => json!({"type": "string", "format": "uuid"}),
            FieldType::Decimal => json!({
                "type": "string",
                "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
                "description": "a decimal number as a string, e.g. \"12.50\""
            }),
            FieldType::Object => json!({"type": "object"}),
            FieldType::Array => json!({"type": "array"}),
        };
        let Value::Object(obj) = &mut schema else {
            return schema;
        };
        let r = &self.rules;
        let (min_len, max_len) = if self.ty == FieldType::Array {
            ("minItems", "maxItems")
        } else {
            ("minLength", "maxLength")
        };
        let rules = [
            ("minimum", r.minimum.map(Value::from)),
            ("maximum", r.maximum.map(Value::from)),
            (min_len, r.min_length.map(Value::from)),
            (max_len, r.max_length.map(Value::from)),
            (
                "pattern",
                r.pattern.as_ref().map(|p| Value::from(p.as_str())),
            ),
            ("enum", r.one_of.clone().map(Value::from)),
            ("default", self.default.clone()),
        ];
        for (key, value) in rules {
            if let Some(value) = value {
                obj.insert(key.into(), value);
            }
        }
        schema
    }

    /// Whether `value` is of the field's type and keeps its rules; the error says which rule
    /// it breaks, with the value, for a message naming the field.
    pub fn check(&self, value: &serde_json::Value) -> Result<(), String> {
        if !self.ty.accepts(value) {
            return Err(format!("must be {}, got {value}", self.ty));
        }
        self.rules.check(value)
    }
}

impl Rules {
    fn check(&self, value: &serde_json::Value) -> Result<(), String> {
        if let Some(n) = value.as_i64() {
            if let Some(min) = self.minimum.filter(|min| n < *min) {
                return Err(format!("must be at least {min}, got {n}"));
            }
            if let Some(max) = self.maximum.filter(|max| n > *max) {
                return Err(format!("must be at most {max}, got {n}"));
            }
        }
        let length = match value {
            serde_json::Value::String(s) => Some(s.chars().count()),
            serde_json::Value::Array(items) => Some(items.len()),
            _ => None,
        };
        if let Some(len) = length {
            let unit = if value.is_array() {
                "items"
            } else {
                "characters"
            };
            if let Some(min) = self.min_length.filter(|min| len < *min) {
                return Err(format!("must have at least {min} {unit}, got {len}"));
            }
            if let Some(max) = self.max_length.filter(|max| len > *max) {
                return Err(format!("must have at most {max} {unit}, got {len}"));
            }
        }
        if let (Some(pattern), Some(s)) = (&self.pattern, value.as_str())
            && !pattern.0.is_match(s)
        {
            return Err(format!(
                "must match the pattern {:?}, got {value}",
                pattern.as_str()
            ));
        }
        if let Some(allowed) = self.one_of.as_ref().filter(|a| !a.contains(value)) {
            let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            return Err(format!("must be one of {}, got {value}", list.join(", ")));
        }
        Ok(())
    }
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
    minimum: Option<i64>,
    maximum: Option<i64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    one_of: Option<Vec<toml::Value>>,
}

impl RawFieldFull {
    /// The rules, each checked against the field's type and against the others.
    fn rules(&self, ty: FieldType) -> Result<Rules, String> {
        let only = |rule: &str, types: &[FieldType], given: bool| -> Result<(), String> {
            if given && !types.contains(&ty) {
                let names: Vec<String> = types.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "`{rule}` applies to a field of type {}, not {ty}",
                    names.join(" or ")
                ));
            }
            Ok(())
        };
        use FieldType::{Array, Decimal, Integer, String as Text, Uuid};
        only("minimum", &[Integer], self.minimum.is_some())?;
        only("maximum", &[Integer], self.maximum.is_some())?;
        only("min_length", &[Text, Array], self.min_length.is_some())?;
        only("max_length", &[Text, Array], self.max_length.is_some())?;
        only("pattern", &[Text], self.pattern.is_some())?;
        only(
            "enum",
            &[Text, Integer, Decimal, Uuid],
            self.one_of.is_some(),
        )?;
        if let (Some(min), Some(max)) = (self.minimum, self.maximum)
            && min > max
        {
            return Err(format!(
                "`minimum` {min} is above `maximum` {max}: no value fits"
            ));
        }
        if let (Some(min), Some(max)) = (self.min_length, self.max_length)
            && min > max
        {
            return Err(format!(
                "`min_length` {min} is above `max_length` {max}: no value fits"
            ));
        }
        let pattern = match &self.pattern {
            None => None,
            Some(p) => {
                Some(Pattern(regex::Regex::new(p).map_err(|e| {
                    format!("`pattern` is not a regular expression: {e}")
                })?))
            }
        };
        let one_of = match &self.one_of {
            None => None,
            Some(values) if values.is_empty() => {
                return Err("`enum` lists no value: no value fits".into());
            }
            Some(values) => {
                let mut allowed = Vec::with_capacity(values.len());
                for v in values {
                    let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
                    if !ty.accepts(&json) {
                        return Err(format!("`enum` value {json} is not a {ty}"));
                    }
                    allowed.push(json);
                }
                Some(allowed)
            }
        };
        Ok(Rules {
            minimum: self.minimum,
            maximum: self.maximum,
            min_length: self.min_length,
            max_length: self.max_length,
            pattern,
            one_of,
        })
    }
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
                    rules: Rules::default(),
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
        let rules = full.rules(ty)?;
        let default = match &full.default {
            None => None,
            Some(v) => {
                let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
                if !ty.accepts(&json) {
                    return Err(format!("the default {json} is not a {ty}"));
                }
                rules
                    .check(&json)
                    .map_err(|e| format!("the default {json} breaks the field's rules: it {e}"))?;
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
            rules,
        })
    }
}
