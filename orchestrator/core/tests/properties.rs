//! Properties of the pure core (proptest), each checked against something written here, not
//! against the core's own fold:
//!
//! - [`a_schedule_of_outcomes_ends_as_the_model_says`]: a generated sequential saga and a
//!   generated schedule of what each attempt of each command meets (success, refusal, a
//!   transient failure, silence with or without a late reply). A small reference model of the
//!   saga rules ([`Model`]), written without `decide` or `evolve`, says which events must
//!   happen in which order and what the saga and each step look like after each of them. The
//!   core, driven by the same schedule, must log exactly those events, every copy of a reply
//!   must change nothing, and the replay of every prefix of the log must look as the model says.
//! - [`random_interleavings_keep_the_invariants`]: replies to any command sent so far (old
//!   ones, copies), in any order, with time passing at random, on the repository's parallel
//!   definition and a strict sequential one: rules that hold whatever the path (compensation in
//!   reverse order, never past the pivot, a finished saga never changes), and the replay of
//!   every prefix has the status its last status-changing event names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{express_order, strict_place_order};
use proptest::prelude::*;
use saga_core::snapshot;
use saga_core::{
    Action, Definition, Event, Input, Occurred, SagaState, Status, StepKind, StepStatus, actions,
    decide, evolve,
};
use saga_protocol::{CommandEnvelope, CommandKind, Outcome, ReplyEnvelope, Timestamp};
use serde_json::json;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// A schedule of outcomes against a reference model
// ---------------------------------------------------------------------------------------------

/// What one attempt of a command meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Succeeded,
    Rejected,
    /// A transient failure reply (`Outcome::Failed`).
    Failed,
    /// No reply before the timeout; with `late`, the reply (a success) comes after it.
    Silent {
        late: bool,
    },
}

/// A sequential saga and what every attempt of every command meets.
#[derive(Debug, Clone)]
struct Plan {
    /// Compensatable steps, then the pivot if any, then retriable steps.
    kinds: Vec<StepKind>,
    /// Attempts of a compensatable step's command, in all.
    retries: u32,
    /// Attempts of a compensation, in all.
    compensation_retries: u32,
    /// For each step, the answers to its attempts 1, 2, …: transient ones, then a final one.
    forward: Vec<Vec<Answer>>,
    /// For each step, the answers to its compensation's attempts, the same way.
    undo: Vec<Vec<Answer>>,
}

/// Timeout of every command, and at least the longest backoff: a tick this much later fires
/// whatever was due.
const TIMEOUT_MS: i64 = 1_000;

impl Plan {
    fn name(i: usize) -> String {
        format!("step_{i}")
    }

    fn definition(&self) -> Definition {
        let mut toml = format!(
            r#"
[saga]
name = "model"
version = 1

[input]
amount = "integer"

[compensation_retry]
max_attempts = {}
initial_backoff = "100ms"
max_backoff = "1s"
jitter = 0.0
"#,
            self.compensation_retries
        );
        for (i, kind) in self.kinds.iter().enumerate() {
            toml.push_str(&format!(
                "\n[[step]]\nname = \"{}\"\nparticipant = \"p\"\ncommand = \"Do{i}\"\ntimeout = \"1s\"\n",
                Plan::name(i)
            ));
            match kind {
                StepKind::Compensatable => {
                    toml.push_str(&format!("compensation = \"Undo{i}\"\n"));
                }
                StepKind::Pivot => toml.push_str("kind = \"pivot\"\n"),
                StepKind::Retriable => toml.push_str("kind = \"retriable\"\n"),
            }
            // Pivot and retriable steps retry without limit; max_attempts bounds the others.
            toml.push_str(&format!(
                "[step.retry]\nmax_attempts = {}\ninitial_backoff = \"100ms\"\nmax_backoff = \"1s\"\njitter = 0.0\n",
                self.retries
            ));
        }
        Definition::from_toml("model.toml", &toml).unwrap_or_else(|e| panic!("{e:?}\n{toml}"))
    }

    /// The answer to attempt `attempt` of step `step`'s `kind` command.
    fn answer(&self, step: usize, kind: CommandKind, attempt: u32) -> Option<Answer> {
        let answers = match kind {
            CommandKind::Forward => &self.forward,
            CommandKind::Compensation => &self.undo,
        };
        answers.get(step)?.get(attempt as usize - 1).copied()
    }
}

