-- Instruments whose summed booked_hours_sum differs from their counted use bookings' raw
-- durations (positive-duration bookings with an instrument) by more than the tolerance.
WITH mart AS (
    SELECT equipment_id, sum(booked_hours_sum) AS hours
    FROM mart__target
    GROUP BY ALL
),
raw AS (
    SELECT equipment_id, sum(hours) AS hours
    FROM mart__bookings
    WHERE usage_role = 'use'
    GROUP BY ALL
)
SELECT count(*)
FROM mart
FULL OUTER JOIN raw ON raw.equipment_id = mart.equipment_id
CROSS JOIN mart__settings AS s
WHERE abs(coalesce(mart.hours, 0) - coalesce(raw.hours, 0)) > s.hours_tolerance;
