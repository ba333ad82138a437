-- Pruning the inbox past its window reads the entries by when they were received (see
-- saga_participants::retention). Index names are a persisted contract.
CREATE INDEX inbox_received_at ON inbox (received_at);
