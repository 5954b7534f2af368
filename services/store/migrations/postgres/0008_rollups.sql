-- Base buckets rolled up into each site's local hours and days, maintained with the buckets in
-- the same transaction, so long periods read few rows (the UTC views of 0006 cannot give a
-- site's days).
CREATE TABLE rollups (
    channel_id text NOT NULL,
    period text NOT NULL,
    period_start_ns bigint NOT NULL,
    n bigint NOT NULL,
    n_good bigint NOT NULL,
    sum double precision NOT NULL,
    min double precision,
    max double precision,
    last double precision,
    last_ts_ns bigint,
    estimated double precision NOT NULL,
    PRIMARY KEY (channel_id, period, period_start_ns)
);
-- Roll-ups are complete for periods from here on: two days past the newest bucket stored before
-- this migration (a site's day may begin up to 14 h either side of UTC midnight). Earlier
-- periods are summed from the buckets.
CREATE TABLE rollup_start (from_ns bigint NOT NULL);
INSERT INTO rollup_start SELECT coalesce(max(bucket_start_ns), 0) + 172800000000000 FROM buckets;
