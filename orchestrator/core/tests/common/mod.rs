//! The given/when/then harness shared by the core's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use saga_core::{
    Action, Definition, Input, Occurred, OperatorAction, OperatorCommand, SagaState, actions,
    decide, evolve,
};
use saga_protocol::{CommandEnvelope, Outcome, ReplyEnvelope, Timestamp};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

pub fn place_order() -> Definition {
    Definition::from_toml(
        "sagas/place_order.toml",
        include_str!("../../../../sagas/place_order.toml"),
    )
    .unwrap()
}

/// One turn of the story: what came in, what happened, what the runtime must do.
#[derive(Serialize)]
pub struct Turn {
    pub when: String,
    pub then: Vec<Occurred>,
    pub actions: Vec<Action>,
}

pub struct Saga {
    pub def: Definition,
    pub state: SagaState,
    pub history: Vec<Occurred>,
    pub clock: i64,
    pub story: Vec<Turn>,
}

impl Saga {
    pub fn given(def: Definition, history: Vec<Occurred>) -> Self {
        let id = Uuid::from_u128(0x5a6a);
        let state = SagaState::replay(id, &history);
        Saga {
            def,
            state,
            history,
            clock: 1_000,
            story: Vec::new(),
        }
    }

    pub fn when(&mut self, label: &str, input: Input) -> Vec<Action> {
        self.clock += 10;
        let events = decide(&self.def, &self.state, input, Timestamp(self.clock)).unwrap();
        self.state = events.iter().fold(self.state.clone(), evolve);
        self.history.extend(events.iter().cloned());
        let acts = actions(&self.state, &events);
        self.story.push(Turn {
            when: label.into(),
            then: events,
            actions: acts.clone(),
        });
        acts
    }

    /// Lets time pass until `at` (ms) and fires whatever is due.
    pub fn tick(&mut self, at: i64) -> Vec<Action> {
        self.clock = at - 10;
        self.when(&format!("tick at {at}"), Input::Tick)
    }

    /// The runtime finds the saga's definition missing and stalls it (`saga_core::stall`).
    pub fn stall(&mut self, reason: &str) -> Vec<Action> {
        self.clock += 10;
        let events = saga_core::stall(&self.state, reason.into(), Timestamp(self.clock)).unwrap();
        self.state = events.iter().fold(self.state.clone(), evolve);
        self.history.extend(events.iter().cloned());
        let acts = actions(&self.state, &events);
        self.story.push(Turn {
            when: "stall: the definition is missing".into(),
            then: events,
            actions: acts.clone(),
        });
        acts
    }

    /// An operator's action by `ops`.
    pub fn operator(&mut self, command: OperatorCommand, reason: &str) -> Vec<Action> {
        let label = format!("operator {command:?}");
        let action = OperatorAction {
            command,
            by: "ops".into(),
            reason: reason.into(),
        };
        self.when(&label, Input::Operator(action))
    }

    pub fn start(&mut self, amount: i64) -> Vec<Action> {
        self.when(
            "start",
            Input::Start {
                input: json!({"customer_id": "c-1", "amount": amount}),
                trace_context: None,
            },
        )
    }

    pub fn reply(&mut self, to: &Action, outcome: Outcome) -> Vec<Action> {
        let cmd = command(to);
        let label = format!(
            "{} {}",
            cmd.command,
            match &outcome {
                Outcome::Succeeded { .. } => "succeeded",
                Outcome::Rejected { .. } => "rejected",
                Outcome::Failed { .. } => "failed",
            }
        );
        let at = Timestamp(self.clock + 5); // the participant's clock
        self.when(
            &label,
            Input::Reply(ReplyEnvelope::answering(cmd, outcome, at)),
        )
    }
}

pub fn command(action: &Action) -> &CommandEnvelope {
    match action {
        Action::SendCommand(c) | Action::SendCompensation(c) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

pub fn ok(output: serde_json::Value) -> Outcome {
    Outcome::Succeeded { output }
}

pub fn rejected(reason: &str) -> Outcome {
    Outcome::Rejected {
        reason: reason.into(),
    }
}

/// The real `sagas/express_order.toml`: a parallel group, a pivot and a retriable step.
pub fn express_order() -> Definition {
    Definition::from_toml(
        "sagas/express_order.toml",
        include_str!("../../../../sagas/express_order.toml"),
    )
    .unwrap()
}

pub fn failed(reason: &str) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
    }
}

/// place_order with short timeouts, two attempts per command, no jitter and a deadline.
pub fn strict_place_order() -> Definition {
    Definition::from_toml(
        "strict.toml",
        r#"
[saga]
name = "place_order"
version = 1
deadline = "60s"

[input]
customer_id = "string"
amount = "integer"

[compensation_retry]
max_attempts = 2
initial_backoff = "100ms"
jitter = 0.0

[[step]]
name = "reserve_credit"
participant = "account"
command = "ReserveCredit"
compensation = "ReleaseCredit"
timeout = "1s"
[step.retry]
max_attempts = 2
initial_backoff = "100ms"
jitter = 0.0

[[step]]
name = "create_order"
participant = "order"
command = "CreateOrder"
compensation = "CancelOrder"
timeout = "1s"
[step.retry]
max_attempts = 2
initial_backoff = "100ms"
jitter = 0.0

[[step]]
name = "approve_order"
participant = "order"
command = "ApproveOrder"
kind = "pivot"
timeout = "1s"
"#,
    )
    .unwrap()
}

/// A strict place_order stuck on the compensation of create_order (the order database is
/// away), its credit still reserved.
pub fn stuck_on_cancel() -> Saga {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let a = saga.start(2_000_000);
    let a = saga.reply(&a[0], ok(json!({"reserved": 2_000_000})));
    let a = saga.reply(&a[0], ok(json!({"order_id": "o-1"})));
    let cancel = saga.reply(
        &a[0],
        rejected("amount 2000000 exceeds the review limit 1000000"),
    );
    saga.reply(&cancel[0], failed("order database unreachable"));
    let clock = saga.clock;
    saga.tick(clock + 200);
    let stuck = saga.tick(clock + 1_200);
    assert_eq!(
        stuck,
        vec![Action::Finish {
            status: saga_core::Status::Stuck
        }]
    );
    saga
}

/// The real `sagas/approved_order.toml`: an await step before the pivot.
pub fn approved_order() -> Definition {
    Definition::from_toml(
        "sagas/approved_order.toml",
        include_str!("../../../../sagas/approved_order.toml"),
    )
    .unwrap()
}

impl Saga {
    /// Signal `name` comes with `payload`.
    pub fn signal(&mut self, name: &str, payload: serde_json::Value) -> Vec<Action> {
        self.when(
            &format!("signal {name}"),
            Input::Signal {
                name: name.into(),
                payload,
            },
        )
    }
}
