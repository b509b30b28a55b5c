-- Snapshots of aggregates: an optimization only. The newest usable snapshot plus the events
-- after it is a stream's state; `fold_version` names the fold that wrote it, so a changed
-- fold, schema or upcaster makes old snapshots unusable instead of wrong. Any row may be
-- deleted at any time (they are rebuilt as streams are used).
CREATE TABLE snapshots (
    stream_id     uuid        PRIMARY KEY,
    stream_type   text        NOT NULL,
    fold_version  bigint      NOT NULL,
    version       bigint      NOT NULL CHECK (version > 0),
    last_hash     bytea       NOT NULL CHECK (octet_length(last_hash) = 32),
    state         jsonb       NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now()
);