fn transient() -> impl Strategy<Value = Answer> {
    prop_oneof![
        Just(Answer::Failed),
        any::<bool>().prop_map(|late| Answer::Silent { late }),
    ]
}

/// Up to three transient answers, then a success (mostly) or a refusal.
fn answers() -> impl Strategy<Value = Vec<Answer>> {
    let last = prop_oneof![3 => Just(Answer::Succeeded), 1 => Just(Answer::Rejected)];
    (proptest::collection::vec(transient(), 0..=3), last).prop_map(|(mut a, last)| {
        a.push(last);
        a
    })
}

fn plan() -> impl Strategy<Value = Plan> {
    (1usize..=3, any::<bool>(), 0usize..=2)
        .prop_flat_map(|(before, pivot, after)| {
            let mut kinds = vec![StepKind::Compensatable; before];
            if pivot {
                kinds.push(StepKind::Pivot);
                kinds.extend(std::iter::repeat_n(StepKind::Retriable, after));
            }
            let n = kinds.len();
            (
                Just(kinds),
                1u32..=3,
                1u32..=3,
                proptest::collection::vec(answers(), n),
                proptest::collection::vec(answers(), n),
            )
        })
        .prop_map(
            |(kinds, retries, compensation_retries, forward, undo)| Plan {
                kinds,
                retries,
                compensation_retries,
                forward,
                undo,
            },
        )
}

/// A command the model has sent: step index, kind, attempt.
type Cmd = (usize, CommandKind, u32);

/// What the saga and its steps (in the order they started) look like after one event.
#[derive(Debug, Clone, PartialEq)]
struct Looks {
    status: Status,
    steps: Vec<(String, StepStatus)>,
}

/// The saga rules of the design, for sequential sagas, written from the rules and not from
/// the core: a step that succeeds starts the next; a refusal before or at the pivot fails the
/// saga, after it makes the saga stuck; a transient failure or a silence is retried with
/// backoff, without limit from the pivot on, else up to `retries` attempts, after which the
/// step's outcome is unknown and the saga fails; failing compensates, newest first, every
/// step that succeeded or may have applied (a refused step with an earlier attempt that
/// timed out, or failed transiently, may have: a copy of that attempt can still arrive, or
/// it succeeded late; a pivot's participant records its refusals, so a refused pivot
/// did not apply); a compensation is retried up to
/// `compensation_retries` attempts and a refused or exhausted one makes the saga stuck; a
/// late reply is recorded and moves nothing.
struct Model<'p> {
    plan: &'p Plan,
    looks: Looks,
    /// Each expected event (described as [`describe`] does) with the looks after it.
    trail: Vec<(String, Looks)>,
    /// The command in flight: the next input answers it (or its timeout fires).
    pending: Option<Cmd>,
    /// The command a tick sends again once its backoff has passed.
    retry: Option<Cmd>,
    /// Steps with a forward attempt that timed out (never answered, or succeeded late) or
    /// failed transiently: it may still apply, or did, so a refusal of a later attempt proves
    /// nothing.
    open: std::collections::BTreeSet<usize>,
}

impl<'p> Model<'p> {
    fn run(plan: &'p Plan) -> Vec<(String, Looks)> {
        let mut m = Model {
            plan,
            looks: Looks {
                status: Status::New,
                steps: Vec::new(),
            },
            trail: Vec::new(),
            pending: None,
            retry: None,
            open: Default::default(),
        };
        m.looks.status = Status::Running;
        m.emit("SagaStarted".into());
        m.send((0, CommandKind::Forward, 1));
        // One input at a time, as the driver gives them: the answer to the command in
        // flight, or the tick that sends the scheduled retry.
        for _ in 0..200 {
            if m.looks.status != Status::Running && m.looks.status != Status::Compensating {
                return m.trail;
            }
            if let Some(cmd) = m.pending.take() {
                let answer = plan.answer(cmd.0, cmd.1, cmd.2).expect("the plan answers");
                match answer {
                    Answer::Silent { late } => {
                        m.unanswered(cmd, "CommandTimedOut");
                        if late {
                            m.emit(format!("LateReplyRecorded {}", show(cmd)));
                        }
                        // Unanswered, it may still apply; answered late, it did (a success).
                        if cmd.1 == CommandKind::Forward {
                            m.open.insert(cmd.0);
                        }
                    }
                    Answer::Failed => {
                        m.unanswered(cmd, "CommandFailed");
                        // The participant could not record a transient failure: a copy of
                        // the command may still apply.
                        if cmd.1 == CommandKind::Forward {
                            m.open.insert(cmd.0);
                        }
                    }
                    Answer::Succeeded | Answer::Rejected => m.answered(cmd, answer),
                }
            } else if let Some(cmd) = m.retry.take() {
                m.send(cmd);
            } else {
                panic!("the model is neither waiting nor retrying: {:?}", m.looks);
            }
        }
        panic!("the model did not end within 200 inputs")
    }

