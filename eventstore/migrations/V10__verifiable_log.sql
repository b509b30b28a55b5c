-- The verifiable log (docs/AUDIT.md): a dense sequence over log order, the Merkle tree over
-- it, and signed checkpoints of the tree.

-- 1, 2, 3, ... in log order, without gaps; assigned after commit by the one sequencer.
ALTER TABLE events ADD COLUMN sequence bigint;
CREATE UNIQUE INDEX events_sequence_key ON events (sequence);

-- Where the sequencer stands: the last event it sequenced (log order) and the tree's size.
CREATE TABLE log_sequencer (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    transaction_id  bigint NOT NULL DEFAULT 0,
    position        bigint NOT NULL DEFAULT 0,
    tree_size       bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO log_sequencer DEFAULT VALUES;

-- Every complete (perfect, aligned) subtree of the Merkle tree: the node at `level` and
-- `idx` covers leaves [idx * 2^level, (idx + 1) * 2^level). Level 0 holds the leaf hashes.
-- Any root or proof needs O(log n) of these rows.
CREATE TABLE merkle_nodes (
    level  smallint NOT NULL CHECK (level >= 0 AND level < 63),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    hash   bytea    NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- The public keys checkpoints were signed with (the private key never enters the database).
CREATE TABLE log_signing_keys (
    key_id      text PRIMARY KEY,
    public_key  bytea NOT NULL CHECK (octet_length(public_key) = 32),
    first_used  timestamptz NOT NULL DEFAULT now()
);

-- Signed checkpoints: {tree_size, root_hash, timestamp} signed with Ed25519.
CREATE TABLE log_checkpoints (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tree_size   bigint NOT NULL CHECK (tree_size > 0),
    root_hash   bytea NOT NULL CHECK (octet_length(root_hash) = 32),
    signed_at   timestamptz NOT NULL,
    key_id      text NOT NULL REFERENCES log_signing_keys (key_id),
    signature   bytea NOT NULL CHECK (octet_length(signature) = 64)
);
