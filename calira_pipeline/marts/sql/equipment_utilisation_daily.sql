-- One row per instrument per local day of the data window (idle days included).
-- The sparse booked aggregates are built first and joined onto the dense instrument x day grid
-- by one BIGINT key (equipment_id, day as days since 0001-01-01); no ordering is promised.
WITH totals AS (
    SELECT
        equipment_id * 4194304 + (day - DATE '0001-01-01') AS day_key,
        sum(hours) FILTER (WHERE kind = 'occupancy') AS booked_hours,
        sum(hours) FILTER (WHERE kind = 'booking') AS booked_hours_sum,
        count(*) FILTER (WHERE kind = 'booking') AS booking_count,
        sum(hours) FILTER (WHERE kind = 'tentative') AS tentative_hours,
        sum(hours) FILTER (WHERE kind = 'maintenance') AS maintenance_hours
    FROM mart__pieces
    GROUP BY 1
),
operating_available AS (
    SELECT operating_profile, zone_id, day, sum(hours) AS hours
    FROM mart__operating_segments
    GROUP BY ALL
),
operating_booked AS (
    SELECT
        p.equipment_id * 4194304 + (p.day - DATE '0001-01-01') AS day_key,
        sum(
            CAST(date_diff(
                'microsecond',
                greatest(p.piece_start, s.segment_start),
                least(p.piece_end, s.segment_end)
            ) AS DOUBLE) / 3600e6
        ) AS hours
    FROM mart__pieces AS p
    JOIN mart__instruments AS i ON i.equipment_id = p.equipment_id
    JOIN mart__operating_segments AS s
        ON s.operating_profile = i.operating_profile
        AND s.zone_id = p.zone_id
        AND s.day = p.day
    WHERE p.kind = 'occupancy'
        AND p.piece_start < s.segment_end
        AND p.piece_end > s.segment_start
    GROUP BY 1
),
instrument_days AS (
    SELECT
        i.equipment_id,
        i.lab_id,
        i.timezone,
        i.zone_id,
        i.operating_profile,
        g.day,
        g.hours,
        g.equipment_id * 4194304 + (g.day - DATE '0001-01-01') AS day_key
    FROM mart__instrument_days AS g
    JOIN mart__instruments AS i ON i.equipment_id = g.equipment_id
)
SELECT
    CAST(x.equipment_id AS BIGINT) AS equipment_id,
    CAST(x.day AS DATE) AS day,
    CAST(x.lab_id AS BIGINT) AS lab_id,
    CAST(x.timezone AS VARCHAR) AS timezone,
    CAST(coalesce(t.booked_hours, 0) AS DOUBLE) AS booked_hours,
    CAST(coalesce(t.booked_hours_sum, 0) AS DOUBLE) AS booked_hours_sum,
    CAST(x.hours AS DOUBLE) AS available_hours,
    CAST(coalesce(t.booked_hours, 0) / nullif(x.hours, 0) AS DOUBLE) AS utilisation,
    CAST(coalesce(t.maintenance_hours, 0) AS DOUBLE) AS maintenance_hours,
    CAST(coalesce(t.tentative_hours, 0) AS DOUBLE) AS tentative_hours,
    CAST(coalesce(t.booking_count, 0) AS BIGINT) AS booking_count,
    CAST(CASE WHEN x.operating_profile IS NOT NULL THEN coalesce(oa.hours, 0) END AS DOUBLE)
        AS operating_hours_available,
    CAST(CASE WHEN x.operating_profile IS NOT NULL THEN coalesce(ob.hours, 0) END AS DOUBLE)
        AS operating_hours_booked,
    CAST(coalesce(ob.hours, 0) / nullif(oa.hours, 0) AS DOUBLE) AS operating_utilisation,
    CAST(NULL AS DOUBLE) AS actual_use_hours
FROM instrument_days AS x
LEFT JOIN totals AS t ON t.day_key = x.day_key
LEFT JOIN operating_available AS oa
    ON oa.operating_profile = x.operating_profile
    AND oa.zone_id = x.zone_id
    AND oa.day = x.day
LEFT JOIN operating_booked AS ob ON ob.day_key = x.day_key;
