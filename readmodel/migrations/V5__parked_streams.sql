-- Parked streams: an event a projection cannot apply parks its stream for that projection
-- version. Later events of the stream are held (recorded here, not applied) while every
-- other stream goes on; the projector applies them, in order, when the stream is retried
-- (by an admin, or at its next start) and the cause is gone. An admin may skip the event
-- that parked it, with a reason; every retry and skip is kept in parked_actions.

CREATE TABLE read_model.parked_streams (
    projection     text        NOT NULL,
    version        integer     NOT NULL,
    stream_id      uuid        NOT NULL,
    -- The event that could not be applied (the first one held) and why.
    event_id       uuid        NOT NULL,
    stream_version bigint      NOT NULL,
    event_type     text        NOT NULL,
    error          text        NOT NULL,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    -- When the last retry failed again (null: not retried yet).
    retried_at     timestamptz,
    PRIMARY KEY (projection, version, stream_id)
);
COMMENT ON TABLE read_model.parked_streams IS
    'Streams a projection version stopped applying at an event it could not apply (see read_model.held_events).';

-- The events of a parked stream the projection has not applied, in stream order: the one
-- that parked it and every later one its source delivered since. Their content stays in the
-- event store; a retry reads it from there.
CREATE TABLE read_model.held_events (
    projection      text        NOT NULL,
    version         integer     NOT NULL,
    stream_id       uuid        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    source_position text        NOT NULL,
    held_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, version, stream_id, stream_version)
);

-- Admins' requests (from the query API) and what the projector made of them: the audit
-- trail of every retry and skip.
CREATE TABLE read_model.parked_actions (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection   text        NOT NULL,
    stream_id    uuid        NOT NULL,
    action       text        NOT NULL CHECK (action IN ('retry', 'skip')),
    reason       text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    -- Filled in by the projector: the projection version and the event skipped (skip),
    -- when it was done and how it ended.
    version      integer,
    skipped_event_id uuid,
    done_at      timestamptz,
    outcome      text
);
CREATE INDEX parked_actions_pending ON read_model.parked_actions (id) WHERE done_at IS NULL;