    fn emit(&mut self, event: String) {
        self.trail.push((event, self.looks.clone()));
    }

    fn set(&mut self, step: usize, status: StepStatus) {
        let name = Plan::name(step);
        match self.looks.steps.iter_mut().find(|(n, _)| *n == name) {
            Some(s) => s.1 = status,
            None => self.looks.steps.push((name, status)),
        }
    }

    fn status_of(&self, step: usize) -> Option<StepStatus> {
        let name = Plan::name(step);
        self.looks
            .steps
            .iter()
            .find(|(n, _)| *n == name)
            .map(|s| s.1)
    }

    fn send(&mut self, cmd: Cmd) {
        let (step, kind, _) = cmd;
        match kind {
            CommandKind::Forward => {
                self.set(step, StepStatus::Running);
                self.emit(format!("StepStarted {}", show(cmd)));
            }
            CommandKind::Compensation => {
                self.set(step, StepStatus::Compensating);
                self.emit(format!("CompensationStarted {}", show(cmd)));
            }
        }
        self.pending = Some(cmd);
    }

    fn answered(&mut self, cmd: Cmd, answer: Answer) {
        let (step, kind, _) = cmd;
        let step_kind = self.plan.kinds[step];
        match (kind, answer) {
            (CommandKind::Forward, Answer::Succeeded) => {
                self.set(step, StepStatus::Succeeded);
                self.emit(format!("StepSucceeded {}", show(cmd)));
                if step + 1 < self.plan.kinds.len() {
                    self.send((step + 1, CommandKind::Forward, 1));
                } else {
                    self.looks.status = Status::Completed;
                    self.emit("SagaCompleted".into());
                }
            }
            (CommandKind::Forward, _) => {
                self.set(step, StepStatus::Rejected);
                self.emit(format!("StepRejected {}", show(cmd)));
                if step_kind == StepKind::Retriable {
                    self.stuck(step, kind);
                } else {
                    self.fail(step);
                }
            }
            (CommandKind::Compensation, Answer::Succeeded) => {
                self.set(step, StepStatus::Compensated);
                self.emit(format!("StepCompensated {}", show(cmd)));
                self.compensate_next();
            }
            (CommandKind::Compensation, _) => self.stuck(step, kind),
        }
    }

    /// A transient failure reply or a timeout (`what`): retry, or give up.
    fn unanswered(&mut self, cmd: Cmd, what: &str) {
        let (step, kind, attempt) = cmd;
        if kind == CommandKind::Forward {
            self.set(step, StepStatus::Unknown);
        }
        self.emit(format!("{what} {}", show(cmd)));
        let (limited, max) = match kind {
            CommandKind::Forward => (
                self.plan.kinds[step] == StepKind::Compensatable,
                self.plan.retries,
            ),
            CommandKind::Compensation => (true, self.plan.compensation_retries),
        };
        if limited && attempt >= max {
            return match kind {
                CommandKind::Forward => self.fail(step),
                CommandKind::Compensation => self.stuck(step, kind),
            };
        }
        let next = (step, kind, attempt + 1);
        if kind == CommandKind::Forward {
            self.set(step, StepStatus::Retrying);
        }
        self.emit(format!("RetryScheduled {}", show(next)));
        self.retry = Some(next);
    }

    fn fail(&mut self, step: usize) {
        self.looks.status = Status::Compensating;
        self.emit(format!("SagaFailed {}", Plan::name(step)));
        self.compensate_next();
    }

    /// Compensates the newest step that succeeded or may have applied (a refused one whose
    /// earlier attempt is open, too), or ends compensated.
    fn compensate_next(&mut self) {
        let next = (0..self.plan.kinds.len()).rev().find(|&i| {
            self.plan.kinds[i] == StepKind::Compensatable
                && match self.status_of(i) {
                    Some(StepStatus::Succeeded | StepStatus::Unknown | StepStatus::Retrying) => {
                        true
                    }
                    Some(StepStatus::Rejected) => self.open.contains(&i),
                    _ => false,
                }
        });
        match next {
            Some(i) => self.send((i, CommandKind::Compensation, 1)),
            None => {
                self.looks.status = Status::Compensated;
                self.emit("SagaCompensated".into());
            }
        }
    }

