//! Values made up for declared fields: a simulated saga's input and signals, a model
//! participant's outputs, the commands `saga conformance` sends.

use crate::definition::{Field, FieldType};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// An object with a value for every required field of `fields` (and for the optional ones
/// when `all`), each taken from `given` when it holds that field with a fitting value (a
/// command's output echoes its input), else made up, the same for the same `key`.
pub fn object(fields: &BTreeMap<String, Field>, given: &Value, key: &str, all: bool) -> Value {
    let mut out = Map::new();
    for (name, field) in fields {
        if !field.required && !all {
            continue;
        }
        let value = given
            .get(name)
            .filter(|v| field.ty.accepts(v) && field.check(v).is_ok())
            .cloned()
            .unwrap_or_else(|| value(field, &format!("{key}.{name}")));
        out.insert(name.clone(), value);
    }
    Value::Object(out)
}

/// A value of `field` that keeps its rules where they can be kept without search: its
/// default, its first allowed value, its bounds, its length.
fn value(field: &Field, key: &str) -> Value {
    if let Some(default) = &field.default {
        return default.clone();
    }
    if let Some(first) = field.rules.one_of.as_ref().and_then(|v| v.first()) {
        return first.clone();
    }
    let rules = &field.rules;
    match field.ty {
        FieldType::Integer => {
            let low = rules.minimum.unwrap_or(1);
            json!(
                rules
                    .maximum
                    .map_or(low.max(1), |high| low.max(1).min(high))
            )
        }
        FieldType::String => {
            let length = rules.min_length.unwrap_or(1).max(1);
            let length = rules.max_length.map_or(length, |max| length.min(max));
            json!("x".repeat(length))
        }
        FieldType::Boolean => json!(true),
        FieldType::Uuid => json!(uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            key.as_bytes()
        )),
        FieldType::Decimal => json!("1.00"),
        FieldType::Object => json!({}),
        FieldType::Array => json!([]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::definition::Catalogue;

    #[test]
    fn outputs_echo_the_input_and_make_up_the_rest_the_same_way_each_time() {
        let catalogue = Catalogue::from_toml(
            "c.toml",
            r#"
            [order.CreateOrder]
            kind = "forward"
            input = { customer_id = "string", amount = "integer" }
            output = { order_id = "uuid", amount = "integer", note = { type = "string", required = false } }
            "#,
        )
        .unwrap();
        let spec = catalogue.command("order", "CreateOrder").unwrap();
        let given = json!({ "customer_id": "c", "amount": 7 });
        let out = object(&spec.output, &given, "s.create", false);
        assert_eq!(out["amount"], 7);
        assert!(FieldType::Uuid.accepts(&out["order_id"]));
        assert!(out.get("note").is_none());
        assert_eq!(out, object(&spec.output, &given, "s.create", false));
        assert_ne!(out, object(&spec.output, &given, "t.create", false));
    }
}
