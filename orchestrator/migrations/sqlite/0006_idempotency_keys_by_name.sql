-- Idempotency keys are scoped by saga name (SQLite). Column and index names are a persisted
-- contract.
--
-- The same key may name one saga of each name: the unique constraint moves from
-- `idempotency_key` alone to `(name, idempotency_key)`. SQLite cannot drop a column's UNIQUE,
-- so the table is rebuilt with its rows, columns and indexes as they were. NULL keys (no key,
-- or a key released after its window) never collide.
CREATE TABLE sagas_by_name (
    saga_id            TEXT    PRIMARY KEY NOT NULL,
    name               TEXT    NOT NULL,
    definition_version INTEGER NOT NULL,
    status             TEXT    NOT NULL,
    version            BIGINT  NOT NULL CHECK (version >= 0),
    idempotency_key    TEXT,
    input_digest       TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    due_at             BIGINT,
    deadline_at        BIGINT
);

INSERT INTO sagas_by_name (saga_id, name, definition_version, status, version, idempotency_key,
                           input_digest, created_at, updated_at, due_at, deadline_at)
SELECT saga_id, name, definition_version, status, version, idempotency_key,
       input_digest, created_at, updated_at, due_at, deadline_at
FROM sagas;

DROP TABLE sagas;
ALTER TABLE sagas_by_name RENAME TO sagas;

CREATE INDEX sagas_status_created_at ON sagas (status, created_at);
CREATE INDEX sagas_name_created_at ON sagas (name, created_at);
CREATE INDEX sagas_created_at ON sagas (created_at);
CREATE INDEX sagas_name_version_created_at ON sagas (name, definition_version, created_at);
CREATE INDEX sagas_due_at ON sagas (due_at) WHERE due_at IS NOT NULL;
CREATE UNIQUE INDEX sagas_name_idempotency_key ON sagas (name, idempotency_key);
