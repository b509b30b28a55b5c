-- Reactors (asynchronous work): reservation expiry, the open-order limit, webhooks.

-- Reservation expiry: every order still `placed`, with the time it was placed. The expiry
-- reactor writes it from the log (OrderPlaced inserts, OrderPaid/OrderCancelled delete) in
-- the same transaction as its checkpoint, and cancels the rows older than the payment TTL.
CREATE TABLE order_expiries (
    order_id   uuid PRIMARY KEY,
    placed_at  timestamptz NOT NULL
);
CREATE INDEX order_expiries_placed_at ON order_expiries (placed_at);

-- The open-order limit: an order in `placed` holds one of its customer's slots, a unique
-- claim ('open_order', '<customer>#<slot>') taken in the statement that appends its
-- OrderPlaced (so the check and the append are one atomic step, across processes). The
-- claim is released in the transaction that records the order's OrderPaid or
-- OrderCancelled (by a payment, a cancel or the expiry reactor alike).
CREATE INDEX unique_claims_open_order ON unique_claims (stream_id) WHERE scope = 'open_order';

CREATE FUNCTION release_open_order_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM unique_claims WHERE scope = 'open_order' AND stream_id = NEW.stream_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER open_order_closed
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.stream_type = 'order' AND NEW.event_type IN ('OrderPaid', 'OrderCancelled'))
    EXECUTE FUNCTION release_open_order_claim();

-- Orders placed before this migration and still open hold slots too.
INSERT INTO unique_claims (scope, value, stream_id)
SELECT 'open_order',
       (p.payload ->> 'customer_id') || '#' ||
           (row_number() OVER (PARTITION BY p.payload ->> 'customer_id' ORDER BY p.position) - 1),
       p.stream_id
FROM events p
WHERE p.stream_type = 'order' AND p.event_type = 'OrderPlaced'
  AND NOT EXISTS (SELECT 1 FROM events later
                  WHERE later.stream_id = p.stream_id AND later.version > p.version)
ON CONFLICT DO NOTHING;

INSERT INTO order_expiries (order_id, placed_at)
SELECT p.stream_id, p.occurred_at
FROM events p
WHERE p.stream_type = 'order' AND p.event_type = 'OrderPlaced'
  AND NOT EXISTS (SELECT 1 FROM events later
                  WHERE later.stream_id = p.stream_id AND later.version > p.version)
ON CONFLICT DO NOTHING;

-- Webhooks. The secret is sealed (ChaCha20-Poly1305 with AGORA_WEBHOOK_KEY, which never
-- reaches the database; the subscription id is the associated data), so reading this
-- table does not give anyone a secret to sign with.
CREATE TABLE webhook_subscriptions (
    id             uuid PRIMARY KEY,
    url            text NOT NULL,
    event_types    text[] NOT NULL,
    secret_nonce   bytea NOT NULL,
    secret_sealed  bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per (subscription, event): the delivery log. `id` follows log order (the
-- fan-out inserts in log order), so per-stream order is `id` order within a stream.
CREATE TABLE webhook_deliveries (
    id                bigserial PRIMARY KEY,
    subscription_id   uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id          uuid NOT NULL,
    position          bigint NOT NULL,
    stream_id         uuid NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    last_status_code  integer,
    last_error        text,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_pending
    ON webhook_deliveries (subscription_id, stream_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (subscription_id, status, id);
