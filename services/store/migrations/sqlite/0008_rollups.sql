-- Base buckets rolled up into each site's local hours and days, maintained with the buckets in
-- the same transaction, so long periods read few rows.
CREATE TABLE rollups (
    channel_id TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start_ns INTEGER NOT NULL,
    n INTEGER NOT NULL,
    n_good INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL,
    max REAL,
    last REAL,
    last_ts_ns INTEGER,
    estimated REAL NOT NULL,
    PRIMARY KEY (channel_id, period, period_start_ns)
) WITHOUT ROWID;
-- Roll-ups are complete for periods from here on: two days past the newest bucket stored before
-- this migration (a site's day may begin up to 14 h either side of UTC midnight). Earlier
-- periods are summed from the buckets.
CREATE TABLE rollup_start (from_ns INTEGER NOT NULL);
INSERT INTO rollup_start SELECT coalesce(max(bucket_start_ns), 0) + 172800000000000 FROM buckets;
