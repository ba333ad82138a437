//! The one loop of an existing saga: load, fold, decide, append, then settle what was
//! decided (observe it, keep the state hot, publish the commands, arm the timers). A start
//! settles the same way ([`super::start`]).

use super::{Declined, Error, Handled, Loaded, Orchestrator, Refusal, Result, hot, observe};
use crate::store::{EventStore, NewEvent, StoredEvent, Summary};
use crate::transport::Transport;
use saga_core::{Action, Event, Input, Occurred, OperatorAction, SagaState, Status};
use saga_protocol::{ReplyEnvelope, Timestamp};
use saga_telemetry::saga::SagaTrace;
use uuid::Uuid;

/// What the read model records of `state` next to its events.
pub(super) fn summary(state: &SagaState) -> Summary {
    Summary {
        status: state.status.as_str().to_string(),
        due_at: state.timers().into_iter().min(),
    }
}

/// Appends that lose a race are decided again this many times before giving up.
const MAX_CONFLICT_RETRIES: usize = 8;

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// Loads a saga and folds its events.
    pub async fn load(&self, saga_id: Uuid) -> Result<Loaded> {
        let (record, events) = self
            .store
            .load(saga_id)
            .await?
            .ok_or(Declined::NotFound(saga_id))?;
        let occurred = decode_all(saga_id, &events)?;
        let state = SagaState::replay(saga_id, &occurred);
        Ok(Loaded {
            record,
            events,
            state,
            archived_at: None,
        })
    }

    /// Loads a saga from the hot tables or, once it is archived, from the archive: what the
    /// API shows. The runtime never acts on an archived saga (it is final).
    pub async fn read(&self, saga_id: Uuid) -> Result<Loaded> {
        match self.load(saga_id).await {
            Err(Error::Declined(Declined::NotFound(_))) => {}
            loaded => return loaded,
        }
        let archived = self
            .store
            .archived(saga_id)
            .await?
            .ok_or(Declined::NotFound(saga_id))?;
        let occurred = decode_all(saga_id, &archived.events)?;
        Ok(Loaded {
            state: SagaState::replay(saga_id, &occurred),
            record: archived.record,
            events: archived.events,
            archived_at: Some(archived.archived_at),
        })
    }

    /// A saga's stored log (hot or archived), undecoded; `None` if unknown.
    pub async fn stored_log(&self, saga_id: Uuid) -> Result<Option<Vec<StoredEvent>>> {
        if let Some((_, events)) = self.store.load(saga_id).await? {
            return Ok(Some(events));
        }
        Ok(self.store.archived(saga_id).await?.map(|a| a.events))
    }

    /// Records a participant's reply and acts on what it decides.
    pub async fn handle_reply(&self, reply: &ReplyEnvelope) -> Result<Handled> {
        self.handle(reply.saga_id, Input::Reply(reply.clone()))
            .await
    }

    /// Records an operator's action on a saga and acts on what it decides.
    pub async fn operate(&self, saga_id: Uuid, action: OperatorAction) -> Result<Handled> {
        self.handle(saga_id, Input::Operator(action)).await
    }

    /// Signal `name` for the saga, with `payload`: the await step waiting for it goes on; one
    /// that no longer waits has it recorded and ignored.
    pub async fn signal(
        &self,
        saga_id: Uuid,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<Handled> {
        let input = Input::Signal {
            name: name.to_string(),
            payload,
        };
        self.handle(saga_id, input).await
    }

    /// The one loop for an existing saga: load, fold, decide, append, act. A lost append race
    /// (another writer moved the saga on) loads the new state and decides again.
    ///
    /// The state comes from the hot cache when the saga is there ([`HotSagas`]); only an
    /// append can confirm it, so a decision from a cached state that appends nothing is made
    /// again on the state loaded from the store.
    pub async fn handle(&self, saga_id: Uuid, input: Input) -> Result<Handled> {
        let mut cached = self.hot.take(saga_id);
        for _ in 0..MAX_CONFLICT_RETRIES {
            let from_cache = cached.is_some();
            let hot = match cached.take() {
                Some(hot) => hot,
                None => match self.load_hot(saga_id).await {
                    Err(Error::Declined(Declined::NotFound(id))) => {
                        return Ok(Handled::Refused(Refusal::UnknownSaga(id)));
                    }
                    Err(e) => return Err(e),
                    Ok(hot) => hot,
                },
            };
            // A version no file holds any more is restored from the store.
            let registry = self
                .registry_for(&hot.state.name, hot.state.definition_version)
                .await?
                .unwrap_or_default();
            let now = self.now();
            let Some(def) = registry.get(&hot.state.name, hot.state.definition_version) else {
                // Nothing can be decided without it: the saga becomes Stuck with the reason,
                // visibly, instead of running for good with every input refused; the input
                // is refused too (a reply goes to the dead-letter stream with the reason).
                let refusal = Refusal::UnknownDefinition {
                    saga_id,
                    name: hot.state.name.clone(),
                };
                let events = match saga_core::stall(&hot.state, refusal.to_string(), now) {
                    Ok(events) if !events.is_empty() => events,
                    _ if from_cache => continue,
                    _ => return Ok(Handled::Refused(refusal)),
                };
                tracing::error!(%saga_id, reason = %refusal, "saga stuck: its definition is missing");
                match self.commit(saga_id, hot, events, now).await? {
                    true => return Ok(Handled::Refused(refusal)),
                    false => continue,
                }
            };
            let events = match saga_core::decide(def, &hot.state, input.clone(), now) {
                Ok(events) if events.is_empty() && from_cache => continue,
                Err(_) if from_cache => continue,
                Ok(events) if events.is_empty() => {
                    self.hot.put(hot);
                    return Ok(Handled::Unchanged);
                }
                Ok(events) => events,
                Err(rejection) => return Ok(Handled::Refused(rejection.into())),
            };
            if self.commit(saga_id, hot, events, now).await? {
                return Ok(Handled::Applied);
            }
        }
        self.hot.forget(saga_id);
        Err(Error::Corrupt {
            saga_id,
            reason: format!("lost {MAX_CONFLICT_RETRIES} append races in a row"),
        })
    }

    /// Appends `events` decided from `hot` (at `now`), then observes and acts on them. False
    /// when the append lost a race: the caller loads the saga again and decides again.
    async fn commit(
        &self,
        saga_id: Uuid,
        hot: hot::Hot,
        events: Vec<Occurred>,
        now: Timestamp,
    ) -> Result<bool> {
        let before = hot.state.clone();
        let state = events.iter().fold(hot.state, saga_core::evolve);
        let appended = self
            .store
            .append(
                saga_id,
                before.version,
                events.iter().map(to_new_event).collect(),
                summary(&state),
                now,
            )
            .await;
        match appended {
            Ok(_) => {}
            Err(crate::store::Error::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let trace = state.trace_context.as_deref().and_then(SagaTrace::parse);
        self.settle(before, state, &events, hot.was_stuck, trace.as_ref(), now)
            .await?;
        Ok(true)
    }

    /// What follows every stored decision, of a start or of any later input: `events`
    /// (decided from `before`, folding to `state`, recorded at `now`) are observed (metrics,
    /// the spans they end), the state stays hot, and their commands are published (in the
    /// saga's `trace`) and their timers armed.
    pub(super) async fn settle(
        &self,
        before: SagaState,
        state: SagaState,
        events: &[Occurred],
        was_stuck: bool,
        trace: Option<&SagaTrace>,
        now: Timestamp,
    ) -> Result<()> {
        let before_version = before.version;
        observe::observe(
            &self.metrics,
            observe::Decision {
                name: &state.name,
                version: state.definition_version,
                before,
                events,
                was_stuck,
                now,
            },
        );
        let saga_id = state.saga_id;
        let actions = saga_core::actions(&state, events);
        let was_stuck = was_stuck || state.status == Status::Stuck;
        // A snapshot is due when the log passed a multiple of `snapshot_every`; it is stored
        // after the commands are published, so it never delays them.
        let every = self.options.snapshot_every;
        let snapshot =
            (every > 0 && state.version / every > before_version / every).then(|| state.clone());
        // The state's timers replace those of the state before (a step that answered takes
        // its timeout with it, an ended saga leaves none); the actions only publish.
        self.timers.set(saga_id, state.version, state.timers());
        self.hot.put(hot::Hot { state, was_stuck });
        self.act(&actions, trace).await?;
        if let Some(state) = snapshot {
            self.take_snapshot(&state, was_stuck, now).await;
        }
        Ok(())
    }

    /// Publishes the commands of `actions` (in the saga's `trace`). Timers are set from the
    /// state by [`Self::settle`]; finishing needs no I/O: the status is stored with the events.
    async fn act(&self, actions: &[Action], trace: Option<&SagaTrace>) -> Result<()> {
        let mut commands = Vec::with_capacity(actions.len());
        for action in actions {
            match action {
                Action::SendCommand(c) | Action::SendCompensation(c) => commands.push(c),
                Action::ScheduleTimer { .. } | Action::Finish { .. } => {}
            }
        }
        self.transport.publish(&commands, trace).await?;
        Ok(())
    }
}

/// The stored form of a core event.
pub(super) fn to_new_event(occurred: &Occurred) -> NewEvent {
    NewEvent {
        event_type: occurred.event.type_name().to_string(),
        schema_version: occurred.event.schema_version(),
        payload: occurred.event.to_payload(),
        occurred_at: occurred.at,
    }
}

/// Decodes a saga's stored log into core events.
pub fn decode_all(saga_id: Uuid, events: &[StoredEvent]) -> Result<Vec<Occurred>> {
    events
        .iter()
        .map(|e| {
            Event::decode(&e.event_type, e.schema_version, &e.payload, &e.stored())
                .map(|event| Occurred {
                    at: e.occurred_at,
                    event,
                })
                .map_err(|err| Error::Corrupt {
                    saga_id,
                    reason: err.to_string(),
                })
        })
        .collect()
}
