-- Processes that cache what they read of customers (their profile, their data key) must
-- hear when another process changes it. These triggers notify `agora_customers` in the
-- changing transaction itself, so the notice is sent exactly when the change commits:
-- `stream:<stream id>` for an event of a customer stream (a profile set, an erasure), and
-- `key:<customer id>` when a data key is changed or destroyed. Only these rare transactions
-- notify; appends of other events do not (see V3 for why appends in general never NOTIFY).
CREATE FUNCTION notify_customer_stream() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agora_customers', 'stream:' || NEW.stream_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER events_customer_changed
    AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.stream_type = 'customer')
    EXECUTE FUNCTION notify_customer_stream();

CREATE FUNCTION notify_customer_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agora_customers', 'key:' || OLD.customer_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER pii_keys_changed
    AFTER UPDATE OR DELETE ON pii_keys
    FOR EACH ROW EXECUTE FUNCTION notify_customer_key();
