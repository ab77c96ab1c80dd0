-- One row per parent instrument per local day: the union of its own and all descendants'
-- counted bookings (child rows stay in equipment_utilisation_daily).
WITH parents AS (
    SELECT DISTINCT ancestor_id AS equipment_id FROM mart__ancestors
),
children AS (
    SELECT ancestor_id AS equipment_id, count(*) AS descendant_count
    FROM mart__ancestors
    GROUP BY ALL
),
totals AS (
    SELECT
        equipment_id,
        day,
        sum(hours) FILTER (WHERE kind = 'parent_occupancy') AS booked_hours,
        sum(hours) FILTER (WHERE kind = 'parent_booking') AS booked_hours_sum,
        count(*) FILTER (WHERE kind = 'parent_booking') AS booking_count,
        sum(hours) FILTER (WHERE kind = 'parent_maintenance') AS maintenance_hours
    FROM mart__parent_pieces
    GROUP BY ALL
)
SELECT
    CAST(i.equipment_id AS BIGINT) AS equipment_id,
    CAST(d.day AS DATE) AS day,
    CAST(i.lab_id AS BIGINT) AS lab_id,
    CAST(i.timezone AS VARCHAR) AS timezone,
    CAST(c.descendant_count AS BIGINT) AS descendant_count,
    CAST(coalesce(t.booked_hours, 0) AS DOUBLE) AS booked_hours,
    CAST(coalesce(t.booked_hours_sum, 0) AS DOUBLE) AS booked_hours_sum,
    CAST(d.hours AS DOUBLE) AS available_hours,
    CAST(coalesce(t.booked_hours, 0) / nullif(d.hours, 0) AS DOUBLE) AS utilisation,
    CAST(coalesce(t.maintenance_hours, 0) AS DOUBLE) AS maintenance_hours,
    CAST(coalesce(t.booking_count, 0) AS BIGINT) AS booking_count
FROM parents AS p
JOIN mart__instruments AS i ON i.equipment_id = p.equipment_id
JOIN children AS c ON c.equipment_id = p.equipment_id
JOIN mart__window_days AS d ON d.zone_id = i.zone_id
LEFT JOIN totals AS t ON t.equipment_id = i.equipment_id AND t.day = d.day;
