-- Where the Kafka relay stands in log order; saved only after the broker acknowledged.
CREATE TABLE relay_checkpoints (
    name            text PRIMARY KEY,
    transaction_id  bigint NOT NULL DEFAULT 0,
    position        bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Wakes log followers (the relay, projectors on the log) when events commit. NOTIFY is
-- delivered at commit and folded per transaction, so this costs one notification per
-- appending transaction.
CREATE FUNCTION notify_events_appended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agora_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appended
    AFTER INSERT ON events
    FOR EACH STATEMENT
    EXECUTE FUNCTION notify_events_appended();
