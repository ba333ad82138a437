//! The state of sagas in flight, kept in memory so a reply needs no read of the store.
//!
//! The store stays the only source of truth: a cached state is a guess, checked by the
//! append's optimistic concurrency. The runtime decides on the cached state and appends with
//! the cached version; if another writer (an operator action, another replica) moved the saga
//! on, the append fails with a conflict and the runtime loads the saga from the store and
//! decides again. A cached state that decides nothing to append (a duplicate reply, a refused
//! input) is not trusted either: the runtime loads the saga and decides once more before it
//! answers `Unchanged` or `Refused`, so a stale entry can cost a read but never a wrong answer.
//!
//! An entry is *taken* out while its saga is handled and put back only after a successful
//! append, so an append whose outcome is unknown (an error) leaves nothing cached, and two
//! handlers of one saga (a reply and an operator action) never share an entry. Sagas that end
//! leave; when [`HotSagas::capacity`] entries are held, new ones are not cached (those sagas
//! are loaded from the store for each input, as if there were no cache).
//!
//! ```
//! # use saga_orchestrator::runtime::HotSagas;
//! let hot = HotSagas::new(10_000);
//! assert_eq!(hot.len(), 0);
//! ```

use saga_core::SagaState;
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// A saga's state as of its last append by this process.
#[derive(Debug, Clone)]
pub(crate) struct Hot {
    pub state: SagaState,
    /// Whether the saga was ever stuck (for the `recovered` metric).
    pub was_stuck: bool,
}

/// Sagas in flight by id; see the module docs.
#[derive(Debug)]
pub struct HotSagas {
    entries: Mutex<HashMap<Uuid, Hot>>,
    capacity: usize,
}

impl HotSagas {
    /// A cache of at most `capacity` sagas (0 turns it off).
    pub fn new(capacity: usize) -> Self {
        HotSagas {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Most sagas held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sagas held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no saga is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes saga `id` out, for the caller to handle.
    pub(crate) fn take(&self, id: Uuid) -> Option<Hot> {
        self.lock().remove(&id)
    }

    /// Puts a saga's state after an append: kept while it is active, dropped when it ended.
    pub(crate) fn put(&self, hot: Hot) {
        let mut entries = self.lock();
        let id = hot.state.saga_id;
        if hot.state.status.is_terminal() {
            entries.remove(&id);
        } else if entries.len() < self.capacity || entries.contains_key(&id) {
            entries.insert(id, hot);
        }
    }

    /// Forgets saga `id` (its stored state moved on without this process).
    pub(crate) fn forget(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Hot>> {
        // The map holds no invariant a panicking holder could break halfway.
        match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::Status;

    fn hot(status: Status) -> Hot {
        let mut state = SagaState::new(Uuid::new_v4());
        state.status = status;
        Hot {
            state,
            was_stuck: false,
        }
    }

    #[test]
    fn keeps_active_sagas_up_to_capacity_and_drops_ended_ones() {
        let cache = HotSagas::new(2);
        let (a, b, c) = (
            hot(Status::Running),
            hot(Status::Running),
            hot(Status::Running),
        );
        let (a_id, c_id) = (a.state.saga_id, c.state.saga_id);
        cache.put(a.clone());
        cache.put(b);
        cache.put(c);
        assert_eq!(cache.len(), 2, "a full cache takes no new saga");
        assert!(cache.take(c_id).is_none());

        let mut ended = a;
        ended.state.status = Status::Completed;
        cache.put(ended);
        assert!(cache.take(a_id).is_none(), "an ended saga leaves");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_taken_saga_is_gone_until_put_back() {
        let cache = HotSagas::new(10);
        let a = hot(Status::Compensating);
        let id = a.state.saga_id;
        cache.put(a);
        assert!(cache.take(id).is_some());
        assert!(cache.take(id).is_none());
        assert!(cache.is_empty());
    }
}
