-- One row per booking per data-quality issue.
WITH counted_use AS (
    SELECT
        booking_id,
        equipment_id,
        start_utc,
        end_utc,
        max(end_utc) OVER (
            PARTITION BY equipment_id ORDER BY start_utc, end_utc, booking_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS latest_earlier_end,
        lead(start_utc) OVER (
            PARTITION BY equipment_id ORDER BY start_utc, end_utc, booking_id
        ) AS next_start
    FROM mart__bookings
    WHERE usage_role = 'use'
),
issues AS (
    -- Sorted by start: a booking overlaps another iff an earlier one ends after it starts or
    -- the next one starts before it ends.
    SELECT booking_id, 'overlap' AS issue, 'warning' AS severity,
        'overlaps another counted booking on the same instrument' AS detail
    FROM counted_use
    WHERE latest_earlier_end > start_utc OR next_start < end_utc
    UNION ALL
    SELECT booking_id, 'missing_time', 'error', 'start_time or end_time is null'
    FROM mart__bookings
    WHERE start_utc IS NULL OR end_utc IS NULL
    UNION ALL
    SELECT booking_id, 'non_positive_duration', 'error',
        'end_time is not after start_time; the booking adds no hours'
    FROM mart__bookings
    WHERE end_utc <= start_utc
    UNION ALL
    SELECT b.booking_id, 'longer_than_limit', 'info',
        'longer than ' || s.long_booking_hours || ' h: ' || round(b.hours, 2) || ' h'
    FROM mart__bookings AS b CROSS JOIN mart__settings AS s
    WHERE b.hours > s.long_booking_hours
    UNION ALL
    SELECT b.booking_id, 'duration_mismatch', 'warning',
        'duration_minutes ' || b.duration_minutes || ' vs end - start '
        || round(date_diff('second', b.start_utc, b.end_utc) / 60.0, 2) || ' min'
    FROM mart__bookings AS b CROSS JOIN mart__settings AS s
    WHERE abs(b.duration_minutes - date_diff('second', b.start_utc, b.end_utc) / 60.0)
        > s.duration_tolerance_minutes
    UNION ALL
    SELECT booking_id, 'unknown_status', 'warning',
        'status ' || coalesce('''' || status_raw || '''', 'null') || ' is not in MartSettings'
    FROM mart__bookings
    WHERE status_category = 'unknown'
    UNION ALL
    SELECT booking_id, 'unknown_provider_timezone', 'warning',
        CASE
            WHEN provider_lab_id IS NULL THEN 'no provider lab'
            WHEN coalesce(trim(provider_timezone_raw), '') = ''
                THEN 'provider lab ' || provider_lab_id || ' has no time zone'
            ELSE 'provider lab ' || provider_lab_id || ' has time zone '''
                || provider_timezone_raw || ''', which DuckDB does not recognise'
        END || '; bucketed in ' || booking_timezone || ' ('
        || CASE timezone_source
            WHEN 'default' THEN 'CALIRA_DEFAULT_TIMEZONE'
            ELSE 'the zone of the equipment''s lab'
        END || ')'
    FROM mart__bookings
    WHERE provider_timezone IS NULL
    UNION ALL
    SELECT booking_id, 'unknown_currency', 'warning',
        'neither the booking nor its equipment has a currency; its cost stays in the '
        || 'null-currency rows of the cost marts'
    FROM mart__bookings
    WHERE currency_source = 'unknown' AND coalesce(cost, 0) <> 0
    UNION ALL
    SELECT booking_id, 'list_detail_disagreement', 'info',
        'the list item and the detail disagree on ' || list_detail_fields
        || '; the columns hold the detail''s values, raw_json keeps the list''s under _list_values'
    FROM mart__bookings
    WHERE list_detail_fields IS NOT NULL
    UNION ALL
    SELECT booking_id, 'null_cost_counted', 'warning', 'counted booking without a cost'
    FROM mart__bookings
    WHERE usage_role = 'use' AND cost IS NULL
    UNION ALL
    SELECT booking_id, 'missing_equipment', 'error', 'equipment_id is null'
    FROM mart__bookings
    WHERE equipment_id IS NULL
)
SELECT
    CAST(i.booking_id AS BIGINT) AS booking_id,
    CAST(b.equipment_id AS BIGINT) AS equipment_id,
    CAST(b.provider_lab_id AS BIGINT) AS provider_lab_id,
    CAST(i.issue AS VARCHAR) AS issue,
    CAST(i.severity AS VARCHAR) AS severity,
    CAST(i.detail AS VARCHAR) AS detail,
    CAST(b.status_raw AS VARCHAR) AS status,
    b.start_utc AS start_time,
    b.end_utc AS end_time
FROM issues AS i
JOIN mart__bookings AS b ON b.booking_id = i.booking_id;
