-- The part of each bucket's consumption spread over a gap, held-back counter readings (spikes and
-- drops awaiting the next reading), and the audit trail of wraps, spikes, drops, resets and
-- meter replacements.
ALTER TABLE buckets ADD COLUMN estimated REAL NOT NULL DEFAULT 0;
ALTER TABLE channel_state ADD COLUMN held_ts_ns INTEGER NOT NULL DEFAULT -9223372036854775808;
ALTER TABLE channel_state ADD COLUMN held_value REAL NOT NULL DEFAULT 0;
CREATE TABLE counter_events (
    channel_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    event INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (channel_id, ts_ns, event)
) WITHOUT ROWID;
