-- The orchestrator's event store (PostgreSQL). Table and column names are a persisted contract.
--
-- saga_events is the source of truth and is append-only: rows are inserted, never updated or
-- deleted. UNIQUE (saga_id, sequence) is the optimistic-concurrency guard: two writers that both
-- believe they append sequence n cannot both commit.
--
-- Integers are BIGINT throughout: the Rust side binds i64, and u32 versions do not fit INTEGER.
-- global_position comes from a sequence, so it increases with insertion but is not commit order
-- and may have gaps (rolled-back appends consume values).
CREATE TABLE saga_events (
    global_position BIGSERIAL PRIMARY KEY,
    saga_id         TEXT   NOT NULL,
    sequence        BIGINT NOT NULL CHECK (sequence >= 1),
    event_type      TEXT   NOT NULL,
    schema_version  BIGINT NOT NULL,
    payload         TEXT   NOT NULL,
    occurred_at     BIGINT NOT NULL,
    recorded_at     BIGINT NOT NULL,
    UNIQUE (saga_id, sequence)
);

-- Read model, one row per saga, written in the same transaction as every append, so `version`
-- always equals the sequence of the saga's last committed event. It is a projection: it can be
-- rebuilt from saga_events.
CREATE TABLE sagas (
    saga_id            TEXT   PRIMARY KEY,
    name               TEXT   NOT NULL,
    definition_version BIGINT NOT NULL,
    status             TEXT   NOT NULL,
    version            BIGINT NOT NULL CHECK (version >= 0),
    idempotency_key    TEXT   UNIQUE,
    input_digest       TEXT   NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- Recovery on start-up ("every saga not yet finished, oldest first").
CREATE INDEX sagas_status_created_at ON sagas (status, created_at);
-- Listing by saga name, and listing everything newest first.
CREATE INDEX sagas_name_created_at ON sagas (name, created_at);
CREATE INDEX sagas_created_at ON sagas (created_at);
