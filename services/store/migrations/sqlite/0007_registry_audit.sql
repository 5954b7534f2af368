-- The channel registry with its configuration history, versioned emission factors, report
-- snapshots and their restatements, and the append-only alert and audit records (GMP: who,
-- when, old and new value, why). Append-only tables refuse UPDATE and DELETE.
CREATE TABLE channel_config (
    channel_id TEXT NOT NULL,
    recorded_at_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (channel_id, recorded_at_ns)
) WITHOUT ROWID;
CREATE TABLE emission_factors (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    activity TEXT NOT NULL,
    region TEXT NOT NULL,
    basis TEXT NOT NULL,
    valid_from_ns INTEGER NOT NULL,
    valid_to_ns INTEGER,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at_ns INTEGER NOT NULL,
    PRIMARY KEY (id, version)
) WITHOUT ROWID;
CREATE TABLE report_snapshots (
    report_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    site_id TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    created_at_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE TABLE report_restatements (
    report_id TEXT NOT NULL REFERENCES report_snapshots (report_id),
    restated_at_ns INTEGER NOT NULL,
    previous_sha256 TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (report_id, restated_at_ns)
) WITHOUT ROWID;
CREATE TABLE alert_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    event TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    value REAL,
    actor TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    recorded_at_ns INTEGER NOT NULL
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    reason TEXT NOT NULL
);
CREATE TRIGGER channel_config_append_only_u BEFORE UPDATE ON channel_config
BEGIN SELECT RAISE(ABORT, 'channel_config is append-only'); END;
CREATE TRIGGER channel_config_append_only_d BEFORE DELETE ON channel_config
BEGIN SELECT RAISE(ABORT, 'channel_config is append-only'); END;
CREATE TRIGGER emission_factors_append_only_u BEFORE UPDATE ON emission_factors
BEGIN SELECT RAISE(ABORT, 'emission_factors is append-only'); END;
CREATE TRIGGER emission_factors_append_only_d BEFORE DELETE ON emission_factors
BEGIN SELECT RAISE(ABORT, 'emission_factors is append-only'); END;
CREATE TRIGGER report_snapshots_append_only_u BEFORE UPDATE ON report_snapshots
BEGIN SELECT RAISE(ABORT, 'report_snapshots is append-only'); END;
CREATE TRIGGER report_snapshots_append_only_d BEFORE DELETE ON report_snapshots
BEGIN SELECT RAISE(ABORT, 'report_snapshots is append-only'); END;
CREATE TRIGGER report_restatements_append_only_u BEFORE UPDATE ON report_restatements
BEGIN SELECT RAISE(ABORT, 'report_restatements is append-only'); END;
CREATE TRIGGER report_restatements_append_only_d BEFORE DELETE ON report_restatements
BEGIN SELECT RAISE(ABORT, 'report_restatements is append-only'); END;
CREATE TRIGGER alert_events_append_only_u BEFORE UPDATE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); END;
CREATE TRIGGER alert_events_append_only_d BEFORE DELETE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); END;
CREATE TRIGGER audit_log_append_only_u BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_append_only_d BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
