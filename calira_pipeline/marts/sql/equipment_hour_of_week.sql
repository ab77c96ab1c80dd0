-- One row per instrument x ISO weekday x local hour (7 x 24): union-booked hours in that
-- wall-clock cell over the data window, and the cell's available hours over the same days (the
-- fall-back hour is 2 h long that day, the skipped spring hour 0 h).
--
-- Day pieces are cut where the zone's offset changes (only on DST days), so on every sub-piece
-- local time = UTC + a constant offset and a piece is the local range [x0, x1) in microseconds
-- since its day's wall-clock midnight. A repeated hour is then covered twice, a skipped one never.
-- Booked time per cell without expanding pieces into hours: a piece adds
-- clamp((h + 1) * H - x0, 0, H) - clamp((h + 1) * H - x1, 0, H) to cell h, so per hour k holding
-- an end point x (sign s) keep partial = sum s * ((k + 1) * H - x) and full = sum s; cell h is
-- partial(h) + H * (sum of full over hours before h). Integer microseconds keep it exact.
WITH zone_pieces AS (
    SELECT
        d.zone_id,
        isodow(d.day) AS weekday,
        epoch_us(greatest(d.day_start, p.period_start)) + p.offset_us
            - epoch_us(CAST(d.day AS TIMESTAMP)) AS from_us,
        epoch_us(least(d.day_end, p.period_end)) + p.offset_us
            - epoch_us(CAST(d.day AS TIMESTAMP)) AS to_us
    FROM mart__window_days AS d
    JOIN mart__zone_periods AS p
        ON p.zone_id = d.zone_id
        AND p.period_start < d.day_end
        AND p.period_end > d.day_start
),
available AS (
    SELECT
        zone_id,
        weekday,
        hour,
        sum(least(to_us, (hour + 1) * 3600000000) - greatest(from_us, hour * 3600000000))
            AS available_us
    FROM (
        SELECT
            *,
            unnest(generate_series(from_us // 3600000000, (to_us - 1) // 3600000000)) AS hour
        FROM zone_pieces
        WHERE to_us > from_us
    )
    GROUP BY ALL
),
pieces AS (
    SELECT equipment_id, zone_id, day, piece_start, piece_end
    FROM mart__pieces
    WHERE kind = 'occupancy'
),
located AS (
    SELECT
        p.equipment_id,
        p.day,
        epoch_us(p.piece_start) + d.offset_us AS local_start_us,
        epoch_us(p.piece_end) + d.offset_us AS local_end_us
    FROM pieces AS p
    JOIN mart__local_days AS d ON d.zone_id = p.zone_id AND d.day = p.day
    WHERE d.is_uniform
    UNION ALL
    SELECT
        p.equipment_id,
        p.day,
        epoch_us(greatest(p.piece_start, z.period_start)) + z.offset_us,
        epoch_us(least(p.piece_end, z.period_end)) + z.offset_us
    FROM pieces AS p
    JOIN mart__local_days AS d ON d.zone_id = p.zone_id AND d.day = p.day
    JOIN mart__zone_periods AS z
        ON z.zone_id = p.zone_id
        AND z.period_start < p.piece_end
        AND z.period_end > p.piece_start
    WHERE NOT d.is_uniform
),
end_points AS (
    SELECT
        equipment_id,
        isodow(day) AS weekday,
        local_start_us - epoch_us(CAST(day AS TIMESTAMP)) AS x,
        1 AS sign
    FROM located
    UNION ALL
    SELECT
        equipment_id,
        isodow(day),
        local_end_us - epoch_us(CAST(day AS TIMESTAMP)),
        -1
    FROM located
),
per_hour AS (
    SELECT
        equipment_id,
        weekday,
        x // 3600000000 AS hour,
        sum(sign * ((x // 3600000000 + 1) * 3600000000 - x)) AS partial_us,
        sum(sign) AS full_count
    FROM end_points
    WHERE x < 24 * 3600000000
    GROUP BY ALL
),
runs AS (
    -- Each hour holding end points with the full counts of the weekday's earlier such hours
    -- summed, and the next such hour: the running sum runs over these ~340K rows, not over all
    -- 840K cells (most cells hold no end point), and is partitioned by one BIGINT.
    SELECT
        equipment_id,
        weekday,
        hour,
        partial_us,
        full_count,
        sum(full_count) OVER day_hours - full_count AS full_before,
        lead(hour, 1, 24) OVER day_hours AS next_hour
    FROM per_hour
    WINDOW day_hours AS (
        PARTITION BY equipment_id * 8 + weekday ORDER BY hour ROWS UNBOUNDED PRECEDING
    )
),
filled AS (
    -- A run covers its hour and the hours up to the next one: the full counts so far times an
    -- hour, plus the run's own partial time in its first hour.
    SELECT
        equipment_id,
        weekday,
        cell_hour AS hour,
        3600000000 * (full_before + CASE WHEN cell_hour > hour THEN full_count ELSE 0 END)
            + CASE WHEN cell_hour = hour THEN partial_us ELSE 0 END AS booked_us
    FROM (SELECT *, unnest(generate_series(hour, next_hour - 1)) AS cell_hour FROM runs)
),
cells AS (
    -- Every instrument x weekday x hour; cells before a weekday's first end point have none.
    SELECT g.equipment_id, g.weekday, g.hour, coalesce(f.booked_us, 0) AS booked_us
    FROM (
        SELECT i.equipment_id, wd.weekday, hr.hour
        FROM mart__instruments AS i
        CROSS JOIN (SELECT unnest(range(1, 8)) AS weekday) AS wd
        CROSS JOIN (SELECT unnest(range(0, 24)) AS hour) AS hr
    ) AS g
    LEFT JOIN filled AS f
        ON f.equipment_id = g.equipment_id AND f.weekday = g.weekday AND f.hour = g.hour
),
booked AS (
    SELECT c.*, i.lab_id, i.timezone, i.zone_id
    FROM cells AS c
    JOIN mart__instruments AS i ON i.equipment_id = c.equipment_id
)
SELECT
    CAST(b.equipment_id AS BIGINT) AS equipment_id,
    CAST(b.weekday AS BIGINT) AS weekday,
    CAST(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'][b.weekday]
        AS VARCHAR) AS weekday_name,
    CAST(b.hour AS BIGINT) AS hour,
    CAST(b.lab_id AS BIGINT) AS lab_id,
    CAST(b.timezone AS VARCHAR) AS timezone,
    CAST(b.booked_us AS DOUBLE) / 3600e6 AS booked_hours,
    CAST(coalesce(a.available_us, 0) AS DOUBLE) / 3600e6 AS available_hours,
    CAST(b.booked_us AS DOUBLE) / nullif(CAST(a.available_us AS DOUBLE), 0) AS occupancy
FROM booked AS b
LEFT JOIN available AS a
    ON a.zone_id = b.zone_id AND a.weekday = b.weekday AND a.hour = b.hour;
