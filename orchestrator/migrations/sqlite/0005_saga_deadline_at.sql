-- When each saga's forward path must be done by, from its definition's deadline (sqlite).
-- Column and index names are a persisted contract.
--
-- Part of the read model: written once with the saga, from its SagaStarted event; NULL when the
-- definition has no deadline, and for sagas written before this migration. A saga still
-- running or compensating well past it (or past its start, without one) is overdue: the API,
-- the web UI and the saga_overdue gauge show it, so no saga runs on silently.
ALTER TABLE sagas ADD COLUMN deadline_at BIGINT;
