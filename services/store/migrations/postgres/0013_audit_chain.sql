-- Hash chains over audit_log and alert_events (compute/audit_chain.py): each row keeps the sha256
-- of the row before it and its own, over its canonical content. Rows from before this migration
-- are not backfilled (the append-only triggers stay on): audit_chain_origin keeps the last of
-- them, and each chain starts after it, from the genesis value. field_digests only name the
-- fields of an edited row. alert_deliveries: every notification attempt, append-only.
ALTER TABLE audit_log ADD COLUMN prev_sha256 text, ADD COLUMN sha256 text,
    ADD COLUMN field_digests text;
ALTER TABLE alert_events ADD COLUMN prev_sha256 text, ADD COLUMN sha256 text,
    ADD COLUMN field_digests text;
CREATE TABLE audit_chain_origin (
    chain text PRIMARY KEY,
    legacy_through_seq bigint NOT NULL
);
INSERT INTO audit_chain_origin (chain, legacy_through_seq)
    SELECT 'audit_log', coalesce(max(seq), 0) FROM audit_log
    UNION ALL SELECT 'alert_events', coalesce(max(seq), 0) FROM alert_events;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_chain_origin
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
CREATE TABLE alert_deliveries (
    seq bigserial PRIMARY KEY,
    event_id text NOT NULL,
    alert_id text NOT NULL,
    target text NOT NULL,
    attempt integer NOT NULL,
    outcome text NOT NULL,
    status_code integer,
    error text NOT NULL DEFAULT '',
    latency_ms double precision NOT NULL,
    at_ns bigint NOT NULL
);
CREATE INDEX alert_deliveries_event ON alert_deliveries (event_id);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON alert_deliveries
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
