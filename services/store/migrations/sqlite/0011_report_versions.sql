-- Who closed an ESG report and why, and who restated it: a snapshot (version 1 of a report) and
-- each restatement (the next versions) name their actor; a restatement had its reason already.
-- The same entries go to audit_log in the same transaction.
ALTER TABLE report_snapshots ADD COLUMN actor TEXT NOT NULL DEFAULT '';
ALTER TABLE report_snapshots ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE report_restatements ADD COLUMN actor TEXT NOT NULL DEFAULT '';
