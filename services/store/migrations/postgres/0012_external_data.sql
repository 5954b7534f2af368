-- Meter replacements recorded through the API, beside those of the plant file: written by the
-- aggregator in the transaction that recounts the readings they separate, with their audit entry.
-- Append-only. Emission-factor versions name the versions they supersede (a JSON array of refs).
CREATE TABLE meter_replacements (
    channel_id text NOT NULL,
    at_ns bigint NOT NULL,
    old_final double precision NOT NULL,
    new_initial double precision NOT NULL,
    reason text NOT NULL,
    actor text NOT NULL,
    recorded_at_ns bigint NOT NULL,
    PRIMARY KEY (channel_id, at_ns)
);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON meter_replacements
    FOR EACH ROW EXECUTE FUNCTION plantpulse_append_only();
ALTER TABLE emission_factors ADD COLUMN supersedes text NOT NULL DEFAULT '[]';
