-- Payments through a provider: an order's payments and refunds, and what the sales
-- projection needs to tell a refund of revenue from a refund of money the order never took.
--
-- Applied to every version of the tables there is (the live one, one kept by a rebuild, one
-- being rebuilt): a rebuild copies its tables `LIKE` the live ones, so all versions keep
-- the same columns.
--
-- orders_v{n}:
--   payments = [{"payment_id", "status", "amount_cents"}], oldest first; status one of
--              requested, succeeded, failed, needs_review, canceled.
--   refunds  = [{"refund_id", "status", "amount_cents"}], oldest first; status one of
--              requested, succeeded, failed.
--   Rows projected before this migration saw only `OrderPaid` v1 (the one way to pay then),
--   so their one payment is the one `payment_ref` names, succeeded for the total: that is
--   what folding their events gives, and what a rebuild would write.
-- sales_v{n}_orders:
--   review_payments = the payments the provider captured without paying the order
--                     (`PaymentNeedsReview`): never revenue, so neither are their refunds.
--   revenue_refunds = refunds of revenue requested and not yet confirmed: a confirmation
--                     (`Refunded`) takes its amount off the revenue of its own bucket.
--   Both are empty for every order projected before this migration.
--
-- Events of the new types that a projector older than this migration read were poison to
-- it and were skipped: if any were written before the projector was upgraded, rebuild
-- (`agora projections rebuild orders`, then `sales`).
DO $payments$
DECLARE
    t text;
    live integer;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'read_model' AND c.relkind = 'r' AND c.relname ~ '^orders_v[0-9]+$'
    LOOP
        EXECUTE format(
            'ALTER TABLE read_model.%I '
            'ADD COLUMN payments jsonb NOT NULL DEFAULT ''[]'', '
            'ADD COLUMN refunds  jsonb NOT NULL DEFAULT ''[]''', t);
        EXECUTE format(
            'UPDATE read_model.%I SET payments = jsonb_build_array(jsonb_build_object('
            '''payment_id'', payment_ref, ''status'', ''succeeded'', '
            '''amount_cents'', total_cents)) '
            'WHERE payment_ref IS NOT NULL', t);
    END LOOP;

    FOR t IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'read_model' AND c.relkind = 'r'
          AND c.relname ~ '^sales_v[0-9]+_orders$'
    LOOP
        EXECUTE format(
            'ALTER TABLE read_model.%I '
            'ADD COLUMN review_payments jsonb NOT NULL DEFAULT ''[]'', '
            'ADD COLUMN revenue_refunds jsonb NOT NULL DEFAULT ''[]''', t);
    END LOOP;

    -- A view's `*` was expanded when it was made: make it again over the live version, so it
    -- shows the new columns (a replaced view keeps its owner and grants).
    SELECT active_version INTO live FROM read_model.projections WHERE name = 'orders';
    EXECUTE format('CREATE OR REPLACE VIEW read_model.orders AS SELECT * FROM read_model.%I',
                   'orders_v' || live);
END
$payments$;
