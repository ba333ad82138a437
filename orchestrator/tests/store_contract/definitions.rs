//! The contract of the stored definitions (`saga_definitions`): written once, listed with the
//! sagas in flight of each version, retired only when none is.

use super::{create_one, event};
use saga_orchestrator::store::{
    DefinitionUse, EventStore, NewDefinition, Retirement, StoredDefinition,
};
use saga_protocol::Timestamp;

const IN_FLIGHT: [&str; 3] = ["running", "compensating", "stuck"];

fn definition(name: &str, version: u32, hash: &str) -> NewDefinition {
    NewDefinition {
        name: name.to_string(),
        version,
        hash: hash.to_string(),
        source: format!("[saga]\nname = \"{name}\"\nversion = {version}\n# é✓\n"),
        stored_at: Timestamp(1_000 + i64::from(version)),
    }
}

fn stored(d: &NewDefinition) -> StoredDefinition {
    StoredDefinition {
        name: d.name.clone(),
        version: d.version,
        hash: d.hash.clone(),
        source: d.source.clone(),
        stored_at: d.stored_at,
        retired_at: None,
    }
}

pub async fn a_definition_is_stored_once_and_read_back<S: EventStore>(store: S) {
    let v1 = definition("order", 1, "aa11");
    assert_eq!(store.put_definition(v1.clone()).await.unwrap(), stored(&v1));
    assert_eq!(
        store.definition("order", 1).await.unwrap(),
        Some(stored(&v1))
    );
    // The same (name, version) with other content: the first row stays and is returned.
    let other = NewDefinition {
        hash: "bb22".into(),
        source: "changed".into(),
        stored_at: Timestamp(9_000),
        ..v1.clone()
    };
    assert_eq!(store.put_definition(other).await.unwrap(), stored(&v1));
    assert_eq!(
        store.definition("order", 1).await.unwrap(),
        Some(stored(&v1))
    );
    assert_eq!(store.definition("order", 2).await.unwrap(), None);
    assert_eq!(store.definition("other", 1).await.unwrap(), None);

    let v2 = definition("order", 2, "cc33");
    let a = definition("a_first", 7, "dd44");
    store.put_definition(v2.clone()).await.unwrap();
    store.put_definition(a.clone()).await.unwrap();
    let listed: Vec<DefinitionUse> = store.definitions(&IN_FLIGHT).await.unwrap();
    let expected: Vec<DefinitionUse> = [&a, &v1, &v2]
        .into_iter()
        .map(|d| DefinitionUse {
            definition: stored(d),
            in_flight: 0,
        })
        .collect();
    assert_eq!(listed, expected, "by name, then version");
}

pub async fn definitions_count_their_sagas_in_flight<S: EventStore>(store: S) {
    // create_one makes sagas of `order` version 3.
    store
        .put_definition(definition("order", 3, "aa"))
        .await
        .unwrap();
    store
        .put_definition(definition("order", 4, "bb"))
        .await
        .unwrap();
    for (status, at) in [
        ("running", 1),
        ("compensating", 2),
        ("stuck", 3),
        ("completed", 4),
        ("compensated", 5),
        ("aborted", 6),
    ] {
        create_one(&store, status, at).await;
    }
    let counts: Vec<(u32, u64)> = store
        .definitions(&IN_FLIGHT)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.definition.version, d.in_flight))
        .collect();
    assert_eq!(counts, [(3, 3), (4, 0)]);
    let running_only: Vec<u64> = store
        .definitions(&["running"])
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.in_flight)
        .collect();
    assert_eq!(running_only, [1, 0]);
}

pub async fn a_version_is_retired_only_without_sagas_in_flight<S: EventStore>(store: S) {
    let v3 = definition("order", 3, "aa");
    store.put_definition(v3.clone()).await.unwrap();
    let id = create_one(&store, "running", 1_000).await;
    let refused = store
        .retire_definition("order", 3, &IN_FLIGHT, Timestamp(2_000))
        .await
        .unwrap();
    assert_eq!(refused, Retirement::InFlight(1));
    assert_eq!(
        store
            .definition("order", 3)
            .await
            .unwrap()
            .unwrap()
            .retired_at,
        None,
        "a refused retirement changes nothing"
    );

    store
        .append(
            id,
            1,
            vec![event("SagaCompleted", 1)],
            "completed",
            Timestamp(3_000),
        )
        .await
        .unwrap();
    let retired = StoredDefinition {
        retired_at: Some(Timestamp(4_000)),
        ..stored(&v3)
    };
    assert_eq!(
        store
            .retire_definition("order", 3, &IN_FLIGHT, Timestamp(4_000))
            .await
            .unwrap(),
        Retirement::Retired(retired.clone())
    );
    // Again: still retired, since the first time.
    assert_eq!(
        store
            .retire_definition("order", 3, &IN_FLIGHT, Timestamp(5_000))
            .await
            .unwrap(),
        Retirement::Retired(retired.clone())
    );
    assert_eq!(store.definition("order", 3).await.unwrap(), Some(retired));
    assert_eq!(
        store
            .retire_definition("order", 9, &IN_FLIGHT, Timestamp(5_000))
            .await
            .unwrap(),
        Retirement::Unknown
    );
    // The saga's log is untouched by it.
    let (record, events) = store.load(id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), events.len()), ("completed", 2));
}
