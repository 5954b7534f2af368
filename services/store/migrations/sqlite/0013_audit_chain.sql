-- Hash chains over audit_log and alert_events (compute/audit_chain.py): each row keeps the sha256
-- of the row before it and its own, over its canonical content. Rows from before this migration
-- are not backfilled (the append-only triggers stay on): audit_chain_origin keeps the last of
-- them, and each chain starts after it, from the genesis value. field_digests only name the
-- fields of an edited row. alert_deliveries: every notification attempt, append-only.
ALTER TABLE audit_log ADD COLUMN prev_sha256 TEXT;
ALTER TABLE audit_log ADD COLUMN sha256 TEXT;
ALTER TABLE audit_log ADD COLUMN field_digests TEXT;
ALTER TABLE alert_events ADD COLUMN prev_sha256 TEXT;
ALTER TABLE alert_events ADD COLUMN sha256 TEXT;
ALTER TABLE alert_events ADD COLUMN field_digests TEXT;
CREATE TABLE audit_chain_origin (
    chain TEXT PRIMARY KEY,
    legacy_through_seq INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO audit_chain_origin (chain, legacy_through_seq)
    SELECT 'audit_log', coalesce(max(seq), 0) FROM audit_log
    UNION ALL SELECT 'alert_events', coalesce(max(seq), 0) FROM alert_events;
CREATE TRIGGER audit_chain_origin_append_only_u BEFORE UPDATE ON audit_chain_origin
BEGIN SELECT RAISE(ABORT, 'audit_chain_origin is append-only'); END;
CREATE TRIGGER audit_chain_origin_append_only_d BEFORE DELETE ON audit_chain_origin
BEGIN SELECT RAISE(ABORT, 'audit_chain_origin is append-only'); END;
CREATE TABLE alert_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    target TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    error TEXT NOT NULL DEFAULT '',
    latency_ms REAL NOT NULL,
    at_ns INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_event ON alert_deliveries (event_id);
CREATE TRIGGER alert_deliveries_append_only_u BEFORE UPDATE ON alert_deliveries
BEGIN SELECT RAISE(ABORT, 'alert_deliveries is append-only'); END;
CREATE TRIGGER alert_deliveries_append_only_d BEFORE DELETE ON alert_deliveries
BEGIN SELECT RAISE(ABORT, 'alert_deliveries is append-only'); END;
