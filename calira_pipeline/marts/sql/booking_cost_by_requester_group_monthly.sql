-- One row per (provider-local month, provider lab, requester group, currency, booking type,
-- status). The API names requester groups only (no id), so the name is the key. Aggregated in two
-- steps (per requesting lab, then per row) instead of a DISTINCT aggregate (much slower).
WITH per_requester_lab AS (
    SELECT
        month,
        provider_lab_id,
        requester_group_name,
        currency,
        booking_type,
        status,
        requester_lab_id,
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
    CAST(requester_group_name AS VARCHAR) AS requester_group_name,
    CAST(currency AS VARCHAR) AS currency,
    CAST(booking_type AS VARCHAR) AS booking_type,
    CAST(status AS VARCHAR) AS status,
    CAST(any_value(status_category) AS VARCHAR) AS status_category,
    CAST(sum(booking_count) AS BIGINT) AS booking_count,
    CAST(count(requester_lab_id) AS BIGINT) AS requester_lab_count,
    CAST(sum(total_cost) AS DECIMAL(18, 2)) AS total_cost,
    CAST(sum(booking_count) - sum(cost_count) AS BIGINT) AS null_cost_count,
    CAST(sum(booked_hours_sum) AS DOUBLE) AS booked_hours_sum
FROM per_requester_lab
GROUP BY month, provider_lab_id, requester_group_name, currency, booking_type, status
ORDER BY month, provider_lab_id, requester_group_name, currency, booking_type, status;
