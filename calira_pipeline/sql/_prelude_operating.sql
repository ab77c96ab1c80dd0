-- Operating (staffed) windows as UTC segments per profile, zone and local day, over the whole
-- calendar grid. Built from the quarter-hour grid so DST days get the wall-clock hours they
-- really have; overlapping configured windows count once.
CREATE OR REPLACE TEMP TABLE mart__operating_segments AS
WITH profiles AS (
    SELECT DISTINCT operating_profile, timezone
    FROM mart__instruments
    WHERE operating_profile IS NOT NULL
),
open_quarters AS (
    SELECT DISTINCT p.operating_profile, q.timezone, CAST(q.local_q AS DATE) AS day, q.utc_q
    FROM profiles AS p
    JOIN mart__quarter_hours AS q ON q.timezone = p.timezone
    JOIN mart__operating_windows AS w
        ON w.profile = p.operating_profile
        AND w.weekday = isodow(q.local_q)
        AND hour(q.local_q) * 60 + minute(q.local_q) >= w.start_minute
        AND hour(q.local_q) * 60 + minute(q.local_q) < w.end_minute
),
islands AS (
    SELECT
        *,
        utc_q - to_minutes(
            15 * row_number() OVER (PARTITION BY operating_profile, timezone, day ORDER BY utc_q)
        ) AS island
    FROM open_quarters
)
SELECT
    operating_profile,
    timezone,
    day,
    min(utc_q) AS segment_start,
    max(utc_q) + INTERVAL 15 MINUTE AS segment_end,
    CAST(count(*) AS DOUBLE) / 4 AS hours
FROM islands
GROUP BY operating_profile, timezone, day, island;
