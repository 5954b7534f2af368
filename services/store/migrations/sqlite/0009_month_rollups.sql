-- Month roll-ups join the hour and day roll-ups, so a year's totals read 12 rows a channel. Each
-- kind of roll-up is complete from its own start: hours and days from where 0008 put them; months
-- from two days past the newest bucket stored before this migration, because the month roll-ups
-- of earlier data were never written (the totals sum those months from days, hours and buckets).
CREATE TABLE rollup_starts (period TEXT PRIMARY KEY, from_ns INTEGER NOT NULL);
INSERT INTO rollup_starts (period, from_ns) SELECT 'hour', from_ns FROM rollup_start;
INSERT INTO rollup_starts (period, from_ns) SELECT 'day', from_ns FROM rollup_start;
INSERT INTO rollup_starts (period, from_ns)
    SELECT 'month', coalesce(max(bucket_start_ns), 0) + 172800000000000 FROM buckets;
DROP TABLE rollup_start;
