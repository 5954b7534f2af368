-- Append-only: each correction a late reading made to a closed bucket, when it was made.
CREATE TABLE bucket_revisions (
    channel_id TEXT NOT NULL,
    bucket_start_ns INTEGER NOT NULL,
    revised_at_ns INTEGER NOT NULL,
    n INTEGER NOT NULL,
    n_good INTEGER NOT NULL,
    sum REAL NOT NULL,
    estimated REAL NOT NULL,
    PRIMARY KEY (channel_id, bucket_start_ns, revised_at_ns)
) WITHOUT ROWID;
