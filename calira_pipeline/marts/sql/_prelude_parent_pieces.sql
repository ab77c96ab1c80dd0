-- A parent's family (itself plus every descendant): its counted use bookings, and the unions of
-- the family's use (parent_occupancy) and maintenance, cut into the parent's local-day pieces
-- (a view, read once by equipment_interval_days: see _prelude_pieces.sql).
CREATE OR REPLACE TEMP VIEW mart__family_bookings AS
WITH families AS (
    SELECT ancestor_id AS family_id, equipment_id FROM mart__ancestors
    UNION
    SELECT DISTINCT ancestor_id, ancestor_id FROM mart__ancestors
)
SELECT f.family_id, b.usage_role, b.booking_id, b.start_utc, b.end_utc
FROM mart__bookings AS b
JOIN families AS f ON f.equipment_id = b.equipment_id
WHERE b.usage_role IN ('use', 'maintenance');

-- Stream = family id * 2 + 0 for use, 1 for maintenance (see mart__islands).
CREATE OR REPLACE TEMP VIEW mart__family_streams AS
SELECT
    family_id * 2 + CASE usage_role WHEN 'use' THEN 0 ELSE 1 END AS stream,
    start_utc,
    end_utc
FROM mart__family_bookings;

CREATE OR REPLACE TEMP VIEW mart__family_intervals AS
SELECT
    'parent_booking' AS kind,
    family_id AS unit_id,
    booking_id AS interval_id,
    start_utc,
    end_utc
FROM mart__family_bookings
WHERE usage_role = 'use'
UNION ALL
SELECT
    CASE stream & 1 WHEN 0 THEN 'parent_occupancy' ELSE 'parent_maintenance' END AS kind,
    stream >> 1 AS unit_id,
    interval_id,
    start_utc,
    end_utc
FROM mart__islands('mart__family_streams');

CREATE OR REPLACE TEMP VIEW mart__parent_day_pieces AS
SELECT * FROM mart__cut_days('mart__family_intervals');