    fn stuck(&mut self, step: usize, kind: CommandKind) {
        self.looks.status = Status::Stuck;
        self.emit(format!("SagaStuck {} {kind:?}", Plan::name(step)));
    }
}

fn show((step, kind, attempt): Cmd) -> String {
    format!("{} #{attempt} {kind:?}", Plan::name(step))
}

/// An event of the core's log in the model's words: its type, step, attempt and kind.
fn describe(event: &Event) -> String {
    let cmd = |step: &str, attempt: &u32, kind: CommandKind| format!("{step} #{attempt} {kind:?}");
    match event {
        Event::SagaStarted { .. } => "SagaStarted".into(),
        Event::StepStarted { step, attempt, .. } => {
            format!("StepStarted {}", cmd(step, attempt, CommandKind::Forward))
        }
        Event::StepSucceeded { step, attempt, .. } => {
            format!("StepSucceeded {}", cmd(step, attempt, CommandKind::Forward))
        }
        Event::StepRejected { step, attempt, .. } => {
            format!("StepRejected {}", cmd(step, attempt, CommandKind::Forward))
        }
        Event::SagaFailed { step, .. } => format!("SagaFailed {step}"),
        Event::CompensationStarted { step, attempt, .. } => format!(
            "CompensationStarted {}",
            cmd(step, attempt, CommandKind::Compensation)
        ),
        Event::StepCompensated { step, attempt } => format!(
            "StepCompensated {}",
            cmd(step, attempt, CommandKind::Compensation)
        ),
        Event::CommandTimedOut {
            step,
            attempt,
            kind,
        } => format!("CommandTimedOut {}", cmd(step, attempt, *kind)),
        Event::CommandFailed {
            step,
            attempt,
            kind,
            ..
        } => format!("CommandFailed {}", cmd(step, attempt, *kind)),
        Event::RetryScheduled {
            step,
            kind,
            attempt,
            ..
        } => format!("RetryScheduled {}", cmd(step, attempt, *kind)),
        Event::LateReplyRecorded {
            step,
            attempt,
            kind,
            ..
        } => format!("LateReplyRecorded {}", cmd(step, attempt, *kind)),
        Event::SagaStuck { step, kind, .. } => format!(
            "SagaStuck {} {}",
            step.as_deref().unwrap_or("?"),
            kind.map_or("?".to_string(), |k| format!("{k:?}"))
        ),
        other => other.type_name().to_string(),
    }
}

/// The core under test, fed one input at a time; every reply is delivered twice.
struct Driver {
    def: Definition,
    state: SagaState,
    history: Vec<Occurred>,
    in_flight: Option<CommandEnvelope>,
    now: i64,
}

impl Driver {
    fn input(&mut self, input: Input) -> Result<(), TestCaseError> {
        let events = decide(&self.def, &self.state, input, Timestamp(self.now))
            .map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        self.state = events.iter().fold(self.state.clone(), evolve);
        for action in actions(&self.state, &events) {
            if let Action::SendCommand(c) | Action::SendCompensation(c) = action {
                prop_assert!(
                    self.in_flight.is_none(),
                    "two commands in flight in a sequential saga"
                );
                self.in_flight = Some(c);
            }
        }
        self.history.extend(events);
        Ok(())
    }

    /// Delivers `reply`, then a copy of it, which must change nothing.
    fn reply(&mut self, cmd: &CommandEnvelope, outcome: Outcome) -> Result<(), TestCaseError> {
        self.now += 1;
        let reply = ReplyEnvelope::answering(cmd, outcome, Timestamp(self.now));
        self.input(Input::Reply(reply.clone()))?;
        let copy = decide(
            &self.def,
            &self.state,
            Input::Reply(reply),
            Timestamp(self.now),
        )
        .map_err(|e| TestCaseError::fail(format!("copy refused: {e}")))?;
        prop_assert!(
            copy.is_empty(),
            "a copy of a reply changed the saga: {copy:?}"
        );
        Ok(())
    }

    fn tick(&mut self) -> Result<(), TestCaseError> {
        self.now += TIMEOUT_MS + 1;
        self.input(Input::Tick)
    }
}

