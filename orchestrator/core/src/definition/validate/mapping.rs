//! Checking input mappings: what each reads (input fields, earlier outputs) and what it gives
//! the command (the catalogue's fields and types).

use super::Checker;
use crate::definition::mapping::{Mapping, MappingValue};
use crate::definition::raw::RawMapping;
use crate::definition::source::closest;
use crate::definition::types::{Field, FieldType};
use crate::definition::{CommandSpec, Step};
use std::collections::BTreeMap;

impl Checker<'_, '_> {
    /// Parses a mapping and checks what it reads and what it gives the command.
    pub(super) fn mapping(
        &mut self,
        raw: RawMapping,
        step: &str,
        group: Option<&str>,
        earlier: &[Step],
        spec: Option<&CommandSpec>,
        compensation: bool,
    ) -> Mapping {
        let table_span = raw.span();
        let mut out = Mapping::new();
        let mut given: Vec<String> = Vec::new();
        for (field, value) in raw.into_inner() {
            let span = value.span();
            given.push(field.clone());
            let parsed = match MappingValue::parse(value.get_ref()) {
                Ok(p) => p,
                Err(m) => {
                    self.err(span, m);
                    continue;
                }
            };
            let mut refs_ok = true;
            for reference in parsed.references().unwrap_or_default() {
                if let Err((m, hint)) =
                    self.reference(&reference, step, group, earlier, compensation)
                {
                    self.err(span.clone(), m).hint = hint;
                    refs_ok = false;
                }
            }
            if let Some(spec) = spec {
                match spec.input.get(&field) {
                    None => {
                        let e =
                            self.err(span.clone(), format!("the command has no field `{field}`"));
                        e.hint = closest(&field, spec.input.keys().map(String::as_str))
                            .map(|c| format!("did you mean `{c}`?"));
                    }
                    Some(expected) if refs_ok => {
                        if let Some(found) = self.type_of(&parsed, earlier)
                            && !found.fits(expected.ty)
                        {
                            self.err(
                                span.clone(),
                                format!(
                                    "field `{field}` must be {}, but this mapping gives {found}",
                                    expected.ty
                                ),
                            );
                        }
                    }
                    Some(_) => {}
                }
            }
            out.insert(field, parsed);
        }
        if let Some(spec) = spec {
            for (field, f) in &spec.input {
                if f.required && !given.contains(field) {
                    self.err(
                        table_span.clone(),
                        format!(
                            "step `{step}` does not set `{field}` ({}), which the command requires",
                            f.ty
                        ),
                    )
                    .hint = Some(format!("add {field} = \"{{{{ … }}}}\" to the mapping"));
                }
            }
        }
        out
    }

    /// Checks one dotted name a mapping reads; the error says why it cannot be read.
    pub(super) fn reference(
        &self,
        reference: &str,
        step: &str,
        group: Option<&str>,
        earlier: &[Step],
        compensation: bool,
    ) -> Result<(), (String, Option<String>)> {
        let parts: Vec<&str> = reference.split('.').collect();
        match parts.as_slice() {
            ["input"] => Ok(()),
            ["input", field, ..] => {
                if self.declared.iter().any(|d| d == field) {
                    Ok(())
                } else {
                    let hint = closest(field, self.declared.iter().map(String::as_str))
                        .map(|c| format!("did you mean `input.{c}`?"));
                    Err((format!("unknown input field `{field}`"), hint))
                }
            }
            ["steps", other, rest @ ..] => {
                let is_self = *other == step;
                let found = earlier.iter().find(|e| e.name == *other);
                let same_group =
                    found.is_some_and(|e| group.is_some() && e.group.as_deref() == group);
                if is_self && !compensation {
                    return Err((
                        format!("step `{step}` cannot read its own output before it runs"),
                        None,
                    ));
                }
                if !is_self && found.is_none() {
                    return Err((
                        format!("`{other}` is not a step before `{step}`"),
                        Some("a mapping can read the outputs of earlier steps only".into()),
                    ));
                }
                if same_group && !compensation {
                    return Err((
                        format!(
                            "`{other}` runs in parallel with `{step}` (group `{}`), so its output is not there yet",
                            group.unwrap_or_default()
                        ),
                        None,
                    ));
                }
                match rest {
                    [] | ["output"] => Ok(()),
                    ["output", field, ..] => {
                        let Some(output) = self.output_of(if is_self { None } else { found })
                        else {
                            return Ok(());
                        };
                        if output.contains_key(*field) {
                            Ok(())
                        } else {
                            let hint = closest(field, output.keys().map(String::as_str))
                                .map(|c| format!("did you mean `{c}`?"));
                            Err((format!("step `{other}` has no output `{field}`"), hint))
                        }
                    }
                    _ => Err((
                        format!(
                            "`{reference}`: read a step's output as steps.<step>.output.<field>"
                        ),
                        None,
                    )),
                }
            }
            [root, ..] => Err((
                format!("unknown name `{root}`"),
                Some("a mapping reads input.<field> or steps.<step>.output.<field>".into()),
            )),
            [] => Ok(()),
        }
    }

