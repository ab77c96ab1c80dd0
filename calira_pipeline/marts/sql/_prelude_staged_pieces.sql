-- The equipment_interval_days staging table read back as the instruments' local-day pieces
-- (what _prelude_pieces.sql cuts from the bookings), timestamps naive UTC again. A table: the
-- daily and hour-of-week marts each read it more than once.
CREATE OR REPLACE TEMP TABLE mart__pieces AS
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
WHERE i.kind IN ('booking', 'tentative', 'occupancy', 'maintenance');
