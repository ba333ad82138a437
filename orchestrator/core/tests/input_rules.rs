//! Input rules in a definition: a start whose input breaks one is refused, naming the field,
//! the rule and the value; a definition's rules that no value could keep are refused at their
//! place (see `corpus/bad_input_rules.toml`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_core::Definition;
use serde_json::json;

const RULED: &str = r#"
[saga]
name = "ruled"
version = 1

[input]
customer_id = { type = "string", pattern = "^c-[0-9]+$", max_length = 12 }
amount = { type = "integer", minimum = 1, maximum = 1_000_000 }
currency = { type = "string", enum = ["EUR", "USD"], required = false, default = "EUR" }
items = { type = "array", min_length = 1, required = false, default = [0] }

[[step]]
name = "reserve_credit"
participant = "account"
command = "ReserveCredit"
compensation = "ReleaseCredit"
"#;

#[test]
fn an_input_that_breaks_a_rule_is_refused_naming_the_field_the_rule_and_the_value() {
    let def = Definition::from_toml("ruled.toml", RULED).unwrap();
    let ok = def
        .check_input(&json!({"customer_id": "c-1", "amount": 500}))
        .unwrap();
    assert_eq!(
        ok,
        json!({"customer_id": "c-1", "amount": 500, "currency": "EUR", "items": [0]})
    );
    let refusals: Vec<String> = [
        json!({"customer_id": "c-1", "amount": -100}),
        json!({"customer_id": "c-1", "amount": 1_000_001}),
        json!({"customer_id": "alice", "amount": 5}),
        json!({"customer_id": "c-1234567890123", "amount": 5}),
        json!({"customer_id": "c-1", "amount": 5, "currency": "GBP"}),
        json!({"customer_id": "c-1", "amount": 5, "items": []}),
    ]
    .iter()
    .map(|input| def.check_input(input).unwrap_err())
    .collect();
    insta::assert_snapshot!(refusals.join("\n"));
}

#[test]
fn a_field_without_rules_is_stored_as_before_rules_existed() {
    // The hash of a stored version is of its canonical form: a field without rules must
    // serialize exactly as builds before rules wrote it, or every stored version would read
    // as changed.
    let src = include_str!("../../../sagas/place_order.toml");
    let def = Definition::from_toml("place_order.toml", src).unwrap();
    assert_eq!(
        serde_json::to_value(&def.input).unwrap(),
        json!({
            "amount": {"type": "integer", "required": true},
            "customer_id": {"type": "string", "required": true},
        })
    );
    let ruled = Definition::from_toml("ruled.toml", RULED).unwrap();
    assert_eq!(
        serde_json::to_value(&ruled.input["amount"]).unwrap(),
        json!({"type": "integer", "required": true, "minimum": 1, "maximum": 1_000_000})
    );
}