    /// The output fields of `found` (none known for the step being checked, `None`): an
    /// await step's signal fields, or its command's outputs in the catalogue.
    pub(super) fn output_of<'s>(
        &'s self,
        found: Option<&'s Step>,
    ) -> Option<&'s BTreeMap<String, Field>> {
        let step = found?;
        if let Some(signal) = &step.signal {
            return Some(&signal.fields);
        }
        self.catalogue?
            .command(&step.participant, &step.command)
            .map(|c| &c.output)
    }

    /// The type a mapping gives, when it can be known before running it.
    pub(super) fn type_of(&self, value: &MappingValue, earlier: &[Step]) -> Option<FieldType> {
        match value {
            MappingValue::Template(_) => Some(FieldType::String),
            MappingValue::Literal(v) => match v {
                serde_json::Value::String(_) => Some(FieldType::String),
                serde_json::Value::Number(n) if n.is_i64() => Some(FieldType::Integer),
                serde_json::Value::Bool(_) => Some(FieldType::Boolean),
                serde_json::Value::Array(_) => Some(FieldType::Array),
                serde_json::Value::Object(_) => Some(FieldType::Object),
                _ => None,
            },
            MappingValue::Expression(_) => {
                let path = value.path()?;
                let parts: Vec<&str> = path.split('.').collect();
                match parts.as_slice() {
                    ["input", field] => self.input.get(*field).map(|f| f.ty),
                    ["steps", step, "output", field] => {
                        let s = earlier.iter().find(|e| e.name == *step)?;
                        self.output_of(Some(s))?.get(*field).map(|f| f.ty)
                    }
                    _ => None,
                }
            }
        }
    }

    /// Without a mapping the command gets the saga input merged with earlier outputs:
    /// reports each required field that none of them provides.
    pub(super) fn available(
        &mut self,
        spec: &CommandSpec,
        command: &str,
        step: &str,
        span: std::ops::Range<usize>,
        earlier: &[Step],
        own: Option<&CommandSpec>,
    ) {
        let mut names: Vec<&str> = self.input.keys().map(String::as_str).collect();
        let outputs: Vec<String> = earlier
            .iter()
            .filter_map(|e| self.output_of(Some(e)))
            .chain(own.map(|s| &s.output))
            .flat_map(|o| o.keys().cloned())
            .collect();
        names.extend(outputs.iter().map(String::as_str));
        let missing: Vec<String> = spec
            .input
            .iter()
            .filter(|(f, field)| field.required && !names.contains(&f.as_str()))
            .map(|(f, field)| format!("`{f}` ({})", field.ty))
            .collect();
        if !missing.is_empty() {
            self.err(span, format!("step `{step}`: `{command}` needs {}, which neither the saga input nor an earlier step provides", missing.join(", "))).hint =
                Some("map it in [step.input]".into());
        }
    }
}
