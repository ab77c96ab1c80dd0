-- Local calendars for every zone in use, derived from a 15-minute UTC grid converted to local
-- wall-clock time. Going UTC -> local is unambiguous; DuckDB/ICU's local -> UTC picks the later
-- instant for a repeated hour and shifts gap times forward, which would put the fall-back hour's
-- extra 60 minutes in the wrong hour cell. From the grid, a local day/hour is simply the set of
-- quarter hours carrying that local date/hour: 23, 24 or 25 hours, no disambiguation needed.

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
SELECT timezone FROM mart__instruments
UNION
SELECT booking_timezone FROM mart__bookings;

-- Whole local months around the window (offsets are within +-14 h, the margins are wider) so the
-- first and last months of data get their full length.
CREATE OR REPLACE TEMP TABLE mart__quarter_hours AS
WITH grid AS (
    SELECT unnest(generate_series(
        date_trunc('month', window_start - INTERVAL 2 DAY) - INTERVAL 1 DAY,
        date_trunc('month', window_end + INTERVAL 2 DAY) + INTERVAL 1 MONTH + INTERVAL 1 DAY,
        INTERVAL 15 MINUTE
    )) AS utc_q
    FROM mart__window
)
SELECT z.timezone, g.utc_q, timezone(z.timezone, timezone('UTC', g.utc_q)) AS local_q
FROM mart__calendar_zones AS z
CROSS JOIN grid AS g
ORDER BY z.timezone, g.utc_q;

CREATE OR REPLACE TEMP TABLE mart__local_days AS
SELECT
    timezone,
    CAST(local_q AS DATE) AS day,
    min(utc_q) AS day_start,
    max(utc_q) + INTERVAL 15 MINUTE AS day_end,
    CAST(count(*) AS DOUBLE) / 4 AS hours
FROM mart__quarter_hours
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE mart__local_months AS
SELECT
    timezone,
    CAST(date_trunc('month', local_q) AS DATE) AS month,
    min(utc_q) AS month_start,
    max(utc_q) + INTERVAL 15 MINUTE AS month_end,
    CAST(count(*) AS DOUBLE) / 4 AS hours
FROM mart__quarter_hours
GROUP BY ALL;

-- Each instrument's daily window: the local days containing the data window's first and last
-- instant, in the instrument's own zone.
CREATE OR REPLACE TEMP TABLE mart__instrument_windows AS
WITH firsts AS (
    SELECT i.equipment_id, i.timezone, d.day AS first_day, w.window_end
    FROM mart__instruments AS i
    CROSS JOIN mart__window AS w
    ASOF JOIN mart__local_days AS d
        ON d.timezone = i.timezone AND w.window_start >= d.day_start
)
SELECT f.equipment_id, f.first_day, d.day AS last_day
FROM firsts AS f
ASOF JOIN mart__local_days AS d
    ON d.timezone = f.timezone AND f.window_end - INTERVAL 1 MICROSECOND >= d.day_start;
