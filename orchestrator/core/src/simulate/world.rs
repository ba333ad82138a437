//! One simulated saga: the orchestrator (its log, its state, the core it decides with), the
//! network between it and the participants, the model participants and the clock. Every
//! choice the world makes comes from the [`Tape`].

use super::participants::Participants;
use super::tape::Tape;
use super::{Decide, Fault, Faults, Guarantee, Violation, check};
use crate::definition::{Catalogue, Definition};
use crate::event::Occurred;
use crate::{Input, SagaState, StepStatus, actions, evolve};
use saga_protocol::{CommandEnvelope, ReplyEnvelope, Timestamp};
use std::collections::BTreeSet;
use std::time::Duration;

/// Likelihoods (per mille) of the faults, at each chance they have.
const LOSE: u32 = 50;
const DUPLICATE: u32 = 100;
const REORDER: u32 = 150;
const DELAY: u32 = 100;
/// Time moves on while messages are in flight (with the delay fault).
const HURRY: u32 = 100;
const CRASH: u32 = 30;

/// Where the simulated clock starts: 2026-01-01T00:00:00Z.
pub(crate) const EPOCH: Timestamp = Timestamp(1_767_225_600_000);

#[derive(Debug, Clone)]
enum Body {
    Command(CommandEnvelope),
    Reply(ReplyEnvelope),
    Signal {
        name: String,
        payload: serde_json::Value,
    },
}

/// A message on its way, deliverable from `at` on.
#[derive(Debug, Clone)]
struct Message {
    at: Timestamp,
    body: Body,
}

pub(crate) struct World<'a> {
    pub def: &'a Definition,
    catalogue: &'a Catalogue,
    decide: Decide,
    faults: &'a Faults,
    pub now: Timestamp,
    pub log: Vec<Occurred>,
    pub state: SagaState,
    network: Vec<Message>,
    pub participants: Participants,
    pub violations: Vec<Violation>,
    /// What happened, line by line, when asked for.
    pub trace: Option<Vec<String>>,
    /// The last tick: its time and the saga's version after it (timers due then have fired).
    ticked: Option<(Timestamp, u64)>,
    /// The waits a signal has been sent for: step and the time it waits until.
    signalled: BTreeSet<(String, Option<Timestamp>)>,
}

