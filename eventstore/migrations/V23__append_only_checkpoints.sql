-- The signed checkpoints and the public keys they were signed with are append-only, like the
-- events, their sequence and the tree's nodes (V5, V22): UPDATE, DELETE and TRUNCATE are
-- refused for every role, the tables' owner included. A superuser can still switch the
-- triggers off; what they can do then is in docs/AUDIT.md (they cannot forge a signature,
-- and the signer keeps its last checkpoint outside the database).
CREATE TRIGGER log_checkpoints_append_only_rows
    BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER log_checkpoints_append_only_truncate
    BEFORE TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER log_signing_keys_append_only_rows
    BEFORE UPDATE OR DELETE ON log_signing_keys
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER log_signing_keys_append_only_truncate
    BEFORE TRUNCATE ON log_signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
