-- Applied after 0001_initial.sql only where the timescaledb extension is available.
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE OR REPLACE FUNCTION plantpulse_now_ns() RETURNS bigint LANGUAGE sql STABLE AS
    $$ SELECT (extract(epoch FROM now()) * 1e9)::bigint $$;
SELECT create_hypertable('readings', 'ts_ns', chunk_time_interval => 86400000000000, migrate_data => true);
SELECT set_integer_now_func('readings', 'plantpulse_now_ns');
SELECT create_hypertable('buckets', 'bucket_start_ns', chunk_time_interval => 2592000000000000, migrate_data => true);
SELECT set_integer_now_func('buckets', 'plantpulse_now_ns');
