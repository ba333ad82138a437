-- The archive of finished sagas (SQLite). Table and column names are a persisted contract.
--
-- A saga completed, compensated or aborted longer ago than the retention window (and whose
-- idempotency key's window has passed) is moved here, whole, in one transaction: its sagas row
-- to saga_archive (with its tags as a JSON array of [key, value] pairs and when it was moved),
-- its events to saga_archive_events with every column as it was (sequence, positions, payload,
-- times), and its tags and snapshot are deleted. The move is the only thing that ever deletes
-- from saga_events. Nothing in flight is moved (running, compensating and stuck sagas stay), so
-- the runtime never reads these tables; `saga history`, the API's saga and event views and the
-- feed (GET /v1/events, by position) read them, so an archived saga looks as it did.
CREATE TABLE saga_archive (
    saga_id            TEXT    PRIMARY KEY,
    name               TEXT    NOT NULL,
    definition_version INTEGER NOT NULL,
    status             TEXT    NOT NULL,
    version            BIGINT  NOT NULL CHECK (version >= 0),
    idempotency_key    TEXT,
    input_digest       TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    deadline_at        BIGINT,
    tags               TEXT    NOT NULL,
    archived_at        BIGINT  NOT NULL
);

CREATE INDEX saga_archive_archived_at ON saga_archive (archived_at);

CREATE TABLE saga_archive_events (
    saga_id         TEXT    NOT NULL,
    sequence        BIGINT  NOT NULL CHECK (sequence >= 1),
    global_position BIGINT  NOT NULL,
    position        BIGINT  NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    occurred_at     BIGINT  NOT NULL,
    recorded_at     BIGINT  NOT NULL,
    PRIMARY KEY (saga_id, sequence)
);

-- The feed reads the archived events by position, beside the hot ones.
CREATE UNIQUE INDEX saga_archive_events_position ON saga_archive_events (position);
