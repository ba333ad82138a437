//! Model participants, derived from the catalogue: each keeps the rules of a correct
//! participant (an inbox by message id, one effect per effect key, a tombstone for a
//! compensation that comes first, and a refusal of a pivot's command recorded under its
//! effect key, so that every attempt gets it) and records what it did, for the guarantees to
//! be checked against. Other refusals are recorded under the message id only, as the account
//! does: the core must not take them for proof that an earlier attempt did not apply.

use super::tape::Tape;
use super::{Fault, Faults, Guarantee, Violation, sample};
use crate::definition::Catalogue;
use saga_protocol::{CommandEnvelope, CommandKind, MessageId, Outcome, ReplyEnvelope, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Likelihood (per mille) that a participant refuses a command, and a compensation.
const REFUSE: u32 = 100;
const REFUSE_COMPENSATION: u32 = 20;
/// Likelihood that it answers a transient failure instead of handling a command.
const FAIL: u32 = 80;

/// What happened under one effect key (`{saga}.{step}`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Effect {
    pub step: String,
    /// Times the forward effect was applied: more than one is a double effect.
    pub applied: u32,
    /// Times it was undone.
    pub undone: u32,
    /// A compensation came first: the forward command is refused from now on.
    pub tombstone: bool,
    /// The output every attempt of the forward command answers.
    pub output: serde_json::Value,
    /// A pivot's refusal, which every attempt under the key gets.
    pub refused: Option<String>,
}

/// Every model participant at once (they share nothing but the world's clock).
#[derive(Debug, Default)]
pub(crate) struct Participants {
    /// Recorded replies, by message id.
    pub inbox: HashMap<MessageId, ReplyEnvelope>,
    pub effects: BTreeMap<String, Effect>,
    /// The effect keys each step's forward commands came with: one, for a correct core.
    pub keys: BTreeMap<String, BTreeSet<String>>,
    /// Steps whose effect was undone, in the order of the undoing.
    pub undone: Vec<String>,
    /// The steps whose command is a pivot.
    pub pivots: BTreeSet<String>,
}

impl Participants {
    /// Handles `command` at `now`: the reply to send, if any. What is not right about the
    /// command itself (unknown to the catalogue, a payload it refuses) is a violation.
    pub fn handle(
        &mut self,
        catalogue: &Catalogue,
        command: &CommandEnvelope,
        now: Timestamp,
        tape: &mut Tape,
        faults: &Faults,
        violations: &mut Vec<Violation>,
    ) -> (ReplyEnvelope, &'static str) {
        if let Some(recorded) = self.inbox.get(&command.message_id) {
            return (recorded.clone(), "answered from the inbox");
        }
        let Some(spec) = catalogue.command(&command.participant, &command.command) else {
            violations.push(Violation::new(
                Guarantee::Accepted,
                format!(
                    "step `{}` sent {}.{}, which the catalogue does not list",
                    command.step, command.participant, command.command
                ),
            ));
            let outcome = Outcome::Rejected {
                reason: "unknown command".into(),
            };
            return (ReplyEnvelope::answering(command, outcome, now), "refused");
        };
        if let Err(why) = check_payload(spec, &command.payload) {
            violations.push(Violation::new(
                Guarantee::Accepted,
                format!(
                    "step `{}` sent {} with a payload the catalogue refuses: {why}",
                    command.step, command.command
                ),
            ));
        }
        if faults.has(Fault::Fail) && tape.chance(FAIL) {
            // Not recorded: a transient failure applies nothing, and the next delivery may work.
            let outcome = Outcome::Failed {
                reason: "the participant's database is away".into(),
            };
            return (ReplyEnvelope::answering(command, outcome, now), "failed");
        }
        let effect = self.effects.entry(command.effect_key.clone()).or_default();
        effect.step.clone_from(&command.step);
        let (outcome, what) = match command.kind {
            CommandKind::Forward => {
                self.keys
                    .entry(command.step.clone())
                    .or_default()
                    .insert(command.effect_key.clone());
                if effect.tombstone {
                    let reason = "compensated before it arrived (tombstone)".to_string();
                    (Outcome::Rejected { reason }, "refused: tombstone")
                } else if let Some(reason) = effect.refused.clone() {
                    (Outcome::Rejected { reason }, "refused before")
                } else if effect.applied > 0 {
                    let output = effect.output.clone();
                    (Outcome::Succeeded { output }, "succeeded: applied before")
                } else if faults.has(Fault::Refuse) && tape.chance(REFUSE) {
                    let reason = "refused by a business rule".to_string();
                    if self.pivots.contains(&command.step) {
                        effect.refused = Some(reason.clone());
                    }
                    (Outcome::Rejected { reason }, "refused")
                } else {
                    effect.applied += 1;
                    effect.output =
                        sample::object(&spec.output, &command.payload, &command.effect_key, false);
                    let output = effect.output.clone();
                    (Outcome::Succeeded { output }, "applied")
                }
            }
            CommandKind::Compensation => {
                if faults.has(Fault::Refuse) && tape.chance(REFUSE_COMPENSATION) {
                    let reason = "compensation refused by a business rule".to_string();
                    (Outcome::Rejected { reason }, "refused")
                } else if effect.applied > effect.undone {
                    effect.undone += 1;
                    self.undone.push(command.step.clone());
                    (succeeded(spec, command), "undone")
                } else if effect.applied > 0 {
                    (succeeded(spec, command), "undone before")
                } else {
                    effect.tombstone = true;
                    (succeeded(spec, command), "tombstone left")
                }
            }
        };
        let reply = ReplyEnvelope::answering(command, outcome, now);
        self.inbox.insert(command.message_id.clone(), reply.clone());
        (reply, what)
    }
}

fn succeeded(spec: &crate::definition::CommandSpec, command: &CommandEnvelope) -> Outcome {
    Outcome::Succeeded {
        output: sample::object(&spec.output, &command.payload, &command.effect_key, false),
    }
}

/// The payload against the command's declared input: every required field there, of its
/// type.
fn check_payload(
    spec: &crate::definition::CommandSpec,
    payload: &serde_json::Value,
) -> Result<(), String> {
    for (name, field) in &spec.input {
        match payload.get(name) {
            Some(value) if !field.ty.accepts(value) => {
                return Err(format!("`{name}` is not of type {}", field.ty));
            }
            None if field.required => return Err(format!("`{name}` is missing")),
            _ => {}
        }
    }
    Ok(())
}
