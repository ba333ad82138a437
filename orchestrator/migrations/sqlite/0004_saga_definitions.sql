-- Every saga definition version the orchestrator loaded (SQLite). Table and column names are a
-- persisted contract.
--
-- A saga runs on the exact definition it started with, whatever later happens to the files:
-- source is the TOML text the version was validated from, hash the sha256 (hex) of the
-- validated definition's canonical form (what SagaStarted.definition_hash names). A row is
-- inserted once and never changed, except retired_at: set when an operator retires a version
-- that has no saga in flight, after which it cannot be started. Rows are never deleted, so the
-- history of every saga stays readable. Times are milliseconds since the epoch.
CREATE TABLE saga_definitions (
    name       TEXT   NOT NULL,
    version    BIGINT NOT NULL CHECK (version >= 0),
    hash       TEXT   NOT NULL,
    source     TEXT   NOT NULL,
    stored_at  BIGINT NOT NULL,
    retired_at BIGINT,
    PRIMARY KEY (name, version)
);
