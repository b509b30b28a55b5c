-- The event log: the source of truth, and the outbox the relay publishes from.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream_type     text        NOT NULL,
    stream_id       uuid        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    prev_hash       bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (octet_length(hash) = 32),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    -- The optimistic-concurrency guard: two writers of the same version cannot both commit.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

-- Log order for gap-free readers: (transaction_id, position) over finished transactions.
CREATE INDEX events_log_order_idx ON events (transaction_id, position);

-- Values that must be unique across streams (a product's SKU), claimed in the same
-- statement as the events that introduce them.
CREATE TABLE unique_claims (
    scope      text NOT NULL,
    value      text NOT NULL,
    stream_id  uuid NOT NULL,
    CONSTRAINT unique_claims_pkey PRIMARY KEY (scope, value)
);

-- Responses of commands sent with an Idempotency-Key, written in the same statement as
-- their events, after them.
CREATE TABLE idempotency_keys (
    caller            text        NOT NULL,
    key               text        NOT NULL,
    request_hash      bytea       NOT NULL,
    status_code       smallint    NOT NULL,
    resource_id       uuid        NOT NULL,
    resource_version  bigint      NOT NULL,
    position          bigint      NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
