-- Applied after 0006_timescale_policies.sql only where the timescaledb extension is available.
-- Integer ns time columns: every offset below is in ns (plantpulse_now_ns() is their "now").

-- Raw readings: columnar compression per channel, newest first, for chunks (one day each, see
-- 0001) older than 7 days; late readings still insert into compressed chunks, a little slower.
-- The compression names (deprecated since 2.18 for the columnstore ones, still supported) work on
-- every TimescaleDB 2.x this may meet. Buckets stay uncompressed: late readings update them.
ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'channel_id',
    timescaledb.compress_orderby = 'ts_ns DESC'
);
SELECT add_compression_policy('readings', compress_after => 604800000000000::bigint);

-- Raw readings are dropped a whole chunk at a time once older than 400 days (a year plus a
-- month of slack for year-on-year comparisons). Buckets, their roll-ups and every other table
-- are kept: the history the API serves is in the buckets.
SELECT add_retention_policy('readings', drop_after => 34560000000000000::bigint);

-- The roll-ups become continuous aggregates (same names, columns and results as the views), in
-- UTC like the views: a continuous aggregate cannot follow each site's timezone. Created empty
-- (WITH NO DATA, as inside the migration's transaction it must be); the policies fill them.
DROP VIEW buckets_hourly;
DROP VIEW buckets_daily;

CREATE MATERIALIZED VIEW buckets_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    channel_id,
    time_bucket(3600000000000::bigint, bucket_start_ns) AS bucket_start_ns,
    sum(n)::bigint AS n,
    sum(n_good)::bigint AS n_good,
    sum(sum) AS sum,
    sum(estimated) AS estimated,
    min(min) AS min,
    max(max) AS max,
    count(*) AS n_buckets
FROM buckets
GROUP BY channel_id, time_bucket(3600000000000::bigint, bucket_start_ns)
WITH NO DATA;

CREATE MATERIALIZED VIEW buckets_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    channel_id,
    time_bucket(86400000000000::bigint, bucket_start_ns) AS bucket_start_ns,
    sum(n)::bigint AS n,
    sum(n_good)::bigint AS n_good,
    sum(sum) AS sum,
    sum(estimated) AS estimated,
    min(min) AS min,
    max(max) AS max,
    count(*) AS n_buckets
FROM buckets
GROUP BY channel_id, time_bucket(86400000000000::bigint, bucket_start_ns)
WITH NO DATA;

-- Refreshed from the beginning of time (start_offset NULL): a refresh only re-materialises the
-- ranges that writes invalidated, and late readings may correct buckets of any age. The open
-- period (the last hour, the last day) is left to real-time aggregation.
SELECT add_continuous_aggregate_policy('buckets_hourly',
    start_offset => NULL, end_offset => 3600000000000::bigint,
    schedule_interval => INTERVAL '15 minutes');
SELECT add_continuous_aggregate_policy('buckets_daily',
    start_offset => NULL, end_offset => 86400000000000::bigint,
    schedule_interval => INTERVAL '1 hour');
