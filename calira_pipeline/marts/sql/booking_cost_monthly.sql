-- One row per (provider-local month of start_time, provider lab, requester lab, currency,
-- booking type, status). Every status is kept; nothing is ever summed across currencies.
-- Aggregated in two steps (per raw status spelling, then per row) instead of a DISTINCT
-- aggregate, which is far slower in DuckDB's hash aggregate.
WITH per_spelling AS (
    SELECT
        month,
        provider_lab_id,
        requester_lab_id,
        currency,
        booking_type,
        status,
        status_raw,
        any_value(status_category) AS status_category,
        count(*) AS booking_count,
        sum(cost) AS total_cost,
        count(cost) AS cost_count,
        sum(hours) AS booked_hours_sum
    FROM mart__bookings_by_local_month
    GROUP BY ALL
)
SELECT
    month,
    CAST(provider_lab_id AS BIGINT) AS provider_lab_id,
    CAST(requester_lab_id AS BIGINT) AS requester_lab_id,
    CAST(currency AS VARCHAR) AS currency,
    CAST(booking_type AS VARCHAR) AS booking_type,
    CAST(status AS VARCHAR) AS status,
    CAST(any_value(status_category) AS VARCHAR) AS status_category,
    CAST(CASE WHEN count(status_raw) > 0 THEN array_to_string(
        list_sort(list(status_raw) FILTER (WHERE status_raw IS NOT NULL)), ', '
    ) END AS VARCHAR) AS status_raw_values,
    CAST(sum(booking_count) AS BIGINT) AS booking_count,
    CAST(sum(total_cost) AS DECIMAL(18, 2)) AS total_cost,
    CAST(sum(booking_count) - sum(cost_count) AS BIGINT) AS null_cost_count,
    CAST(sum(booked_hours_sum) AS DOUBLE) AS booked_hours_sum
FROM per_spelling
GROUP BY month, provider_lab_id, requester_lab_id, currency, booking_type, status
ORDER BY month, provider_lab_id, requester_lab_id, currency, booking_type, status;
