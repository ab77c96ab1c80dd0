-- One row per instrument x ISO weekday x local hour (7 x 24): union-booked hours in that
-- wall-clock cell over the data window, and the cell's available hours over the same days (the
-- fall-back hour is 2 h long that day, the skipped spring hour 0 h).
WITH local_hours AS (
    SELECT
        timezone,
        CAST(local_q AS DATE) AS day,
        hour(local_q) AS hour,
        min(utc_q) AS hour_start,
        max(utc_q) + INTERVAL 15 MINUTE AS hour_end,
        CAST(count(*) AS DOUBLE) / 4 AS hours
    FROM mart__quarter_hours
    GROUP BY ALL
),
zone_windows AS (
    SELECT DISTINCT i.timezone, w.first_day, w.last_day
    FROM mart__instruments AS i
    JOIN mart__instrument_windows AS w ON w.equipment_id = i.equipment_id
),
available AS (
    SELECT z.timezone, isodow(h.day) AS weekday, h.hour, sum(h.hours) AS hours
    FROM zone_windows AS z
    JOIN local_hours AS h
        ON h.timezone = z.timezone AND h.day BETWEEN z.first_day AND z.last_day
    GROUP BY ALL
),
pieces AS (
    SELECT
        equipment_id,
        timezone,
        day,
        make_timestamp(epoch_us(start_time)) AS piece_start,
        make_timestamp(epoch_us(end_time)) AS piece_end
    FROM equipment_interval_days
    WHERE kind = 'occupancy'
),
spans AS (
    SELECT p.*, hour(qs.local_q) AS first_hour, hour(qe.local_q) AS last_hour
    FROM pieces AS p
    JOIN mart__quarter_hours AS qs
        ON qs.timezone = p.timezone AND qs.utc_q = time_bucket(INTERVAL 15 MINUTE, p.piece_start)
    JOIN mart__quarter_hours AS qe
        ON qe.timezone = p.timezone
        AND qe.utc_q = time_bucket(INTERVAL 15 MINUTE, p.piece_end - INTERVAL 1 MICROSECOND)
),
cells AS (
    SELECT
        s.equipment_id,
        isodow(s.day) AS weekday,
        h.hour,
        CAST(date_diff(
            'microsecond', greatest(s.piece_start, h.hour_start), least(s.piece_end, h.hour_end)
        ) AS DOUBLE) / 3600e6 AS hours
    FROM (
        SELECT *, unnest(generate_series(least(first_hour, last_hour), greatest(first_hour, last_hour))) AS hour
        FROM spans
    ) AS s
    JOIN local_hours AS h ON h.timezone = s.timezone AND h.day = s.day AND h.hour = s.hour
),
booked AS (
    SELECT equipment_id, weekday, hour, sum(hours) AS hours
    FROM cells
    WHERE hours > 0
    GROUP BY ALL
),
grid AS (
    SELECT i.equipment_id, i.lab_id, i.timezone, wd.weekday, hr.hour
    FROM mart__instruments AS i
    CROSS JOIN (SELECT unnest(range(1, 8)) AS weekday) AS wd
    CROSS JOIN (SELECT unnest(range(0, 24)) AS hour) AS hr
)
SELECT
    CAST(g.equipment_id AS BIGINT) AS equipment_id,
    CAST(g.weekday AS BIGINT) AS weekday,
    CAST(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'][g.weekday]
        AS VARCHAR) AS weekday_name,
    CAST(g.hour AS BIGINT) AS hour,
    CAST(g.lab_id AS BIGINT) AS lab_id,
    CAST(g.timezone AS VARCHAR) AS timezone,
    CAST(coalesce(b.hours, 0) AS DOUBLE) AS booked_hours,
    CAST(coalesce(a.hours, 0) AS DOUBLE) AS available_hours,
    CAST(coalesce(b.hours, 0) / nullif(a.hours, 0) AS DOUBLE) AS occupancy
FROM grid AS g
LEFT JOIN available AS a
    ON a.timezone = g.timezone AND a.weekday = g.weekday AND a.hour = g.hour
LEFT JOIN booked AS b
    ON b.equipment_id = g.equipment_id AND b.weekday = g.weekday AND b.hour = g.hour;
