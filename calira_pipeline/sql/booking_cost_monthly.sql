-- One row per (provider-local month of start_time, provider lab, requester lab, currency,
-- booking type, status). Every status is kept; nothing is ever summed across currencies.
WITH located AS (
    SELECT b.*, CAST(date_trunc('month', b.start_utc + p.utc_offset) AS DATE) AS month
    FROM mart__bookings AS b
    LEFT JOIN mart__calendar_zones AS z ON z.timezone = b.booking_timezone
    LEFT JOIN mart__zone_periods AS p
        ON p.zone_id = z.zone_id
        AND b.start_utc >= p.period_start
        AND b.start_utc < p.period_end
)
SELECT
    month,
    CAST(provider_lab_id AS BIGINT) AS provider_lab_id,
    CAST(requester_lab_id AS BIGINT) AS requester_lab_id,
    CAST(currency AS VARCHAR) AS currency,
    CAST(booking_type AS VARCHAR) AS booking_type,
    CAST(status AS VARCHAR) AS status,
    CAST(any_value(status_category) AS VARCHAR) AS status_category,
    CAST(string_agg(DISTINCT status_raw, ', ' ORDER BY status_raw) AS VARCHAR) AS status_raw_values,
    CAST(count(*) AS BIGINT) AS booking_count,
    CAST(sum(cost) AS DECIMAL(18, 2)) AS total_cost,
    CAST(count(*) - count(cost) AS BIGINT) AS null_cost_count,
    CAST(sum(hours) AS DOUBLE) AS booked_hours_sum
FROM located
GROUP BY ALL
ORDER BY month, provider_lab_id, requester_lab_id, currency, booking_type, status;