fn drive(plan: &Plan) -> Result<Driver, TestCaseError> {
    let mut d = Driver {
        def: plan.definition(),
        state: SagaState::new(Uuid::from_u128(11)),
        history: Vec::new(),
        in_flight: None,
        now: 1_000,
    };
    d.input(Input::Start {
        input: json!({"amount": 5}),
        trace_context: None,
    })?;
    for _ in 0..200 {
        if d.state.status.is_terminal() {
            return Ok(d);
        }
        let Some(cmd) = d.in_flight.take() else {
            // Nothing in flight: a retry is waiting for its time.
            d.tick()?;
            continue;
        };
        let step: usize = cmd
            .step
            .strip_prefix("step_")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| TestCaseError::fail(format!("unknown step {}", cmd.step)))?;
        let Some(answer) = plan.answer(step, cmd.kind, cmd.attempt) else {
            return Err(TestCaseError::fail(format!(
                "the core sent {} {:?} #{}, which the plan does not foresee; log: {:?}",
                cmd.step,
                cmd.kind,
                cmd.attempt,
                d.history
                    .iter()
                    .map(|o| describe(&o.event))
                    .collect::<Vec<_>>()
            )));
        };
        let output = json!({"done": cmd.step});
        match answer {
            Answer::Succeeded => d.reply(&cmd, Outcome::Succeeded { output })?,
            Answer::Rejected => d.reply(
                &cmd,
                Outcome::Rejected {
                    reason: "no".into(),
                },
            )?,
            Answer::Failed => d.reply(
                &cmd,
                Outcome::Failed {
                    reason: "down".into(),
                },
            )?,
            Answer::Silent { late } => {
                d.tick()?;
                if late {
                    d.reply(&cmd, Outcome::Succeeded { output })?;
                }
            }
        }
    }
    Err(TestCaseError::fail(
        "the saga did not end within 200 inputs",
    ))
}

fn looks_of(state: &SagaState) -> Looks {
    Looks {
        status: state.status,
        steps: state
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.status))
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_schedule_of_outcomes_ends_as_the_model_says(plan in plan()) {
        let expected = Model::run(&plan);
        let run = drive(&plan)?;
        let logged: Vec<String> = run.history.iter().map(|o| describe(&o.event)).collect();
        let wanted: Vec<&String> = expected.iter().map(|(e, _)| e).collect();
        prop_assert_eq!(logged.iter().collect::<Vec<_>>(), wanted, "the log");

        // The state as of every event: the replay of that prefix looks as the model says.
        prop_assert_eq!(looks_of(&SagaState::replay(run.state.saga_id, &[])).status, Status::New);
        for (k, (event, looks)) in expected.iter().enumerate() {
            let replayed = SagaState::replay(run.state.saga_id, &run.history[..=k]);
            prop_assert_eq!(replayed.version as usize, k + 1);
            prop_assert_eq!(&looks_of(&replayed), looks, "after event {} ({})", k, event);
        }
        // A saga that needs an operator says on what, and why.
        let last = &expected[expected.len() - 1].1;
        if last.status == Status::Stuck {
            prop_assert!(run.state.stuck_on.is_some() && run.state.reason.is_some());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random interleavings
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Answer one of the commands sent so far (the latest, an old one, or a duplicate).
    Reply { pick: usize, outcome: u8 },
    /// Let time pass and fire what is due.
    Tick { ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..4).prop_map(|(pick, outcome)| Op::Reply { pick, outcome }),
        1 => (0i64..3_000).prop_map(|ms| Op::Tick { ms }),
    ]
}

fn outcome(code: u8) -> Outcome {
    match code {
        0 | 1 => Outcome::Succeeded {
            output: json!({"order_id": "o-1"}),
        },
        2 => Outcome::Rejected {
            reason: "no".into(),
        },
        _ => Outcome::Failed {
            reason: "down".into(),
        },
    }
}

struct Run {
    def: Definition,
    state: SagaState,
    history: Vec<Occurred>,
    sent: Vec<CommandEnvelope>,
    now: i64,
}

impl Run {
    fn apply(&mut self, input: Input) {
        let before = self.state.status;
        let events = decide(&self.def, &self.state, input, Timestamp(self.now)).unwrap();
        self.state = events.iter().fold(self.state.clone(), evolve);
        for a in actions(&self.state, &events) {
            if let Action::SendCommand(c) | Action::SendCompensation(c) = a {
                self.sent.push(c);
            }
        }
        self.history.extend(events.iter().cloned());
        // Completed, Compensated and Aborted sagas never change again: a late reply is
        // recorded, and that is all.
        if before.is_final() {
            assert_eq!(self.state.status, before);
            assert!(
                events
                    .iter()
                    .all(|o| matches!(o.event, Event::LateReplyRecorded { .. })),
                "a {before:?} saga changed: {events:?}"
            );
        }
    }
}

