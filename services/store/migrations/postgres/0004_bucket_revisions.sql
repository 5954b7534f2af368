-- Append-only: each correction a late reading made to a closed bucket, when it was made.
CREATE TABLE bucket_revisions (
    channel_id text NOT NULL,
    bucket_start_ns bigint NOT NULL,
    revised_at_ns bigint NOT NULL,
    n bigint NOT NULL,
    n_good bigint NOT NULL,
    sum double precision NOT NULL,
    estimated double precision NOT NULL,
    PRIMARY KEY (channel_id, bucket_start_ns, revised_at_ns)
);
