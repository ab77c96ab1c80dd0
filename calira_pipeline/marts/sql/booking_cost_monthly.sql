-- One row per (provider-local month of start_time, provider lab, requester lab, currency,
-- booking type, status). Every status is kept; nothing is ever summed across currencies.
SELECT
    month,
    CAST(provider_lab_id AS BIGINT) AS provider_lab_id,
    CAST(requester_lab_id AS BIGINT) AS requester_lab_id,
    CAST(currency AS VARCHAR) AS currency,
    CAST(booking_type AS VARCHAR) AS booking_type,
    CAST(status AS VARCHAR) AS status,
    CAST(status_category AS VARCHAR) AS status_category,
    CAST(CASE WHEN detail_count > 0 THEN array_to_string(list_sort(detail_values), ', ') END
        AS VARCHAR) AS status_raw_values,
    booking_count,
    total_cost,
    null_cost_count,
    booked_hours_sum
FROM mart__cost_rows(
    ['month', 'provider_lab_id', 'requester_lab_id', 'currency', 'booking_type', 'status'],
    'status_raw'
);
