-- Alerting's working set beside alert_events (0007), the append-only record of every transition:
-- the rules with a version the alerting process polls, each (rule, channel)'s evaluation state
-- (one writer: the alerting process), the current alerts, operator requests the API queues for
-- the alerting process, and the notification outbox that doubles as the delivery log.
CREATE TABLE alert_rules (
    rule_id text PRIMARY KEY,
    version bigint NOT NULL,
    body text,  -- the rule's YAML form as JSON; NULL once deleted (a tombstone keeps the version)
    file_sha256 text,  -- the rules-file form it was last loaded from, NULL if never
    updated_at_ns bigint NOT NULL,
    updated_by text NOT NULL
);
CREATE TABLE alert_points (
    rule_id text NOT NULL,
    channel_id text NOT NULL,
    state text NOT NULL,
    updated_at_ns bigint NOT NULL,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE TABLE alerts (
    alert_id text PRIMARY KEY,
    rule_id text NOT NULL,
    channel_id text NOT NULL,
    site_id text NOT NULL,
    area_id text NOT NULL,
    raised_ts_ns bigint NOT NULL,
    phase text NOT NULL,
    level bigint NOT NULL,
    severity bigint NOT NULL,
    value double precision,
    threshold double precision,
    message text NOT NULL,
    acked_by text,
    acked_ts_ns bigint,
    ack_comment text,
    closed_ts_ns bigint,
    shelved_until_ns bigint,
    escalated bigint NOT NULL DEFAULT 0,
    updated_ts_ns bigint NOT NULL
);
CREATE INDEX alerts_by_closed ON alerts (closed_ts_ns, raised_ts_ns);
CREATE TABLE alert_requests (
    request_id bigserial PRIMARY KEY,
    action text NOT NULL,
    alert_id text NOT NULL,
    rule_id text NOT NULL,
    channel_id text NOT NULL,
    actor text NOT NULL,
    comment text NOT NULL,
    until_ns bigint,
    requested_at_ns bigint NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    outcome text NOT NULL DEFAULT '',
    done_at_ns bigint
);
CREATE INDEX alert_requests_by_status ON alert_requests (status, request_id);
CREATE TABLE alert_outbox (
    seq bigserial PRIMARY KEY,
    event_id text NOT NULL,
    target text NOT NULL,
    payload text NOT NULL,
    created_at_ns bigint NOT NULL,
    delivered_at_ns bigint,
    attempts bigint NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT '',
    UNIQUE (event_id, target)
);
CREATE INDEX alert_outbox_pending ON alert_outbox (target, seq) WHERE delivered_at_ns IS NULL;
