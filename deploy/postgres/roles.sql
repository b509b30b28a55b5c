-- Least-privilege roles for Agora's services. Run it as the owner of the tables (the
-- role that ran `agora migrate`), after the migrations, in the event store's database and
-- in the read models' database (the same one when READ_DATABASE_URL is unset). It is
-- idempotent: run it again after every upgrade that adds tables.
--
-- It makes five group roles (NOLOGIN); give each service a login role in one of them:
--
--   CREATE ROLE command_api LOGIN PASSWORD '…' IN ROLE agora_writer;
--   CREATE ROLE log_signer  LOGIN PASSWORD '…' IN ROLE agora_sequencer;  -- AGORA_SEQUENCER_DATABASE_URL
--   CREATE ROLE projector   LOGIN PASSWORD '…' IN ROLE agora_projector;
--   CREATE ROLE query_api   LOGIN PASSWORD '…' IN ROLE agora_reader, agora_auditor;
--   CREATE ROLE auditor     LOGIN PASSWORD '…' IN ROLE agora_auditor;
--
-- | role            | may                                                                  |
-- |-----------------|----------------------------------------------------------------------|
-- | agora_writer    | append events (INSERT, never UPDATE/DELETE: the table refuses them   |
-- |                 | for everyone anyway), claims, idempotency records, snapshots, the    |
-- |                 | relay's checkpoint and the other tables of the write side; it reads   |
-- |                 | the log's sequence, tree and checkpoints but writes none of them      |
-- | agora_sequencer | read events; number them (event_sequence), grow the Merkle tree       |
-- |                 | (merkle_nodes), advance log_sequencer, store signed checkpoints and   |
-- |                 | signing keys: the only role that may write these (all append-only     |
-- |                 | but log_sequencer, whose guard the signer checks against what it      |
-- |                 | computed itself)                                                      |
-- | agora_projector | read events; write the read models (and create their rebuilt tables) |
-- | agora_reader    | read the read models, and customers' wrapped data keys (to open      |
-- |                 | personal data with AGORA_PII_KEY); record admins' retries and skips  |
-- |                 | of parked streams (read_model.parked_actions)                        |
-- | agora_auditor   | read events and what proves them; write nothing; no data keys        |
--
-- None of them owns a table, so none can ALTER, DROP, disable a trigger or TRUNCATE.

DO $roles$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['agora_writer', 'agora_sequencer', 'agora_projector',
                                'agora_reader', 'agora_auditor']
    LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- made by an earlier run, or by a concurrent one
        END;
    END LOOP;
END
$roles$;

DO $connect$
BEGIN
    EXECUTE format(
        'GRANT CONNECT ON DATABASE %I TO agora_writer, agora_sequencer, agora_projector, '
        'agora_reader, agora_auditor',
        current_database());
END
$connect$;

-- The event store (public schema) -----------------------------------------------------------
DO $event_store$
DECLARE
    table_name text;
