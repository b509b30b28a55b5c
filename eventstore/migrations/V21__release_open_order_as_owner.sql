-- The trigger that frees an open-order slot when an order is paid or cancelled deletes from
-- `unique_claims`. It runs as the table owner (SECURITY DEFINER, with a fixed search_path),
-- so the command API's writer role needs no DELETE on claims (deploy/postgres/roles.sql):
-- a writer can claim a SKU, never free one.
ALTER FUNCTION release_open_order_claim() SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE ALL ON FUNCTION release_open_order_claim() FROM PUBLIC;
