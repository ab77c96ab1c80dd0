-- The daily mart's dense grid: every instrument on every local day of its zone's window (4M rows
-- at 1M bookings, most of them idle days). A table, not the join inline: DuckDB runs a pipeline
-- on as many threads as its source has row groups, and a join of two ~5,000-row tables is one,
-- so the daily mart's 4M-row join, projection and Parquet encoding ran on one core (1.1x on two).
-- Scanning this table splits them over every core. Compressed at the prelude's checkpoint: the
-- sorted ids and the runs of 24-hour days take a few MB instead of 80.
CREATE OR REPLACE TABLE mart__compact.mart__instrument_days AS
SELECT i.equipment_id, d.day, d.hours
FROM mart__instruments AS i
JOIN mart__window_days AS d ON d.zone_id = i.zone_id;
