-- The event log is append-only in the database itself: UPDATE, DELETE and TRUNCATE on
-- `events` are refused for every role, the table's owner included. Triggers fire for the
-- owner too; only a superuser can switch them off (session_replication_role = replica,
-- ALTER TABLE ... DISABLE TRIGGER): that is the attacker the signed checkpoints of the
-- verifiable log exist for (docs/AUDIT.md).
--
-- One update stays possible: setting an event's `sequence` (the dense log index the
-- sequencer assigns after commit) once, from NULL, with every other column unchanged.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND coalesce(to_jsonb(OLD) -> 'sequence', 'null'::jsonb) = 'null'::jsonb
       AND (to_jsonb(NEW) - 'sequence') = (to_jsonb(OLD) - 'sequence') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only_rows
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_append_only_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
