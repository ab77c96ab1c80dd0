-- The parent families' local-day pieces (what _prelude_parent_pieces.sql cuts) read back from
-- the equipment_interval_days staging table, timestamps naive UTC again.
CREATE OR REPLACE TEMP TABLE mart__parent_pieces AS
SELECT
    i.kind,
    i.equipment_id,
    i.interval_id,
    z.zone_id,
    i.day,
    make_timestamp(epoch_us(i.start_time)) AS piece_start,
    make_timestamp(epoch_us(i.end_time)) AS piece_end,
    i.hours
FROM equipment_interval_days AS i
JOIN mart__calendar_zones AS z ON z.timezone = i.timezone
WHERE i.kind IN ('parent_booking', 'parent_occupancy', 'parent_maintenance');