/// Index of `step`'s unit in the definition: members of one parallel group share one.
fn index(def: &Definition, step: &str) -> usize {
    let first = &def.unit_of(step)[0].name;
    def.steps.iter().position(|s| &s.name == first).unwrap()
}

/// The status the last status-changing event of `events` names (no operator acts here).
fn status_named(events: &[Occurred]) -> Status {
    events
        .iter()
        .rev()
        .find_map(|o| match o.event {
            Event::SagaStarted { .. } => Some(Status::Running),
            Event::SagaFailed { .. } => Some(Status::Compensating),
            Event::SagaCompleted => Some(Status::Completed),
            Event::SagaCompensated => Some(Status::Compensated),
            Event::SagaStuck { .. } => Some(Status::Stuck),
            Event::SagaAborted { .. } => Some(Status::Aborted),
            _ => None,
        })
        .unwrap_or(Status::New)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_interleavings_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..60),
        parallel in any::<bool>(),
    ) {
        let def = if parallel { express_order() } else { strict_place_order() };
        let mut run = Run {
            state: SagaState::new(Uuid::from_u128(7)),
            def,
            history: Vec::new(),
            sent: Vec::new(),
            now: 1_000,
        };
        run.apply(Input::Start {
            input: json!({"customer_id": "c", "amount": 5}),
            trace_context: None,
        });
        let outcome = |code: u8, cmd: &CommandEnvelope| match (code, cmd.command.as_str()) {
            (0 | 1, "CreateOrder") => Outcome::Succeeded { output: json!({"order_id": "o-1"}) },
            (code, _) => outcome(code),
        };
        for op in ops {
            match op {
                Op::Reply { pick, outcome: code } => {
                    let cmd = run.sent[pick % run.sent.len()].clone();
                    run.now += 1;
                    let reply = ReplyEnvelope::answering(&cmd, outcome(code, &cmd), Timestamp(run.now));
                    run.apply(Input::Reply(reply));
                }
                Op::Tick { ms } => {
                    run.now += ms;
                    run.apply(Input::Tick);
                }
            }
        }

        let def = &run.def;
        // Compensations run in reverse order of the steps that may have applied...
        let compensated: Vec<usize> = run.history.iter().filter_map(|o| match &o.event {
            Event::CompensationStarted { step, attempt: 1, .. } => Some(index(def, step)),
            _ => None,
        }).collect();
        prop_assert!(compensated.windows(2).all(|w| w[0] >= w[1]), "compensation order {compensated:?}");
        // ...and never for the pivot or anything after it.
        for i in &compensated {
            prop_assert_eq!(def.steps[*i].kind, StepKind::Compensatable);
        }
        // Compensation starts only once the forward path has failed.
        if !compensated.is_empty() {
            let failed = run.history.iter().any(|o| matches!(o.event, Event::SagaFailed { .. }));
            prop_assert!(failed, "compensated without failing");
        }
        // A completed saga compensated nothing; a compensated one completed nothing.
        match run.state.status {
            Status::Completed => prop_assert!(compensated.is_empty()),
            Status::Compensated => {
                let completed = run.history.iter().any(|o| matches!(o.event, Event::SagaCompleted));
                prop_assert!(!completed, "compensated after completing");
            }
            _ => {}
        }
        // The replay of every prefix has the status its events name, one event per version;
        // and a snapshot of it, with the rest of the log folded on, is the whole replay.
        let whole = SagaState::replay(run.state.saga_id, &run.history);
        for k in 0..=run.history.len() {
            let replayed = SagaState::replay(run.state.saga_id, &run.history[..k]);
            prop_assert_eq!(replayed.status, status_named(&run.history[..k]), "after {} events", k);
            prop_assert_eq!(replayed.version as usize, k);
            let taken = snapshot::encode(&replayed);
            let restored = snapshot::decode(&taken, snapshot::SNAPSHOT_SCHEMA)
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(&restored, &replayed, "snapshot after {} events", k);
            let resumed = run.history[k..].iter().fold(restored, saga_core::evolve);
            prop_assert_eq!(&resumed, &whole, "snapshot after {} events and the rest", k);
        }
    }
}
