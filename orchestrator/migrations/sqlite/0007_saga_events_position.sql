-- The feed of every saga's events in commit order (SQLite). Table and column names are a
-- persisted contract.
--
-- `position` is handed out from the one row of saga_feed by an UPDATE in the appending
-- transaction, as on PostgreSQL (where global_position is not commit order): positions are
-- 1, 2, 3… in commit order, without holes. SQLite has one writer at a time, so here it is the
-- same order as global_position; one rule for both stores keeps one writer path.
CREATE TABLE saga_feed (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    head BIGINT  NOT NULL CHECK (head >= 0)
);

-- Nullable only because SQLite cannot add a NOT NULL column without a default; every writer
-- sets it, and the unique index below keeps it one per event.
ALTER TABLE saga_events ADD COLUMN position BIGINT;

UPDATE saga_events SET position = r.n
FROM (SELECT global_position AS g, ROW_NUMBER() OVER (ORDER BY global_position) AS n
      FROM saga_events) AS r
WHERE saga_events.global_position = r.g;

CREATE UNIQUE INDEX saga_events_position ON saga_events (position);

INSERT INTO saga_feed (id, head) SELECT 1, COALESCE(MAX(position), 0) FROM saga_events;
