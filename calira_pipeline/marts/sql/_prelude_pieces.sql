-- Each instrument's counted and tentative bookings, and the unions of its counted use
-- (occupancy) and maintenance bookings, cut into local-day pieces (see mart__cut_days).
-- The pieces are a view: equipment_interval_days is their only reader (the marts read that
-- table back as mart__pieces), so its COPY streams them instead of filling a temp table
-- (1.6M rows at 1M bookings) that is scanned once.
-- The few columns needed, read once from the bookings.
CREATE OR REPLACE TABLE mart__compact.mart__occupying_bookings AS
SELECT booking_id, equipment_id, usage_role, start_utc, end_utc
FROM mart__bookings
WHERE usage_role IS NOT NULL;

-- Stream = equipment id * 2 + 0 for use, 1 for maintenance (see mart__islands).
CREATE OR REPLACE TEMP VIEW mart__equipment_streams AS
SELECT
    equipment_id * 2 + CASE usage_role WHEN 'use' THEN 0 ELSE 1 END AS stream,
    start_utc,
    end_utc
FROM mart__occupying_bookings
WHERE usage_role IN ('use', 'maintenance');

CREATE OR REPLACE TEMP VIEW mart__equipment_intervals AS
SELECT
    CASE usage_role WHEN 'use' THEN 'booking' ELSE 'tentative' END AS kind,
    equipment_id AS unit_id,
    booking_id AS interval_id,
    start_utc,
    end_utc
FROM mart__occupying_bookings
WHERE usage_role IN ('use', 'tentative')
UNION ALL
SELECT
    CASE stream & 1 WHEN 0 THEN 'occupancy' ELSE 'maintenance' END AS kind,
    stream >> 1 AS unit_id,
    interval_id,
    start_utc,
    end_utc
FROM mart__islands('mart__equipment_streams');

CREATE OR REPLACE TEMP VIEW mart__day_pieces AS
SELECT * FROM mart__cut_days('mart__equipment_intervals');
