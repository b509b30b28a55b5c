-- Customers and shipping addresses. Personal fields are kept exactly as the events carry
-- them: sealed with the customer's data key (`pii1.…`), never in plaintext. The query API
-- opens them with the key on each read; once the customer is erased the key is gone, and the
-- projections drop the sealed values too.
--
-- customers_v{n}: one row per customer who set a profile or was erased.
-- orders_v{n}.shipping_address: the order's sealed address (null: none, or erased).
CREATE TABLE read_model.customers_v1 (
    customer_id  text PRIMARY KEY,
    email        text,
    name         text,
    address      text,
    email_updates boolean    NOT NULL DEFAULT true,
    erased       boolean     NOT NULL DEFAULT false,
    version      bigint      NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE VIEW read_model.customers AS SELECT * FROM read_model.customers_v1;
INSERT INTO read_model.projections (name, active_version) VALUES ('customers', 1);

DO $customers$
DECLARE
    t text;
    live integer;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'read_model' AND c.relkind = 'r' AND c.relname ~ '^orders_v[0-9]+$'
    LOOP
        EXECUTE format('ALTER TABLE read_model.%I ADD COLUMN shipping_address text', t);
    END LOOP;
    -- A view's `*` was expanded when it was made: make it again over the live version.
    SELECT active_version INTO live FROM read_model.projections WHERE name = 'orders';
    EXECUTE format('CREATE OR REPLACE VIEW read_model.orders AS SELECT * FROM read_model.%I',
                   'orders_v' || live);
END
$customers$;