impl<'a> World<'a> {
    pub fn new(
        def: &'a Definition,
        catalogue: &'a Catalogue,
        decide: Decide,
        faults: &'a Faults,
        saga_id: uuid::Uuid,
        traced: bool,
    ) -> Self {
        World {
            def,
            catalogue,
            decide,
            faults,
            now: EPOCH,
            log: Vec::new(),
            state: SagaState::new(saga_id),
            network: Vec::new(),
            participants: Participants {
                pivots: def
                    .steps
                    .iter()
                    .filter(|s| s.kind == crate::StepKind::Pivot)
                    .map(|s| s.name.clone())
                    .collect(),
                ..Participants::default()
            },
            violations: Vec::new(),
            trace: traced.then(Vec::new),
            ticked: None,
            signalled: BTreeSet::new(),
        }
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            let at = self.now.since(EPOCH);
            trace.push(format!("{:>9} {}", format!("+{}", Elapsed(at)), line()));
        }
    }

    /// Starts the saga with `input`.
    pub fn start(&mut self, input: serde_json::Value, tape: &mut Tape) {
        let input = Input::Start {
            input,
            trace_context: None,
        };
        self.orchestrate(input, None, tape);
    }

    /// One thing happens: a message is delivered (or lost), or time moves to the next timer
    /// and the saga is ticked. `false` when nothing is left to happen.
    pub fn step(&mut self, tape: &mut Tape) -> bool {
        let deliverable: Vec<usize> = (0..self.network.len())
            .filter(|&i| self.network[i].at <= self.now)
            .collect();
        let next = self.next_time();
        if !deliverable.is_empty() {
            let hurry = next.is_some() && self.faults.has(Fault::Delay) && tape.chance(HURRY);
            if !hurry {
                let n = u32::try_from(deliverable.len()).unwrap_or(u32::MAX);
                let pick = if self.faults.has(Fault::Reorder) && tape.chance(REORDER) {
                    tape.pick(n) as usize
                } else {
                    0
                };
                let message = self
                    .network
                    .remove(deliverable[pick.min(deliverable.len() - 1)]);
                self.deliver(message, tape);
                return true;
            }
        }
        let Some(at) = next else {
            return false;
        };
        self.now = self.now.max(at);
        self.note(|| "time passes: tick".into());
        // After a crash the restarted orchestrator arms the timers from the state again, so
        // what was due is still due.
        if self.orchestrate(Input::Tick, None, tape) {
            self.ticked = Some((self.now, self.state.version));
        }
        check::after_tick(self);
        true
    }

    /// The earliest of the saga's timers that has not fired and of the delayed messages.
    fn next_time(&self) -> Option<Timestamp> {
        let fired =
            |t: Timestamp| t <= self.now && self.ticked == Some((self.now, self.state.version));
        let timers = self.state.timers().into_iter().filter(|t| !fired(*t));
        let held = self
            .network
            .iter()
            .map(|m| m.at)
            .filter(|at| *at > self.now);
        timers.chain(held).min()
    }

    fn deliver(&mut self, message: Message, tape: &mut Tape) {
        let what = describe(&message.body);
        if self.faults.has(Fault::Lose) && tape.chance(LOSE) {
            return self.note(|| format!("lost: {what}"));
        }
        if self.faults.has(Fault::Duplicate) && tape.chance(DUPLICATE) {
            self.note(|| format!("duplicated: {what}"));
            let copy = Message {
                at: self.now,
                body: message.body.clone(),
            };
            self.network.push(copy);
        }
        match message.body {
            Body::Command(command) => {
                let (reply, did) = self.participants.handle(
                    self.catalogue,
                    &command,
                    self.now,
                    tape,
                    self.faults,
                    &mut self.violations,
                );
                self.note(|| format!("{what}: {did}, answers {}", reply.outcome.status()));
                let bound = self.timeout_of(&command.step);
                self.publish(Body::Reply(reply), bound, tape);
            }
            Body::Reply(ref reply) => {
                self.note(|| format!("delivered: {what}"));
                let input = Input::Reply(reply.clone());
                self.orchestrate(input, Some(message), tape);
            }
            Body::Signal {
                ref name,
                ref payload,
            } => {
                self.note(|| format!("delivered: {what}"));
                let input = Input::Signal {
                    name: name.clone(),
                    payload: payload.clone(),
                };
                self.orchestrate(input, Some(message), tape);
            }
        }
    }

    fn timeout_of(&self, step: &str) -> Duration {
        self.def
            .step(step)
            .map_or(Duration::from_secs(10), |s| s.timeout)
    }

    /// Puts `body` on the network, maybe delayed by up to twice `bound` (so past a timeout).
    fn publish(&mut self, body: Body, bound: Duration, tape: &mut Tape) {
        let mut at = self.now;
        if self.faults.has(Fault::Delay) && tape.chance(DELAY) {
            let bound = u32::try_from(bound.as_millis().saturating_mul(2)).unwrap_or(u32::MAX);
            let by = Duration::from_millis(u64::from(tape.pick(bound.max(2))) + 1);
            at = at.plus(by);
            let what = describe(&body);
            self.note(|| format!("delayed by {}: {what}", Elapsed(by)));
        }
        self.network.push(Message { at, body });
    }

    /// Decide, record, then act: the core decides on `input`, the events are appended, then
    /// the commands they call for are published. The orchestrator may crash before the
    /// append (`message`, the input, is delivered again) or between the append and the
    /// publish (the restart publishes every command in flight again). `false` after a crash.
    fn orchestrate(&mut self, input: Input, message: Option<Message>, tape: &mut Tape) -> bool {
        let crashes = self.faults.has(Fault::Crash);
        if crashes && !matches!(input, Input::Start { .. }) && tape.chance(CRASH) {
            self.note(|| "orchestrator crashed before appending".into());
            if let Some(message) = message {
                self.network.push(message);
            }
            self.restart(tape);
            return false;
        }
        let is_reply = matches!(input, Input::Reply(_));
        let events = match (self.decide)(self.def, &self.state, input, self.now) {
            Ok(events) => events,
            Err(refused) => {
                self.note(|| format!("the core refused the input: {refused}"));
                if is_reply {
                    let detail = format!("the core refused a participant's reply: {refused}");
                    self.violations
                        .push(Violation::new(Guarantee::Accepted, detail));
                }
                return true;
            }
        };
        for occurred in &events {
            check::event(self.def, &self.state, occurred, &mut self.violations);
            let blank = SagaState::new(self.state.saga_id);
            self.state = evolve(std::mem::replace(&mut self.state, blank), occurred);
            self.log.push(occurred.clone());
            let line = format!("recorded {}", check::describe(&occurred.event));
            self.note(|| line);
        }
        if events.is_empty() {
            return true;
        }
        if crashes && tape.chance(CRASH) {
            self.note(|| "orchestrator crashed after appending, before publishing".into());
            self.restart(tape);
            return false;
        }
        for action in actions(&self.state, &events) {
            if let crate::Action::SendCommand(c) | crate::Action::SendCompensation(c) = action {
                let bound = self.timeout_of(&c.step);
                self.publish(Body::Command(c), bound, tape);
            }
        }
        self.send_signals(tape);
        true
    }

    /// A restarted orchestrator publishes every command in flight again, with its id.
    fn restart(&mut self, tape: &mut Tape) {
        let in_flight: Vec<CommandEnvelope> = self.state.in_flight().cloned().collect();
        let n = in_flight.len();
        self.note(|| format!("orchestrator restarted: {n} commands in flight published again"));
        for command in in_flight {
            let bound = self.timeout_of(&command.step);
            self.publish(Body::Command(command), bound, tape);
        }
        self.send_signals(tape);
    }

    /// Someone sends the signal each waiting await step waits for, once per wait.
    fn send_signals(&mut self, tape: &mut Tape) {
        let waiting: Vec<(String, Option<Timestamp>)> = self
            .state
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Waiting)
            .map(|s| (s.name.clone(), s.timeout_at))
            .collect();
        for wait in waiting {
            if !self.signalled.insert(wait.clone()) {
                continue;
            }
            let Some(step) = self.def.step(&wait.0) else {
                continue;
            };
            let Some(signal) = &step.signal else {
                continue;
            };
            let key = format!("{}.{}", self.state.saga_id, step.name);
            let payload =
                super::sample::object(&signal.fields, &serde_json::Value::Null, &key, false);
            let body = Body::Signal {
                name: signal.name.clone(),
                payload,
            };
            self.publish(body, step.timeout, tape);
        }
    }
}

fn describe(body: &Body) -> String {
    match body {
        Body::Command(c) => format!(
            "{} {} of `{}` (attempt {}) to {}",
            c.command,
            match c.kind {
                saga_protocol::CommandKind::Forward => "command",
                saga_protocol::CommandKind::Compensation => "compensation",
            },
            c.step,
            c.attempt,
            c.participant
        ),
        Body::Reply(r) => format!(
            "reply {} to `{}` attempt {} ({:?})",
            r.outcome.status(),
            r.step,
            r.attempt,
            r.kind
        ),
        Body::Signal { name, .. } => format!("signal `{name}`"),
    }
}

/// A duration the way the trace shows it: `1.250s`.
struct Elapsed(Duration);

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}s", self.0.as_secs(), self.0.subsec_millis())
    }
}
