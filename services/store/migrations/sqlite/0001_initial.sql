-- Readings, base buckets, channel state and latest values.
CREATE TABLE readings (
    channel_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    receive_ts_ns INTEGER NOT NULL,
    PRIMARY KEY (channel_id, ts_ns)
) WITHOUT ROWID;

CREATE TABLE buckets (
    channel_id TEXT NOT NULL,
    bucket_start_ns INTEGER NOT NULL,
    n INTEGER NOT NULL,
    n_good INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL,
    max REAL,
    last REAL,
    last_ts_ns INTEGER,
    PRIMARY KEY (channel_id, bucket_start_ns)
) WITHOUT ROWID;

CREATE TABLE channel_state (
    channel_id TEXT PRIMARY KEY,
    last_ts_ns INTEGER NOT NULL,
    counter_ts_ns INTEGER NOT NULL,
    counter_value REAL NOT NULL
);

CREATE TABLE latest (
    channel_id TEXT PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    receive_ts_ns INTEGER NOT NULL
);
