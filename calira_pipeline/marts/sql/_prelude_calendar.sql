-- Local calendars for every zone in use. Going UTC -> local is unambiguous, local -> UTC is not
-- (DuckDB/ICU picks one instant for a repeated hour and shifts gap times), so nothing here
-- converts local -> UTC with ICU. Instead each zone's UTC offset is sampled on an hourly UTC grid
-- (refined to the quarter hour inside hours where it changes: modern offsets and transitions are
-- on quarter hours) into constant-offset periods, and every local day/month/hour boundary is
-- derived from those periods exactly: 23, 24 or 25 hour days, no disambiguation needed.

-- The data window: first and last instant of any booking, whatever its status (least/greatest
-- skip NULLs); and the bookings' zones. From the instruments prelude's per-instrument summary of
-- the bookings (no second pass over them).
CREATE OR REPLACE TEMP TABLE mart__window AS
SELECT
    least(min(min_start), min(min_end)) AS window_start,
    greatest(max(max_start), max(max_end)) AS window_end,
    list(DISTINCT booking_timezone) AS booking_timezones
FROM mart__booking_summary;

CREATE OR REPLACE TEMP TABLE mart__calendar_zones AS
SELECT DISTINCT z.zone_id, z.timezone
FROM (
    SELECT timezone FROM mart__instruments
    UNION
    SELECT unnest(booking_timezones) FROM mart__window
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

-- Per zone and UTC day: the offset at 00:00 UTC and, if it changes during the day, the instant
-- and the new offset. Turning an instant into local time is then an equality join on one BIGINT
-- key, mart__utc_day_key(zone_id, instant), plus mart__to_local: no range join, no per-row ICU
-- call, and a lookup table small enough to stay in cache. The single combined key also stops the
-- planner from joining on the day alone before the zone is known (a blow-up per zone).
CREATE OR REPLACE TEMP MACRO mart__utc_day_key(zone_id, utc_t) AS
    CAST(zone_id AS BIGINT) * 4294967296 + epoch_us(date_trunc('day', utc_t)) // 86400000000;

CREATE OR REPLACE TEMP TABLE mart__zone_utc_days AS
WITH utc_days AS (
    SELECT
        z.zone_id,
        unnest(generate_series(
            date_trunc('day', r.grid_start), r.grid_end, INTERVAL 1 DAY
        )) AS utc_day
    FROM mart__calendar_zones AS z
    CROSS JOIN mart__calendar_range AS r
)
SELECT
    mart__utc_day_key(d.zone_id, d.utc_day) AS utc_day_key,
    d.zone_id,
    d.utc_day,
    any_value(p.offset_us) AS offset_us,
    min(n.period_start) AS change_at,
    arg_min(n.offset_us, n.period_start) AS offset_after_us,
    -- No zone changes its offset twice within one UTC day; fail loudly rather than mis-bucket.
    CASE WHEN count(n.period_start) > 1
        THEN error('two UTC offset changes in one UTC day: ' || d.zone_id || ' ' || d.utc_day)
    END AS guard
FROM utc_days AS d
JOIN mart__zone_periods AS p
    ON p.zone_id = d.zone_id AND d.utc_day >= p.period_start AND d.utc_day < p.period_end
LEFT JOIN mart__zone_periods AS n
    ON n.zone_id = d.zone_id
    AND n.period_start > d.utc_day
    AND n.period_start < d.utc_day + INTERVAL 1 DAY
GROUP BY d.zone_id, d.utc_day;

CREATE OR REPLACE TEMP MACRO mart__to_local(utc_t, offset_us, change_at, offset_after_us) AS
    utc_t + to_microseconds(
        CASE WHEN change_at IS NULL OR utc_t < change_at THEN offset_us ELSE offset_after_us END
    );

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

-- Unions (gaps and islands) of the intervals in `input_table` (stream, start_utc, end_utc), one
-- stream per unit and kind: stream = unit id * 2 + kind bit, so the caller reads both back from
-- it (stream >> 1, stream & 1). One sorted pass finds where islands start (no earlier interval of
-- the stream still running); an island ends at the latest end seen before the next island
-- starts. interval_id numbers the islands of a stream in start order. The two sorts carry only
-- the stream and the two instants: a kind name (16+ characters for the parent kinds, not inlined)
-- and a unit id in their payload cost ~15 % of this macro.
CREATE OR REPLACE TEMP MACRO mart__islands(input_table) AS TABLE
SELECT
    stream,
    CAST(row_number() OVER islands AS BIGINT) AS interval_id,
    start_utc,
    coalesce(lead(earlier_end) OVER islands, stream_end) AS end_utc
FROM (
    SELECT
        stream,
        start_utc,
        max(end_utc) OVER (
            stream_order ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS earlier_end,
        max(end_utc) OVER (
            stream_order ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        ) AS stream_end
    FROM query_table(input_table)
    WINDOW stream_order AS (PARTITION BY stream ORDER BY start_utc, end_utc)
)
WHERE earlier_end IS NULL OR start_utc > earlier_end
WINDOW islands AS (PARTITION BY stream ORDER BY start_utc);

-- The intervals in `input_table` (kind, unit_id, interval_id, start_utc, end_utc) cut at the
-- unit's local midnights (local dates of both ends via mart__zone_utc_days). Most
-- intervals lie inside one local day and need no cut; the rest get one row per day they touch
-- from an equality join on the zone-day table. Local dates are computed once per end as integer
-- day numbers (days since 0001-01-01: the bias keeps the floor division non-negative), so the
-- filters and the single-day branch compare BIGINTs, not re-derived timestamps.
CREATE OR REPLACE TEMP MACRO mart__local_day_number(utc_t, offset_us, change_at, after_us) AS
    (epoch_us(utc_t) + 62135596800000000 + CASE
        WHEN change_at IS NULL OR utc_t < change_at THEN offset_us ELSE after_us
    END) // 86400000000;

CREATE OR REPLACE TEMP MACRO mart__cut_days(input_table) AS TABLE
WITH spans AS (
    SELECT
        i.kind,
        i.unit_id,
        i.interval_id,
        i.start_utc,
        i.end_utc,
        u.zone_id,
        mart__local_day_number(i.start_utc, hs.offset_us, hs.change_at, hs.offset_after_us)
            AS first_n,
        mart__local_day_number(
            i.end_utc - INTERVAL 1 MICROSECOND, he.offset_us, he.change_at, he.offset_after_us
        ) AS last_n
    FROM query_table(input_table) AS i
    JOIN mart__instruments AS u ON u.equipment_id = i.unit_id
    JOIN mart__zone_utc_days AS hs ON hs.utc_day_key = mart__utc_day_key(u.zone_id, i.start_utc)
    JOIN mart__zone_utc_days AS he
        ON he.utc_day_key = mart__utc_day_key(u.zone_id, i.end_utc - INTERVAL 1 MICROSECOND)
    WHERE i.end_utc > i.start_utc
),
pieces AS (
    SELECT
        kind, unit_id, interval_id, zone_id,
        DATE '0001-01-01' + CAST(first_n AS INTEGER) AS day,
        start_utc AS piece_start, end_utc AS piece_end
    FROM spans
    WHERE first_n = last_n
    UNION ALL
    SELECT
        x.kind,
        x.unit_id,
        x.interval_id,
        x.zone_id,
        d.day,
        greatest(x.start_utc, d.day_start) AS piece_start,
        least(x.end_utc, d.day_end) AS piece_end
    FROM (
        -- No WHERE first_n < last_n here (a one-day span unnests nothing instead): DuckDB
        -- pushes the OR of both branches' filters into the materialized spans, where it
        -- re-derives both day numbers of every span, ~10 % of this macro's CPU.
        SELECT
            *,
            DATE '0001-01-01' + CAST(unnest(
                CASE WHEN first_n < last_n THEN generate_series(first_n, last_n) END
            ) AS INTEGER) AS day
        FROM spans
    ) AS x
    JOIN mart__local_days AS d ON d.zone_id = x.zone_id AND d.day = x.day
    WHERE least(x.end_utc, d.day_end) > greatest(x.start_utc, d.day_start)
)
SELECT
    kind,
    unit_id AS equipment_id,
    interval_id,
    zone_id,
    day,
    piece_start,
    piece_end,
    CAST(date_diff('microsecond', piece_start, piece_end) AS DOUBLE) / 3600e6 AS hours
FROM pieces;
