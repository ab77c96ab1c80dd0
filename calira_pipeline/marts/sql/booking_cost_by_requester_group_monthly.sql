-- One row per (provider-local month, provider lab, requester group, currency, booking type,
-- status). The API names requester groups only (no id), so the name is the key.
SELECT
    month,
    CAST(provider_lab_id AS BIGINT) AS provider_lab_id,
    CAST(requester_group_name AS VARCHAR) AS requester_group_name,
    CAST(currency AS VARCHAR) AS currency,
    CAST(booking_type AS VARCHAR) AS booking_type,
    CAST(status AS VARCHAR) AS status,
    CAST(status_category AS VARCHAR) AS status_category,
    booking_count,
    detail_count AS requester_lab_count,
    total_cost,
    null_cost_count,
    booked_hours_sum
FROM mart__cost_rows(
    ['month', 'provider_lab_id', 'requester_group_name', 'currency', 'booking_type', 'status'],
    'requester_lab_id'
);
