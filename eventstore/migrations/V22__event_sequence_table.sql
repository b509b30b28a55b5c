-- The dense log sequence moves out of `events` into its own insert-only table.
--
-- Setting `events.sequence` after commit rewrote every event once more (a non-HOT update of
-- the whole row, its payload included, and of every index of `events`, through a row
-- trigger comparing the rows as JSON), which left a dead copy of each event for autovacuum
-- and capped the sequencer below the append rate. A narrow table of (sequence, position)
-- pairs is an append of 16 bytes per event instead. Readers join it
-- (`eventstore::row::EVENTS`, `eventstore::row::SEQUENCED_EVENTS`).
--
-- No foreign key to `events`: its check would lock each event's row (writing into the
-- event's page again). The sequencer is the only writer and takes positions from the log.
CREATE TABLE event_sequence (
    sequence        bigint PRIMARY KEY CHECK (sequence > 0),
    event_position  bigint NOT NULL,
    CONSTRAINT event_sequence_event_position_key UNIQUE (event_position)
);

INSERT INTO event_sequence (sequence, event_position)
SELECT sequence, position FROM events WHERE sequence IS NOT NULL;

DROP INDEX events_sequence_key;
ALTER TABLE events DROP COLUMN sequence;

-- Append-only, every row of it: no update at all is left on `events`, and the sequence and
-- the Merkle tree's nodes are only ever inserted. As for `events`, only a superuser can
-- switch the triggers off; the signed checkpoints catch what such an attacker changes.
CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER event_sequence_append_only_rows
    BEFORE UPDATE OR DELETE ON event_sequence
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER event_sequence_append_only_truncate
    BEFORE TRUNCATE ON event_sequence
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER merkle_nodes_append_only_rows
    BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER merkle_nodes_append_only_truncate
    BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
