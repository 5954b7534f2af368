-- Meter replacements recorded through the API, beside those of the plant file: written by the
-- aggregator in the transaction that recounts the readings they separate, with their audit entry.
-- Append-only. Emission-factor versions name the versions they supersede (a JSON array of refs).
CREATE TABLE meter_replacements (
    channel_id TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    old_final REAL NOT NULL,
    new_initial REAL NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    recorded_at_ns INTEGER NOT NULL,
    PRIMARY KEY (channel_id, at_ns)
) WITHOUT ROWID;
CREATE TRIGGER meter_replacements_append_only_u BEFORE UPDATE ON meter_replacements
BEGIN SELECT RAISE(ABORT, 'meter_replacements is append-only'); END;
CREATE TRIGGER meter_replacements_append_only_d BEFORE DELETE ON meter_replacements
BEGIN SELECT RAISE(ABORT, 'meter_replacements is append-only'); END;
ALTER TABLE emission_factors ADD COLUMN supersedes TEXT NOT NULL DEFAULT '[]';
