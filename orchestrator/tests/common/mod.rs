//! What several test binaries of the orchestrator share: playing the participants.

use saga_orchestrator::runtime::Orchestrator;
use saga_orchestrator::store::EventStore;
use saga_orchestrator::transport::Transport;
use uuid::Uuid;

/// Plays every participant once: answers each command of saga `id` in flight with success
/// (an output every step of the repository's sagas can read). Whether there was one.
pub async fn answer<S: EventStore, T: Transport>(o: &Orchestrator<S, T>, id: Uuid) -> bool {
    let loaded = o.load(id).await.unwrap();
    let commands: Vec<_> = loaded.state.in_flight().cloned().collect();
    for command in &commands {
        let output = serde_json::json!({"reserved": 500, "order_id": "o-1"});
        let reply = saga_protocol::ReplyEnvelope::answering(
            command,
            saga_protocol::Outcome::Succeeded { output },
            saga_protocol::Timestamp::now(),
        );
        o.handle_reply(&reply).await.unwrap();
    }
    !commands.is_empty()
}

/// Plays every participant for up to `rounds` rounds, or until nothing is in flight.
#[allow(dead_code)]
pub async fn play<S: EventStore, T: Transport>(o: &Orchestrator<S, T>, id: Uuid, rounds: usize) {
    for _ in 0..rounds {
        if !answer(o, id).await {
            break;
        }
    }
}
