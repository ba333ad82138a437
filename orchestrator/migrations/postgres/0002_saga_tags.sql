-- Search by input field (PostgreSQL). Table and column names are a persisted contract.
--
-- One row per top-level scalar field of a saga's start input (string, number, boolean), written
-- in the same transaction as the saga's creation and never changed afterwards, like the input.
-- created_at repeats the saga's, so "sagas with customer_id = alice, newest first" is one range
-- scan of the index below, whatever the number of sagas.
CREATE TABLE saga_tags (
    saga_id    TEXT   NOT NULL,
    key        TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (saga_id, key)
);

CREATE INDEX saga_tags_key_value_created_at ON saga_tags (key, value, created_at, saga_id);
-- Listing one definition version newest first.
CREATE INDEX sagas_name_version_created_at ON sagas (name, definition_version, created_at);

-- Sagas started before this migration: their input is in their SagaStarted event.
INSERT INTO saga_tags (saga_id, key, value, created_at)
SELECT e.saga_id, j.key, j.value, s.created_at
FROM saga_events e
JOIN sagas s ON s.saga_id = e.saga_id
-- jsonb_each_text fails on a non-object, so it only ever sees objects, whatever the plan.
CROSS JOIN LATERAL jsonb_each_text(
    CASE WHEN jsonb_typeof(e.payload::jsonb -> 'input') = 'object'
         THEN e.payload::jsonb -> 'input' ELSE '{}'::jsonb END) j
WHERE e.sequence = 1
  AND e.event_type = 'SagaStarted'
  AND jsonb_typeof(e.payload::jsonb -> 'input' -> j.key) IN ('string', 'number', 'boolean')
  AND length(j.value) <= 200;
