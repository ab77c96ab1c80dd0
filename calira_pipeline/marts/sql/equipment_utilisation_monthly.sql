-- One row per instrument per local month; available_hours is the whole month (DST-aware) even
-- for the first and last month of data.
-- Months are derived from DATEs as day - (day of month - 1) (a third of date_trunc's cost on the
-- 4M daily rows at 1M bookings); lab and zone come from the instrument, as on its daily rows.
WITH daily AS (
    SELECT
        equipment_id,
        day - CAST(dayofmonth(day) - 1 AS INTEGER) AS month,
        sum(booked_hours) AS booked_hours,
        sum(booked_hours_sum) AS booked_hours_sum,
        sum(maintenance_hours) AS maintenance_hours,
        sum(tentative_hours) AS tentative_hours,
        sum(operating_hours_booked) AS operating_hours_booked
    FROM equipment_utilisation_daily
    GROUP BY ALL
),
-- Distinct bookings: a multi-day booking touches several days but is one booking in the month.
-- Local days of both ends as day numbers (see mart__local_day_number), then their months; a
-- booking within one month (nearly all) needs no generate_series.
booking_months AS (
    SELECT
        b.equipment_id,
        DATE '0001-01-01' + CAST(mart__local_day_number(
            b.start_utc, hs.offset_us, hs.change_at, hs.offset_after_us
        ) AS INTEGER) AS first_day,
        DATE '0001-01-01' + CAST(mart__local_day_number(
            b.end_utc - INTERVAL 1 MICROSECOND, he.offset_us, he.change_at, he.offset_after_us
        ) AS INTEGER) AS last_day
    FROM mart__bookings AS b
    JOIN mart__instruments AS u ON u.equipment_id = b.equipment_id
    JOIN mart__zone_utc_days AS hs ON hs.utc_day_key = mart__utc_day_key(u.zone_id, b.start_utc)
    JOIN mart__zone_utc_days AS he
        ON he.utc_day_key = mart__utc_day_key(u.zone_id, b.end_utc - INTERVAL 1 MICROSECOND)
    WHERE b.usage_role = 'use'
),
months AS (
    SELECT
        equipment_id,
        first_day - CAST(dayofmonth(first_day) - 1 AS INTEGER) AS first_month,
        last_day - CAST(dayofmonth(last_day) - 1 AS INTEGER) AS last_month
    FROM booking_months
),
counts AS (
    SELECT equipment_id, month, count(*) AS booking_count
    FROM (
        SELECT equipment_id, first_month AS month FROM months WHERE first_month = last_month
        UNION ALL
        -- No WHERE first_month < last_month (a one-month booking unnests nothing instead): as
        -- in mart__cut_days, the OR of both filters would be pushed into the materialized months
        -- and re-derive both months of every booking.
        SELECT
            equipment_id,
            CAST(unnest(CASE WHEN first_month < last_month
                THEN generate_series(first_month, last_month, INTERVAL 1 MONTH) END) AS DATE)
        FROM months
    )
    GROUP BY ALL
),
operating_available AS (
    SELECT operating_profile, zone_id, CAST(date_trunc('month', day) AS DATE) AS month,
        sum(hours) AS hours
    FROM mart__operating_segments
    GROUP BY ALL
)
SELECT
    CAST(d.equipment_id AS BIGINT) AS equipment_id,
    d.month,
    CAST(i.lab_id AS BIGINT) AS lab_id,
    CAST(i.timezone AS VARCHAR) AS timezone,
    CAST(d.booked_hours AS DOUBLE) AS booked_hours,
    CAST(d.booked_hours_sum AS DOUBLE) AS booked_hours_sum,
    CAST(m.hours AS DOUBLE) AS available_hours,
    CAST(d.booked_hours / nullif(m.hours, 0) AS DOUBLE) AS utilisation,
    CAST(d.maintenance_hours AS DOUBLE) AS maintenance_hours,
    CAST(d.tentative_hours AS DOUBLE) AS tentative_hours,
    CAST(coalesce(c.booking_count, 0) AS BIGINT) AS booking_count,
    CAST(CASE WHEN i.operating_profile IS NOT NULL THEN coalesce(oa.hours, 0) END AS DOUBLE)
        AS operating_hours_available,
    CAST(d.operating_hours_booked AS DOUBLE) AS operating_hours_booked,
    CAST(d.operating_hours_booked / nullif(oa.hours, 0) AS DOUBLE) AS operating_utilisation,
    CAST(NULL AS DOUBLE) AS actual_use_hours
FROM daily AS d
JOIN mart__instruments AS i ON i.equipment_id = d.equipment_id
JOIN mart__local_months AS m ON m.zone_id = i.zone_id AND m.month = d.month
LEFT JOIN counts AS c ON c.equipment_id = d.equipment_id AND c.month = d.month
LEFT JOIN operating_available AS oa
    ON oa.operating_profile = i.operating_profile
    AND oa.zone_id = i.zone_id
    AND oa.month = d.month;
