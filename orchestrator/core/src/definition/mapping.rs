//! Input mappings: how a step builds its command's fields from the saga input and earlier
//! steps' outputs, with minijinja expressions.
//!
//! A value that is exactly one `{{ expression }}` keeps the expression's type (an integer
//! stays an integer); a string with text around expressions renders to a string; any other
//! TOML value is taken as it is.
//!
//! ```toml
//! [step.input]
//! customer_id = "{{ input.customer_id }}"
//! amount = "{{ input.amount }}"                      # an integer
//! order_id = "{{ steps.create_order.output.order_id }}"
//! note = "order for {{ input.customer_id }}"         # a string
//! priority = 1                                       # a literal
//! ```

use minijinja::Environment;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// One mapped field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MappingValue {
    /// A TOML value taken as it is.
    Literal(serde_json::Value),
    /// `{{ expr }}`: the value of the expression, with its type.
    Expression(String),
    /// Text with `{{ … }}` inside: always a string.
    Template(String),
}

/// The fields of a command, each mapped.
pub type Mapping = BTreeMap<String, MappingValue>;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A mapping that names something absent is an error, not an empty string.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env
    })
}

impl MappingValue {
    /// Classifies a TOML value, checking that expressions parse.
    pub fn parse(value: &toml::Value) -> Result<Self, String> {
        let toml::Value::String(s) = value else {
            return serde_json::to_value(value)
                .map(MappingValue::Literal)
                .map_err(|e| e.to_string());
        };
        let trimmed = s.trim();
        let single = trimmed
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .filter(|inner| !inner.contains("{{") && !inner.contains("}}"));
        let parsed = if let Some(expr) = single {
            MappingValue::Expression(expr.trim().to_string())
        } else if s.contains("{{") || s.contains("{%") {
            MappingValue::Template(s.clone())
        } else {
            MappingValue::Literal(serde_json::Value::String(s.clone()))
        };
        parsed.references()?;
        Ok(parsed)
    }

    /// Dotted names the value reads, e.g. `input.amount`, `steps.create_order.output.order_id`.
    pub fn references(&self) -> Result<BTreeSet<String>, String> {
        let vars = match self {
            MappingValue::Literal(_) => return Ok(BTreeSet::new()),
            MappingValue::Expression(e) => env()
                .compile_expression(e)
                .map_err(|err| format!("`{{{{ {e} }}}}` is not a valid expression: {err}"))?
                .undeclared_variables(true),
            MappingValue::Template(t) => env()
                .template_from_str(t)
                .map_err(|err| format!("`{t}` is not a valid template: {err}"))?
                .undeclared_variables(true),
        };
        Ok(vars.into_iter().collect())
    }

    /// The single dotted name an expression is, if it is just that (`input.amount`).
    pub fn path(&self) -> Option<&str> {
        match self {
            MappingValue::Expression(e)
                if e.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.') =>
            {
                Some(e)
            }
            _ => None,
        }
    }

    /// Evaluates against `context` (`{"input": …, "steps": {name: {"output": …}}}`).
    pub fn eval(&self, context: &serde_json::Value) -> Result<serde_json::Value, String> {
        let ctx = minijinja::Value::from(minijinja::value::Serde(context));
        let value = match self {
            MappingValue::Literal(v) => return Ok(v.clone()),
            MappingValue::Expression(e) => env()
                .compile_expression(e)
                .and_then(|x| x.eval(ctx))
                .map_err(|err| format!("`{{{{ {e} }}}}`: {err}"))
                .and_then(|v| {
                    if v.is_undefined() {
                        Err(format!(
                            "`{{{{ {e} }}}}` names nothing (no such field or output)"
                        ))
                    } else {
                        Ok(v)
                    }
                })?,
            MappingValue::Template(t) => env()
                .render_str(t, ctx)
                .map(minijinja::Value::from)
                .map_err(|err| format!("`{t}`: {err}"))?,
        };
        serde_json::to_value(&value).map_err(|e| e.to_string())
    }
}

/// Evaluates every field of `mapping`.
pub fn eval(mapping: &Mapping, context: &serde_json::Value) -> Result<serde_json::Value, String> {
    let mut out = serde_json::Map::new();
    for (field, value) in mapping {
        out.insert(
            field.clone(),
            value
                .eval(context)
                .map_err(|e| format!("field `{field}`: {e}"))?,
        );
    }
    Ok(serde_json::Value::Object(out))
}

/// Evaluates the fields of `mapping` that can be evaluated, leaving out the others (what a
/// compensation of a step with an unknown outcome can know).
pub fn eval_available(mapping: &Mapping, context: &serde_json::Value) -> serde_json::Value {
    let out: serde_json::Map<String, serde_json::Value> = mapping
        .iter()
        .filter_map(|(field, value)| Some((field.clone(), value.eval(context).ok()?)))
        .collect();
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> MappingValue {
        MappingValue::parse(&toml::Value::String(s.into())).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn expressions_keep_their_type_and_templates_render_strings() {
        let ctx =
            json!({"input": {"amount": 5, "c": "x"}, "steps": {"s": {"output": {"id": "o-1"}}}});
        assert_eq!(parse("{{ input.amount }}").eval(&ctx), Ok(json!(5)));
        assert_eq!(
            parse("{{ steps.s.output.id }}").eval(&ctx),
            Ok(json!("o-1"))
        );
        assert_eq!(parse("for {{ input.c }}").eval(&ctx), Ok(json!("for x")));
        assert_eq!(parse("{{ input.amount * 2 }}").eval(&ctx), Ok(json!(10)));
        assert!(parse("{{ input.missing }}").eval(&ctx).is_err());
    }

    #[test]
    fn references_name_what_a_mapping_reads() {
        let refs = parse("{{ steps.create_order.output.order_id }}").references();
        assert_eq!(
            refs,
            Ok(["steps.create_order.output.order_id".to_string()].into())
        );
        assert_eq!(parse("{{ input.amount }}").path(), Some("input.amount"));
        assert!(MappingValue::parse(&toml::Value::String("{{ input. }}".into())).is_err());
    }
}
