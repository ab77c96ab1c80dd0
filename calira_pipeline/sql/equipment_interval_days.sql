-- One row per (kind, equipment, interval, local day the interval covers). Kinds:
--   booking / tentative / parent_booking : individual bookings (sums and counts)
--   occupancy / maintenance / parent_occupancy / parent_maintenance : unions (gaps and islands),
--     so overlapping bookings on one instrument count once.
WITH families AS (
    -- A parent's family: itself plus every descendant.
    SELECT ancestor_id AS family_id, equipment_id FROM mart__ancestors
    UNION
    SELECT DISTINCT ancestor_id, ancestor_id FROM mart__ancestors
),
base AS (
    SELECT
        CASE usage_role WHEN 'use' THEN 'booking' ELSE usage_role END AS kind,
        CASE usage_role WHEN 'use' THEN 'occupancy' WHEN 'maintenance' THEN 'maintenance' END
            AS union_kind,
        equipment_id AS unit_id,
        booking_id,
        start_utc,
        end_utc
    FROM mart__bookings
    WHERE usage_role IS NOT NULL
    UNION ALL
    SELECT
        CASE b.usage_role WHEN 'use' THEN 'parent_booking' ELSE 'parent_maintenance_booking' END,
        CASE b.usage_role WHEN 'use' THEN 'parent_occupancy' ELSE 'parent_maintenance' END,
        f.family_id,
        b.booking_id,
        b.start_utc,
        b.end_utc
    FROM mart__bookings AS b
    JOIN families AS f ON f.equipment_id = b.equipment_id
    WHERE b.usage_role IN ('use', 'maintenance')
),
-- Islands in one sorted pass: a booking opens a new island unless a booking before it (in start
-- order, within the same stream and unit) is still running. One integer partition key keeps the
-- sort cheap.
keyed AS (
    SELECT
        union_kind,
        unit_id,
        start_utc,
        end_utc,
        unit_id * 8 + CASE union_kind
            WHEN 'occupancy' THEN 0 WHEN 'maintenance' THEN 1
            WHEN 'parent_occupancy' THEN 2 ELSE 3
        END AS stream
    FROM base
    WHERE union_kind IS NOT NULL
),
marked AS (
    SELECT
        *,
        CASE
            WHEN start_utc <= max(end_utc) OVER (
                PARTITION BY stream ORDER BY start_utc, end_utc
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) THEN 0
            ELSE 1
        END AS starts_island
    FROM keyed
),
numbered AS (
    SELECT
        *,
        sum(starts_island) OVER (
            PARTITION BY stream ORDER BY start_utc, end_utc ROWS UNBOUNDED PRECEDING
        ) AS island
    FROM marked
),
intervals AS (
    SELECT kind, unit_id, booking_id AS interval_id, start_utc, end_utc
    FROM base
    WHERE kind IN ('booking', 'tentative', 'parent_booking')
    UNION ALL
    SELECT union_kind, unit_id, CAST(island AS BIGINT), min(start_utc), max(end_utc)
    FROM numbered
    GROUP BY union_kind, unit_id, island
),
located AS (
    SELECT i.*, inst.zone_id, inst.timezone
    FROM intervals AS i
    JOIN mart__instruments AS inst ON inst.equipment_id = i.unit_id
),
-- Local dates of both ends: local = UTC + the offset of the zone period containing the instant
-- (a few periods per zone, so the range join is cheap and needs no per-row ICU call).
spans AS (
    SELECT
        l.*,
        CAST(l.start_utc + ps.utc_offset AS DATE) AS first_day,
        CAST(l.end_utc - INTERVAL 1 MICROSECOND + pe.utc_offset AS DATE) AS last_day
    FROM located AS l
    JOIN mart__zone_periods AS ps
        ON ps.zone_id = l.zone_id
        AND l.start_utc >= ps.period_start
        AND l.start_utc < ps.period_end
    JOIN mart__zone_periods AS pe
        ON pe.zone_id = l.zone_id
        AND l.end_utc - INTERVAL 1 MICROSECOND >= pe.period_start
        AND l.end_utc - INTERVAL 1 MICROSECOND < pe.period_end
),
-- Most intervals lie inside one local day and need no cutting; the rest are cut at the local
-- midnights of every day they touch (an equality join on the zone-day table).
pieces AS (
    SELECT kind, unit_id, interval_id, timezone, first_day AS day,
        start_utc AS piece_start, end_utc AS piece_end
    FROM spans
    WHERE first_day = last_day
    UNION ALL
    SELECT
        x.kind,
        x.unit_id,
        x.interval_id,
        x.timezone,
        d.day,
        greatest(x.start_utc, d.day_start) AS piece_start,
        least(x.end_utc, d.day_end) AS piece_end
    FROM (
        SELECT *, CAST(unnest(generate_series(first_day, last_day, INTERVAL 1 DAY)) AS DATE) AS day
        FROM spans
        WHERE first_day < last_day
    ) AS x
    JOIN mart__local_days AS d ON d.zone_id = x.zone_id AND d.day = x.day
)
SELECT
    CAST(kind AS VARCHAR) AS kind,
    CAST(unit_id AS BIGINT) AS equipment_id,
    CAST(interval_id AS BIGINT) AS interval_id,
    CAST(timezone AS VARCHAR) AS timezone,
    CAST(day AS DATE) AS day,
    piece_start AS start_time,
    piece_end AS end_time,
    CAST(date_diff('microsecond', piece_start, piece_end) AS DOUBLE) / 3600e6 AS hours
FROM pieces
WHERE piece_end > piece_start;
