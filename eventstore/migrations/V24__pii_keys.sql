-- Customers' data keys (crypto-shredding): one random 256-bit key per customer, stored
-- wrapped (XChaCha20-Poly1305) under the master key AGORA_PII_KEY, which never enters the
-- database; `master_key_id` names which master key wrapped it, so the master key can rotate.
-- Events hold personal data only sealed with these keys. Erasure destroys a customer's key
-- and keeps a tombstone (no key material), so no new key is ever made for them and every
-- value sealed with the old one stays unreadable.
CREATE TABLE pii_keys (
    customer_id   text PRIMARY KEY,
    master_key_id text,
    wrapped_key   bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    erased_at     timestamptz,
    CONSTRAINT pii_keys_live_or_erased CHECK (
        (erased_at IS NULL AND wrapped_key IS NOT NULL AND master_key_id IS NOT NULL)
        OR (erased_at IS NOT NULL AND wrapped_key IS NULL AND master_key_id IS NULL)
    )
);

-- An erased key never comes back: a tombstone may not be given key material again.
CREATE FUNCTION pii_keys_refuse_revival() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.erased_at IS NOT NULL AND NEW.wrapped_key IS NOT NULL THEN
        RAISE EXCEPTION 'the data key of customer % was erased and cannot be restored', OLD.customer_id
            USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER pii_keys_no_revival
    BEFORE UPDATE ON pii_keys
    FOR EACH ROW EXECUTE FUNCTION pii_keys_refuse_revival();