BEGIN
    IF to_regclass('public.events') IS NULL THEN
        RETURN; -- a read-model-only database
    END IF;
    GRANT USAGE ON SCHEMA public TO agora_writer, agora_sequencer, agora_projector, agora_auditor;
    -- Every service checks at start that no migration is pending.
    GRANT SELECT ON public.refinery_schema_history
        TO agora_writer, agora_sequencer, agora_projector, agora_auditor;

    -- The writer: append only.
    GRANT SELECT, INSERT ON public.events TO agora_writer;
    GRANT SELECT, INSERT ON public.unique_claims TO agora_writer;
    GRANT SELECT, INSERT, DELETE ON public.idempotency_keys TO agora_writer;
    GRANT SELECT, INSERT, UPDATE, DELETE ON public.snapshots TO agora_writer;
    GRANT SELECT, INSERT, UPDATE ON public.relay_checkpoints TO agora_writer;
    -- Tables of later features (the log's sequence and checkpoints, reactors, webhooks)
    -- belong to the write side too: the writer keeps them (the log itself and the claims
    -- stay append-only for it).
    FOR table_name IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND c.relname NOT IN ('events', 'unique_claims', 'idempotency_keys', 'snapshots',
                                'relay_checkpoints', 'refinery_schema_history',
                                'event_sequence', 'merkle_nodes', 'log_sequencer',
                                'log_checkpoints', 'log_signing_keys', 'pii_keys')
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO agora_writer', table_name);
        EXECUTE format('GRANT SELECT ON public.%I TO agora_auditor', table_name);
    END LOOP;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO agora_writer, agora_sequencer;
    -- The sequencer numbers the log, grows its Merkle tree and signs checkpoints, over a
    -- connection of its own (AGORA_SEQUENCER_DATABASE_URL): only its role may write these
    -- tables. The writer (the command API's requests) and the auditor only read them; an
    -- earlier version of this script let the writer insert, which is taken back here.
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE
        ON public.event_sequence, public.merkle_nodes, public.log_sequencer,
           public.log_checkpoints, public.log_signing_keys
        FROM agora_writer, agora_auditor, agora_projector, agora_reader;
    GRANT SELECT ON public.event_sequence, public.merkle_nodes, public.log_sequencer,
                    public.log_checkpoints, public.log_signing_keys
        TO agora_writer, agora_auditor, agora_sequencer;
    GRANT SELECT ON public.events TO agora_sequencer;
    GRANT SELECT, INSERT ON public.event_sequence, public.merkle_nodes,
                            public.log_checkpoints, public.log_signing_keys
        TO agora_sequencer;
    GRANT UPDATE ON public.log_sequencer TO agora_sequencer;

    -- Readers of the log: the projector (on the Postgres log) and the auditor. Event
    -- queries join each event's sequence.
    GRANT SELECT ON public.events, public.event_sequence TO agora_projector, agora_auditor;

    -- Customers' data keys (wrapped): the writer makes and destroys them; the query API
    -- (agora_reader) reads them to open personal data. Auditors and projectors never need
    -- them: they see personal data sealed.
    IF to_regclass('public.pii_keys') IS NOT NULL THEN
        GRANT SELECT, INSERT, UPDATE ON public.pii_keys TO agora_writer;
        REVOKE DELETE, TRUNCATE ON public.pii_keys FROM agora_writer;
        REVOKE ALL ON public.pii_keys FROM agora_auditor, agora_projector;
        GRANT USAGE ON SCHEMA public TO agora_reader;
        GRANT SELECT ON public.pii_keys TO agora_reader;
    END IF;
END
$event_store$;

-- The read models (schema read_model) --------------------------------------------------------
DO $read_models$
BEGIN
    IF to_regnamespace('read_model') IS NULL THEN
        RETURN; -- an event-store-only database
    END IF;
    GRANT USAGE ON SCHEMA read_model TO agora_projector, agora_reader;
    GRANT USAGE ON SCHEMA public TO agora_projector, agora_reader;
    -- Services check at start that no read-model migration is pending.
    GRANT SELECT ON public.read_model_migrations TO agora_projector, agora_reader;
    GRANT CREATE ON SCHEMA read_model TO agora_projector;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA read_model TO agora_projector;
    GRANT SELECT ON ALL TABLES IN SCHEMA read_model TO agora_reader;
    -- Tables the owner creates later (a rebuild's new version) get the same grants.
    ALTER DEFAULT PRIVILEGES IN SCHEMA read_model
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO agora_projector;
    ALTER DEFAULT PRIVILEGES IN SCHEMA read_model GRANT SELECT ON TABLES TO agora_reader;
    -- The query API records admins' retries and skips of parked streams (the projector
    -- carries them out); it writes nothing else.
    IF to_regclass('read_model.parked_actions') IS NOT NULL THEN
        GRANT INSERT ON read_model.parked_actions TO agora_reader;
        EXECUTE format('GRANT USAGE ON SEQUENCE %s TO agora_reader',
                       pg_get_serial_sequence('read_model.parked_actions', 'id'));
    END IF;
END
$read_models$;
