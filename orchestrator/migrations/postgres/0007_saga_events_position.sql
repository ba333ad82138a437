-- The feed of every saga's events in commit order (postgres). Table and column names are a
-- persisted contract.
--
-- global_position comes from a sequence: concurrent appends take their values in one order and
-- commit in another, and a rolled-back append leaves a hole, so a reader tailing it could skip
-- an event that commits late. `position` is handed out instead from the one row of saga_feed,
-- by an UPDATE in the appending transaction just before it commits: that row's lock makes the
-- next writer wait until this one committed or rolled back, so positions are 1, 2, 3… in commit
-- order, without holes, and a reader that has seen position p has seen every position below it.
CREATE TABLE saga_feed (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    head BIGINT NOT NULL CHECK (head >= 0)
);

ALTER TABLE saga_events ADD COLUMN position BIGINT;

-- Events stored before: numbered in the order of their global_position (all of them committed).
UPDATE saga_events e SET position = r.n
FROM (SELECT global_position, ROW_NUMBER() OVER (ORDER BY global_position) AS n FROM saga_events) r
WHERE e.global_position = r.global_position;

ALTER TABLE saga_events ALTER COLUMN position SET NOT NULL;
CREATE UNIQUE INDEX saga_events_position ON saga_events (position);

INSERT INTO saga_feed (id, head) SELECT 1, COALESCE(MAX(position), 0) FROM saga_events;
