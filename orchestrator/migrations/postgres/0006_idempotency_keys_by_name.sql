-- Idempotency keys are scoped by saga name (PostgreSQL). Column and index names are a
-- persisted contract.
--
-- The same key may name one saga of each name: the unique constraint moves from
-- `idempotency_key` alone to `(name, idempotency_key)`. NULL keys (no key, or a key released
-- after its window) never collide.
ALTER TABLE sagas DROP CONSTRAINT IF EXISTS sagas_idempotency_key_key;
CREATE UNIQUE INDEX sagas_name_idempotency_key ON sagas (name, idempotency_key);
