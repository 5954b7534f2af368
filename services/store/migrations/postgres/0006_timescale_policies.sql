-- Hourly and daily roll-ups of the base buckets, in UTC hours and days: one row per channel and
-- period with the sums of n, n_good, sum and estimated, the number of base buckets, the least min
-- and the greatest max. A base bucket counts in the period where it starts (base buckets are at
-- most an hour wide; a width that does not divide the hour straddles some hours).
-- On plain PostgreSQL these are ordinary views, computed at query time. Where TimescaleDB is
-- installed, 0006_timescale_policies.timescale.sql replaces them with continuous aggregates of the
-- same names, columns and results (real-time aggregation on), so one query works on both.
-- UTC days are site days only for UTC sites, and UTC hours for sites whose offset is a whole
-- number of hours; the API rolls up from `buckets` in each site's timezone instead.
CREATE VIEW buckets_hourly AS
SELECT
    channel_id,
    bucket_start_ns - ((bucket_start_ns % 3600000000000) + 3600000000000) % 3600000000000
        AS bucket_start_ns,
    sum(n)::bigint AS n,
    sum(n_good)::bigint AS n_good,
    sum(sum) AS sum,
    sum(estimated) AS estimated,
    min(min) AS min,
    max(max) AS max,
    count(*) AS n_buckets
FROM buckets
GROUP BY 1, 2;

CREATE VIEW buckets_daily AS
SELECT
    channel_id,
    bucket_start_ns - ((bucket_start_ns % 86400000000000) + 86400000000000) % 86400000000000
        AS bucket_start_ns,
    sum(n)::bigint AS n,
    sum(n_good)::bigint AS n_good,
    sum(sum) AS sum,
    sum(estimated) AS estimated,
    min(min) AS min,
    max(max) AS max,
    count(*) AS n_buckets
FROM buckets
GROUP BY 1, 2;
