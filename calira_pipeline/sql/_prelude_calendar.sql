-- Local calendars for every zone in use. Going UTC -> local is unambiguous, local -> UTC is not
-- (DuckDB/ICU picks one instant for a repeated hour and shifts gap times), so nothing here
-- converts local -> UTC with ICU. Instead each zone's UTC offset is sampled on an hourly UTC grid
-- (refined to the quarter hour inside hours where it changes: modern offsets and transitions are
-- on quarter hours) into constant-offset periods, and every local day/month/hour boundary is
-- derived from those periods exactly: 23, 24 or 25 hour days, no disambiguation needed.

-- The data window: first and last instant of any booking, whatever its status.
CREATE OR REPLACE TEMP TABLE mart__window AS
SELECT min(t) AS window_start, max(t) AS window_end
FROM (
    SELECT start_utc AS t FROM mart__bookings
    UNION ALL
    SELECT end_utc FROM mart__bookings
)
WHERE t IS NOT NULL;

CREATE OR REPLACE TEMP TABLE mart__calendar_zones AS
SELECT DISTINCT z.zone_id, z.timezone
FROM (
    SELECT timezone FROM mart__instruments
    UNION
    SELECT DISTINCT booking_timezone FROM mart__bookings
) AS used
JOIN mart__zones AS z ON z.timezone = used.timezone;

-- Whole local months around the window (offsets are within +-14 h, the margins are wider) so the
-- first and last months of data get their full length.
CREATE OR REPLACE TEMP TABLE mart__calendar_range AS
SELECT
    date_trunc('month', window_start - INTERVAL 2 DAY) - INTERVAL 1 DAY AS grid_start,
    date_trunc('month', window_end + INTERVAL 2 DAY) + INTERVAL 1 MONTH + INTERVAL 1 DAY
        AS grid_end
FROM mart__window;

-- Constant-offset periods per zone: [period_start, period_end) in UTC, local = utc + offset.
CREATE OR REPLACE TEMP TABLE mart__zone_periods AS
WITH hourly AS (
    SELECT
        z.zone_id,
        z.timezone,
        unnest(generate_series(r.grid_start, r.grid_end, INTERVAL 1 HOUR)) AS utc_t
    FROM mart__calendar_zones AS z
    CROSS JOIN mart__calendar_range AS r
),
hourly_offsets AS (
    SELECT
        *,
        epoch_us(timezone(timezone, timezone('UTC', utc_t))) - epoch_us(utc_t) AS offset_us
    FROM hourly
),
changing_hours AS (
    SELECT zone_id, timezone, utc_t
    FROM (
        SELECT
            *,
            lead(offset_us) OVER (PARTITION BY zone_id ORDER BY utc_t) AS next_offset_us
        FROM hourly_offsets
    )
    WHERE next_offset_us <> offset_us
),
samples AS (
    SELECT zone_id, utc_t, offset_us FROM hourly_offsets
    UNION ALL
    SELECT
        zone_id,
        utc_t + to_minutes(q.minutes) AS utc_t,
        epoch_us(timezone(timezone, timezone('UTC', utc_t + to_minutes(q.minutes))))
            - epoch_us(utc_t + to_minutes(q.minutes))
    FROM changing_hours
    CROSS JOIN (SELECT unnest([15, 30, 45]) AS minutes) AS q
),
changes AS (
    SELECT *
    FROM (
        SELECT
            *,
            lag(offset_us) OVER (PARTITION BY zone_id ORDER BY utc_t) AS previous_offset_us
        FROM samples
    )
    WHERE previous_offset_us IS NULL OR previous_offset_us <> offset_us
)
SELECT
    zone_id,
    utc_t AS period_start,
    coalesce(
        lead(utc_t) OVER (PARTITION BY zone_id ORDER BY utc_t),
        (SELECT grid_end FROM mart__calendar_range) + INTERVAL 1 HOUR
    ) AS period_end,
    offset_us,
    to_microseconds(offset_us) AS utc_offset
FROM changes;

-- One row per zone and local day: its UTC bounds (the first instant whose local date is the day,
-- and the next day's), its length, the offset at its start and whether the offset changes inside
-- it. Local dates never go backwards in practice, so a day is one contiguous UTC range.
CREATE OR REPLACE TEMP TABLE mart__local_days AS
WITH days AS (
    SELECT
        z.zone_id,
        z.timezone,
        CAST(unnest(generate_series(
            CAST(r.grid_start AS DATE) + 1, CAST(r.grid_end AS DATE) - 1, INTERVAL 1 DAY
        )) AS DATE) AS day
    FROM mart__calendar_zones AS z
    CROSS JOIN mart__calendar_range AS r
),
starts AS (
    SELECT
        d.zone_id,
        any_value(d.timezone) AS timezone,
        d.day,
        min(CASE
            WHEN CAST(d.day AS TIMESTAMP) < p.period_start + p.utc_offset THEN p.period_start
            WHEN CAST(d.day AS TIMESTAMP) < p.period_end + p.utc_offset
                THEN CAST(d.day AS TIMESTAMP) - p.utc_offset
        END) AS day_start
    FROM days AS d
    JOIN mart__zone_periods AS p ON p.zone_id = d.zone_id
    GROUP BY d.zone_id, d.day
),
bounded AS (
    SELECT
        *,
        lead(day_start) OVER (PARTITION BY zone_id ORDER BY day) AS day_end
    FROM starts
)
SELECT
    b.zone_id,
    b.timezone,
    b.day,
    b.day_start,
    b.day_end,
    CAST(date_diff('microsecond', b.day_start, b.day_end) AS DOUBLE) / 3600e6 AS hours,
    p.offset_us,
    p.period_end >= b.day_end AS is_uniform
FROM bounded AS b
JOIN mart__zone_periods AS p
    ON p.zone_id = b.zone_id
    AND b.day_start >= p.period_start
    AND b.day_start < p.period_end
WHERE b.day_end IS NOT NULL;

CREATE OR REPLACE TEMP TABLE mart__local_months AS
SELECT
    zone_id,
    any_value(timezone) AS timezone,
    CAST(date_trunc('month', day) AS DATE) AS month,
    min(day_start) AS month_start,
    max(day_end) AS month_end,
    sum(hours) AS hours
FROM mart__local_days
GROUP BY zone_id, CAST(date_trunc('month', day) AS DATE);

-- Each zone's daily window: the local days containing the data window's first and last instant.
CREATE OR REPLACE TEMP TABLE mart__window_days AS
WITH bounds AS (
    SELECT
        z.zone_id,
        (SELECT max(d.day) FROM mart__local_days AS d
            WHERE d.zone_id = z.zone_id AND d.day_start <= w.window_start) AS first_day,
        (SELECT max(d.day) FROM mart__local_days AS d
            WHERE d.zone_id = z.zone_id AND d.day_start < w.window_end) AS last_day
    FROM mart__calendar_zones AS z
    CROSS JOIN mart__window AS w
)
SELECT d.*
FROM mart__local_days AS d
JOIN bounds AS b ON b.zone_id = d.zone_id AND d.day BETWEEN b.first_day AND b.last_day;
