-- Participant schema (PostgreSQL). Table names and event type tags are persisted contracts.

-- Durable inbox: one row per handled message id, with the reply recorded the first time.
CREATE TABLE inbox (
    message_id  TEXT PRIMARY KEY,
    reply       TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- Account participant: append-only event log, its projection, and reservations by effect key.
CREATE TABLE account_events (
    account_id  TEXT NOT NULL,
    sequence    BIGINT NOT NULL,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, sequence)
);

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY,
    available  BIGINT NOT NULL CHECK (available >= 0),
    reserved   BIGINT NOT NULL CHECK (reserved >= 0),
    deposited  BIGINT NOT NULL CHECK (deposited >= 0),
    version    BIGINT NOT NULL
);

CREATE TABLE reservations (
    effect_key TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('reserved', 'released', 'tombstone')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Order participant: orders by effect key ('tombstone' rows mark a compensation that came
-- first) and the append-only order event log.
CREATE TABLE orders (
    order_id    TEXT PRIMARY KEY,
    effect_key  TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    status      TEXT NOT NULL
        CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled', 'tombstone')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE order_events (
    order_id    TEXT NOT NULL,
    sequence    BIGINT NOT NULL,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, sequence)
);
