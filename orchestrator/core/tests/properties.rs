//! Properties of the pure core under random interleavings of replies, duplicates, late
//! replies and timeouts (proptest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{express_order, strict_place_order};
use proptest::prelude::*;
use saga_core::{
    Action, Definition, Event, Input, Occurred, SagaState, Status, StepKind, actions, decide,
    evolve,
};
use saga_protocol::{CommandEnvelope, Outcome, ReplyEnvelope, Timestamp};
use serde_json::json;
use uuid::Uuid;

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
        // The state is the fold of the log, whatever the path to it.
        let replayed = SagaState::replay(run.state.saga_id, &run.history);
        prop_assert_eq!(&replayed, &run.state);
        prop_assert_eq!(replayed.version as usize, run.history.len());
    }
}
