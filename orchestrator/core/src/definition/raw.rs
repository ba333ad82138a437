//! The TOML shape of a definition, field for field, with spans for diagnostics.

use super::StepKind;
use super::types::RawField;
use crate::policy::RawRetry;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefinition {
    pub saga: RawSaga,
    #[serde(default)]
    pub input: BTreeMap<String, Spanned<RawField>>,
    #[serde(default)]
    pub step: Vec<RawStep>,
    pub compensation_retry: Option<Spanned<RawRetry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSaga {
    pub name: Spanned<String>,
    pub version: u32,
    #[serde(default)]
    pub description: String,
    pub deadline: Option<Spanned<String>>,
}

pub(super) type RawMapping = Spanned<BTreeMap<String, Spanned<toml::Value>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: Spanned<String>,
    pub participant: Option<Spanned<String>>,
    pub command: Option<Spanned<String>>,
    /// An await step: the name of the signal it waits for, instead of a participant's command.
    #[serde(rename = "await")]
    pub awaits: Option<Spanned<String>>,
    /// The fields of the awaited signal's payload, as `[input]` declares the saga's.
    pub signal: Option<BTreeMap<String, Spanned<RawField>>>,
    pub compensation: Option<Spanned<String>>,
    pub kind: Option<Spanned<StepKind>>,
    pub group: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub input: Option<RawMapping>,
    pub compensation_input: Option<RawMapping>,
}
