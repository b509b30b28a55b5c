-- Read models, in their own schema. Each projection's tables carry its version in their
-- name (`products_v1`); the query API reads the views (`products`), which a rebuild
-- switches to a new version atomically.
CREATE SCHEMA IF NOT EXISTS read_model;

-- Which version of each projection is live, and which are being built.
CREATE TABLE read_model.projections (
    name            text PRIMARY KEY,
    active_version  integer NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Where each projection version stands in its source, saved in the same transaction as
-- the rows it produced. source = 'log' (partition '' with the (transaction_id, position)
-- pair) or 'kafka' (partition '<topic>/<n>' with the next offset to read).
CREATE TABLE read_model.checkpoints (
    projection      text    NOT NULL,
    version         integer NOT NULL,
    source          text    NOT NULL,
    partition_key   text    NOT NULL,
    transaction_id  bigint  NOT NULL DEFAULT 0,
    position        bigint  NOT NULL DEFAULT 0,
    kafka_offset    bigint  NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, version, source, partition_key)
);

-- Events a projection could not apply: recorded, counted, skipped.
CREATE TABLE read_model.poison_events (
    projection   text        NOT NULL,
    version      integer     NOT NULL,
    event_id     uuid        NOT NULL,
    stream_id    uuid        NOT NULL,
    stream_version bigint    NOT NULL,
    event_type   text        NOT NULL,
    error        text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, version, event_id)
);

-- products: one row per product.
CREATE TABLE read_model.products_v1 (
    id            uuid PRIMARY KEY,
    sku           text    NOT NULL,
    name          text    NOT NULL,
    price_cents   bigint  NOT NULL,
    currency      text    NOT NULL,
    on_hand       bigint  NOT NULL,
    reserved      bigint  NOT NULL,
    discontinued  boolean NOT NULL DEFAULT false,
    version       bigint  NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX products_v1_sku_idx ON read_model.products_v1 (sku);

-- orders: summary and detail. lines = [{"product_id", "quantity", "unit_price_cents"}].
CREATE TABLE read_model.orders_v1 (
    id               uuid PRIMARY KEY,
    customer_id      text   NOT NULL,
    status           text   NOT NULL,
    total_cents      bigint NOT NULL,
    currency         text   NOT NULL,
    placed_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL,
    lines            jsonb  NOT NULL,
    payment_ref      text,
    carrier          text,
    tracking_number  text,
    refunded_cents   bigint
);
CREATE INDEX orders_v1_placed_idx ON read_model.orders_v1 (placed_at DESC, id DESC);
CREATE INDEX orders_v1_customer_idx ON read_model.orders_v1 (customer_id, placed_at DESC, id DESC);
CREATE INDEX orders_v1_status_idx ON read_model.orders_v1 (status, placed_at DESC, id DESC);

-- sales: per hour and per day bucket. orders_placed counts at placing time; orders_paid,
-- revenue (payments minus refunds) and units count at paying time: a refund is taken off
-- the bucket its payment was counted in.
CREATE TABLE read_model.sales_v1 (
    bucket         text        NOT NULL CHECK (bucket IN ('hour', 'day')),
    start          timestamptz NOT NULL,
    orders_placed  bigint      NOT NULL DEFAULT 0,
    orders_paid    bigint      NOT NULL DEFAULT 0,
    revenue_cents  bigint      NOT NULL DEFAULT 0,
    units_sold     bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, start)
);
-- What the sales projection remembers per order: the version it reflects (replays are
-- harmless) and what it needs to take a refund off the right bucket.
CREATE TABLE read_model.sales_v1_orders (
    order_id     uuid PRIMARY KEY,
    version      bigint NOT NULL,
    total_cents  bigint NOT NULL,
    units        bigint NOT NULL,
    lines        jsonb  NOT NULL,
    paid_at      timestamptz
);

-- top products: units and revenue from paid orders (refunds taken off), with the
-- product's current SKU and name.
CREATE TABLE read_model.top_products_v1 (
    product_id     uuid PRIMARY KEY,
    sku            text   NOT NULL DEFAULT '',
    name           text   NOT NULL DEFAULT '',
    units_sold     bigint NOT NULL DEFAULT 0,
    revenue_cents  bigint NOT NULL DEFAULT 0,
    product_version bigint NOT NULL DEFAULT 0
);
CREATE INDEX top_products_v1_revenue_idx ON read_model.top_products_v1 (revenue_cents DESC, product_id);
CREATE TABLE read_model.top_products_v1_orders (
    order_id  uuid PRIMARY KEY,
    version   bigint NOT NULL,
    lines     jsonb  NOT NULL,
    paid      boolean NOT NULL DEFAULT false
);

CREATE VIEW read_model.products AS SELECT * FROM read_model.products_v1;
CREATE VIEW read_model.orders AS SELECT * FROM read_model.orders_v1;
CREATE VIEW read_model.sales AS SELECT * FROM read_model.sales_v1;
CREATE VIEW read_model.top_products AS SELECT * FROM read_model.top_products_v1;

INSERT INTO read_model.projections (name, active_version) VALUES
    ('products', 1), ('orders', 1), ('sales', 1), ('top_products', 1);
