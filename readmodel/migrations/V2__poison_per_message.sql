-- Every poison message is recorded, not only the first unreadable one per projection.
--
-- An event a projection cannot apply is still recorded once per projection version, by its
-- id, however often a source delivers it. A Kafka message too unreadable to name its event
-- carries the nil id; such messages used to share one key, so only the first was kept. They
-- are now told apart by where they sit in their source.
ALTER TABLE read_model.poison_events
    ADD COLUMN source_position text NOT NULL DEFAULT '';
COMMENT ON COLUMN read_model.poison_events.source_position IS
    'Where the event was read: `log <transaction_id>/<position>` or `kafka <topic>/<partition>@<offset>` ('''' for rows recorded before this column).';

ALTER TABLE read_model.poison_events DROP CONSTRAINT poison_events_pkey;
CREATE UNIQUE INDEX poison_events_event_key ON read_model.poison_events (projection, version, event_id)
    WHERE event_id <> '00000000-0000-0000-0000-000000000000';
CREATE UNIQUE INDEX poison_events_message_key ON read_model.poison_events (projection, version, source_position)
    WHERE event_id = '00000000-0000-0000-0000-000000000000';
