-- Hourly and daily roll-ups of the base buckets in UTC hours and days, as on PostgreSQL: the
-- same columns and results (postgres/0006_timescale_policies.sql), computed at query time.
CREATE VIEW buckets_hourly AS
SELECT
    channel_id,
    bucket_start_ns - ((bucket_start_ns % 3600000000000) + 3600000000000) % 3600000000000
        AS bucket_start_ns,
    sum(n) AS n,
    sum(n_good) AS n_good,
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
    sum(n) AS n,
    sum(n_good) AS n_good,
    sum(sum) AS sum,
    sum(estimated) AS estimated,
    min(min) AS min,
    max(max) AS max,
    count(*) AS n_buckets
FROM buckets
GROUP BY 1, 2;
