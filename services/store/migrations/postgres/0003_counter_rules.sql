-- The part of each bucket's consumption spread over a gap, held-back counter readings (spikes and
-- drops awaiting the next reading), and the audit trail of wraps, spikes, drops, resets and
-- meter replacements (event codes: compute.kernels.CounterEvent).
ALTER TABLE buckets ADD COLUMN estimated double precision NOT NULL DEFAULT 0;
ALTER TABLE channel_state ADD COLUMN held_ts_ns bigint NOT NULL DEFAULT -9223372036854775808;
ALTER TABLE channel_state ADD COLUMN held_value double precision NOT NULL DEFAULT 0;
CREATE TABLE counter_events (
    channel_id text NOT NULL,
    ts_ns bigint NOT NULL,
    event smallint NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (channel_id, ts_ns, event)
);
