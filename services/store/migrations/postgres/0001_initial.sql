-- Readings, base buckets, channel state and latest values. Times are int64 ns since the epoch, UTC.
CREATE TABLE readings (
    channel_id text NOT NULL,
    ts_ns bigint NOT NULL,
    value double precision,
    quality smallint NOT NULL,
    receive_ts_ns bigint NOT NULL,
    PRIMARY KEY (channel_id, ts_ns)
);

CREATE TABLE buckets (
    channel_id text NOT NULL,
    bucket_start_ns bigint NOT NULL,
    n bigint NOT NULL,
    n_good bigint NOT NULL,
    sum double precision NOT NULL,
    min double precision,
    max double precision,
    last double precision,
    last_ts_ns bigint,
    PRIMARY KEY (channel_id, bucket_start_ns)
);

CREATE TABLE channel_state (
    channel_id text PRIMARY KEY,
    last_ts_ns bigint NOT NULL,
    counter_ts_ns bigint NOT NULL,
    counter_value double precision NOT NULL
);

CREATE TABLE latest (
    channel_id text PRIMARY KEY,
    ts_ns bigint NOT NULL,
    value double precision,
    quality smallint NOT NULL,
    receive_ts_ns bigint NOT NULL
);
