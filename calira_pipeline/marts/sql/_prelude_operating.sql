-- Operating (staffed) windows as UTC segments per profile, zone and local day over the calendar.
-- Each local day is cut into constant-offset pieces (one unless a DST change falls inside it);
-- on a piece local time is UTC + offset, so a window's wall-clock minutes map to UTC exactly: a
-- skipped hour is never staffed, a repeated hour is staffed twice. Overlapping configured windows
-- are merged first so they count once.
CREATE OR REPLACE TEMP TABLE mart__operating_segments AS
WITH profiles AS (
    SELECT DISTINCT operating_profile, zone_id
    FROM mart__instruments
    WHERE operating_profile IS NOT NULL
),
window_marks AS (
    SELECT
        *,
        CASE
            WHEN start_minute <= max(end_minute) OVER (
                PARTITION BY profile, weekday ORDER BY start_minute, end_minute
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) THEN 0
            ELSE 1
        END AS starts_group
    FROM mart__operating_windows
),
window_groups AS (
    SELECT
        *,
        sum(starts_group) OVER (
            PARTITION BY profile, weekday ORDER BY start_minute, end_minute ROWS UNBOUNDED PRECEDING
        ) AS window_group
    FROM window_marks
),
merged_windows AS (
    SELECT
        profile,
        weekday,
        CAST(min(start_minute) AS BIGINT) * 60000000 AS start_us,
        CAST(max(end_minute) AS BIGINT) * 60000000 AS end_us
    FROM window_groups
    GROUP BY profile, weekday, window_group
),
day_pieces AS (
    -- Local microseconds since the day's wall-clock midnight covered by each constant-offset piece.
    SELECT
        d.zone_id,
        d.timezone,
        d.day,
        p.offset_us,
        CAST(d.day AS TIMESTAMP) AS local_midnight,
        epoch_us(greatest(d.day_start, p.period_start)) + p.offset_us
            - epoch_us(CAST(d.day AS TIMESTAMP)) AS from_us,
        epoch_us(least(d.day_end, p.period_end)) + p.offset_us
            - epoch_us(CAST(d.day AS TIMESTAMP)) AS to_us
    FROM mart__local_days AS d
    JOIN mart__zone_periods AS p
        ON p.zone_id = d.zone_id
        AND p.period_start < d.day_end
        AND p.period_end > d.day_start
    WHERE d.zone_id IN (SELECT zone_id FROM profiles)
),
segments AS (
    SELECT
        pr.operating_profile,
        dp.zone_id,
        dp.timezone,
        dp.day,
        dp.local_midnight
            + to_microseconds(greatest(dp.from_us, w.start_us) - dp.offset_us) AS segment_start,
        dp.local_midnight
            + to_microseconds(least(dp.to_us, w.end_us) - dp.offset_us) AS segment_end
    FROM profiles AS pr
    JOIN day_pieces AS dp ON dp.zone_id = pr.zone_id
    JOIN merged_windows AS w
        ON w.profile = pr.operating_profile
        AND w.weekday = isodow(dp.day)
        AND w.start_us < dp.to_us
        AND w.end_us > dp.from_us
)
SELECT
    *,
    CAST(date_diff('microsecond', segment_start, segment_end) AS DOUBLE) / 3600e6 AS hours
FROM segments;
