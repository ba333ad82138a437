-- Snapshots of sagas' states (see saga_core::snapshot). Table and column names are a persisted
-- contract.
--
-- A cache: each row is the state folded from a saga's events 1..version, which a load uses
-- instead of folding them again. Nothing else reads it, so deleting any row, or all of them,
-- changes nothing but how long a load takes. schema_version is the snapshot's shape
-- (saga_core::snapshot::SNAPSHOT_SCHEMA): a row of another shape is not read.
CREATE TABLE saga_snapshots (
    saga_id         TEXT   PRIMARY KEY,
    version         BIGINT NOT NULL CHECK (version >= 1),
    schema_version  BIGINT NOT NULL,
    definition_hash TEXT,
    state           TEXT   NOT NULL,
    taken_at        BIGINT NOT NULL
);
