-- Alerting's working set beside alert_events (0007), the append-only record of every transition:
-- the rules with a version the alerting process polls, each (rule, channel)'s evaluation state
-- (one writer: the alerting process), the current alerts, operator requests the API queues for
-- the alerting process, and the notification outbox that doubles as the delivery log.
CREATE TABLE alert_rules (
    rule_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT,  -- the rule's YAML form as JSON; NULL once deleted (a tombstone keeps the version)
    file_sha256 TEXT,  -- the rules-file form it was last loaded from, NULL if never
    updated_at_ns INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE alert_points (
    rule_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at_ns INTEGER NOT NULL,
    PRIMARY KEY (rule_id, channel_id)
) WITHOUT ROWID;
CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    area_id TEXT NOT NULL,
    raised_ts_ns INTEGER NOT NULL,
    phase TEXT NOT NULL,
    level INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    value REAL,
    threshold REAL,
    message TEXT NOT NULL,
    acked_by TEXT,
    acked_ts_ns INTEGER,
    ack_comment TEXT,
    closed_ts_ns INTEGER,
    shelved_until_ns INTEGER,
    escalated INTEGER NOT NULL DEFAULT 0,
    updated_ts_ns INTEGER NOT NULL
);
CREATE INDEX alerts_by_closed ON alerts (closed_ts_ns, raised_ts_ns);
CREATE TABLE alert_requests (
    request_id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT NOT NULL,
    until_ns INTEGER,
    requested_at_ns INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    outcome TEXT NOT NULL DEFAULT '',
    done_at_ns INTEGER
);
CREATE INDEX alert_requests_by_status ON alert_requests (status, request_id);
CREATE TABLE alert_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at_ns INTEGER NOT NULL,
    delivered_at_ns INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (event_id, target)
);
CREATE INDEX alert_outbox_pending ON alert_outbox (target, seq) WHERE delivered_at_ns IS NULL;
