-- The email ledger: one row per (template, event) the email reactor decided to send, written
-- by its log follower in the same transaction as its checkpoint (so a replay, a restart or a
-- second instance adds nothing twice), then moved by the sender: `pending` → `sending` (a
-- lease, committed before the SMTP conversation) → `sent`, or back to `pending` with a later
-- `next_attempt_at`, or `failed` after the last attempt, or `skipped` (the customer was
-- erased, has no email address, or switched these emails off). No personal data: the
-- recipient is looked up (and decrypted) at send time only.
CREATE TABLE emails (
    id              uuid PRIMARY KEY,
    template        text        NOT NULL,
    event_id        uuid        NOT NULL,
    position        bigint      NOT NULL,
    order_id        uuid        NOT NULL,
    customer_id     text        NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}',
    status          text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (template, event_id)
);
CREATE INDEX emails_due_idx ON emails (next_attempt_at, position)
    WHERE status IN ('pending', 'sending');
CREATE INDEX emails_status_idx ON emails (status, created_at DESC, id);
