-- The channel registry with its configuration history, versioned emission factors, report
-- snapshots and their restatements, and the append-only alert and audit records (GMP: who,
-- when, old and new value, why). Append-only tables refuse UPDATE and DELETE.
CREATE TABLE channel_config (
    channel_id text NOT NULL,
    recorded_at_ns bigint NOT NULL,
    sha256 text NOT NULL,
    config text NOT NULL,
    PRIMARY KEY (channel_id, recorded_at_ns)
);
CREATE TABLE emission_factors (
    id text NOT NULL,
    version text NOT NULL,
    activity text NOT NULL,
    region text NOT NULL,
    basis text NOT NULL,
    valid_from_ns bigint NOT NULL,
    valid_to_ns bigint,
    value double precision NOT NULL,
    unit text NOT NULL,
    source text NOT NULL,
    recorded_at_ns bigint NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE report_snapshots (
    report_id text PRIMARY KEY,
    kind text NOT NULL,
    site_id text NOT NULL,
    start_ns bigint NOT NULL,
    end_ns bigint NOT NULL,
    created_at_ns bigint NOT NULL,
    sha256 text NOT NULL,
    content text NOT NULL
);
CREATE TABLE report_restatements (
    report_id text NOT NULL REFERENCES report_snapshots (report_id),
    restated_at_ns bigint NOT NULL,
    previous_sha256 text NOT NULL,
    sha256 text NOT NULL,
    content text NOT NULL,
    reason text NOT NULL,
    PRIMARY KEY (report_id, restated_at_ns)
);
CREATE TABLE alert_events (
    seq bigserial PRIMARY KEY,
    alert_id text NOT NULL,
    channel_id text NOT NULL,
    rule_id text NOT NULL,
    event text NOT NULL,
    ts_ns bigint NOT NULL,
    value double precision,
    actor text NOT NULL,
    comment text NOT NULL DEFAULT '',
    recorded_at_ns bigint NOT NULL
);
CREATE TABLE audit_log (
    seq bigserial PRIMARY KEY,
    at_ns bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL,
    old_value text,
    new_value text,
    reason text NOT NULL
);
CREATE FUNCTION plantpulse_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON channel_config
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON emission_factors
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON report_snapshots
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON report_restatements
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON alert_events
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
