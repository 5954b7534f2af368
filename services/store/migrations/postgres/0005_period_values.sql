-- Denominators of intensities per site and period, every version kept (append-only).
CREATE TABLE period_values (
    site_id text NOT NULL,
    kind text NOT NULL,
    start_ns bigint NOT NULL,
    end_ns bigint NOT NULL,
    recorded_at_ns bigint NOT NULL,
    value double precision NOT NULL,
    source text NOT NULL,
    PRIMARY KEY (site_id, kind, start_ns, end_ns, recorded_at_ns)
);
