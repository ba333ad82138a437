//! The pure saga core: definitions, events, state, decide and evolve.
//!
//! Given the state and an input (start, reply) with the time as a value, [`decide`] returns
//! the events that happen; [`evolve`] folds an event into the state; [`actions`] turns new
//! events into effects for the runtime. Nothing here does I/O, reads a clock or mints ids,
//! so every behaviour is a given/when/then test and replay is a fold.
//!
//! ```
//! use saga_core::{actions, decide, evolve, Definition, Input, SagaState};
//! use saga_protocol::Timestamp;
//! use uuid::Uuid;
//!
//! let def = Definition::from_toml("d.toml", r#"
//!     [saga]
//!     name = "d"
//!     version = 1
//!     [[step]]
//!     name = "a"
//!     participant = "account"
//!     command = "ReserveCredit"
//! "#).unwrap();
//! let state = SagaState::new(Uuid::nil());
//! let events = decide(&def, &state, Input::Start { input: serde_json::json!({}), trace_context: None }, Timestamp(0)).unwrap();
//! let state = events.iter().fold(state, evolve);
//! // Send the command of step `a`, and arm its timeout.
//! assert!(matches!(actions(&state, &events)[0], saga_core::Action::SendCommand(_)));
//! ```

mod action;
mod decide;
pub mod definition;
mod event;
mod evolve;
pub mod policy;
pub mod simulate;
pub mod snapshot;
mod state;

pub use action::{Action, actions};
pub use decide::{Input, OperatorAction, OperatorCommand, Rejection, decide, stall};
pub use definition::{Catalogue, Definition, DefinitionError, Errors, Step, StepKind};
pub use event::{DecodeError, Event, Occurred, Operator, SCHEMA as EVENT_SCHEMA, upcast};
pub use evolve::evolve;
pub use state::{SagaState, Status, StepState, StepStatus};
