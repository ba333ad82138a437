-- Inventory participant: each show's seat map (seats held by reservations and sold, under
-- a version for optimistic concurrency) and the holds by effect key ('tombstone' rows mark a
-- release that came before its reservation). Table names are persisted contracts.
CREATE TABLE seat_maps (
    show_id  TEXT PRIMARY KEY,
    capacity BIGINT NOT NULL CHECK (capacity >= 0),
    held     BIGINT NOT NULL CHECK (held >= 0),
    sold     BIGINT NOT NULL CHECK (sold >= 0),
    version  BIGINT NOT NULL,
    CHECK (held + sold <= capacity)
);

CREATE TABLE seat_holds (
    effect_key     TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL UNIQUE,
    show_id        TEXT NOT NULL,
    seats          BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('held', 'released', 'sold', 'tombstone')),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
