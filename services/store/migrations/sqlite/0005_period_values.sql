-- Denominators of intensities per site and period, every version kept (append-only).
CREATE TABLE period_values (
    site_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    recorded_at_ns INTEGER NOT NULL,
    value REAL NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (site_id, kind, start_ns, end_ns, recorded_at_ns)
) WITHOUT ROWID;
