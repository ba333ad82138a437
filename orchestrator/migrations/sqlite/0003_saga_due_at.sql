-- When each saga's earliest pending timer falls due (SQLite). Column and index names are a
-- persisted contract.
--
-- Part of the read model: written in the same transaction as every append, from the state the
-- events fold to (a step's timeout or retry, the saga's deadline), NULL when the saga has no
-- timer. The replica that owns a saga's partition polls it, so a timer armed by another replica
-- (or by one that died) still fires. Sagas written before this migration have NULL until
-- their next append; their timers are armed from their events when a replica takes over their
-- partition.
ALTER TABLE sagas ADD COLUMN due_at BIGINT;

CREATE INDEX sagas_due_at ON sagas (due_at) WHERE due_at IS NOT NULL;
