-- Bookings normalised from the raw table: status category, usage role, provider-lab time zone,
-- currency (the equipment's when the booking has none, as in details captured before 2023).
-- Timestamps become naive UTC here (via epoch microseconds, no ICU call) so no later step depends
-- on the session's TimeZone; marts emit naive UTC and build_mart labels those columns UTC.
-- The booking_facts mart stores this once; checks recompute it from raw to reconcile against.
CREATE OR REPLACE TEMP VIEW mart__bookings AS
WITH normalised AS (
    SELECT
        b.id AS booking_id,
        b.equipment_id,
        make_timestamp(epoch_us(b.start_time)) AS start_utc,
        make_timestamp(epoch_us(b.end_time)) AS end_utc,
        b.duration_minutes,
        b.cost,
        upper(coalesce(nullif(trim(b.currency), ''), nullif(trim(e.currency), ''))) AS currency,
        CASE
            WHEN nullif(trim(b.currency), '') IS NOT NULL THEN 'booking'
            WHEN nullif(trim(e.currency), '') IS NOT NULL THEN 'equipment'
            ELSE 'unknown'
        END AS currency_source,
        lower(trim(b.status)) AS status,
        b.status AS status_raw,
        lower(trim(b.booking_type)) AS booking_type,
        b.provider_lab_id,
        b.requester_lab_id,
        b.requester_group_name,
        b.list_detail_fields,
        e.lab_id AS equipment_lab_id
    FROM bookings AS b
    LEFT JOIN equipment AS e ON e.id = b.equipment_id
),
classified AS (
    SELECT
        n.*,
        coalesce(sm.category, 'unknown') AS status_category,
        mt.booking_type IS NOT NULL AS is_maintenance,
        pz.timezone AS provider_timezone,
        pz.timezone_raw AS provider_timezone_raw,
        coalesce(pz.timezone, ez.timezone, s.default_timezone) AS booking_timezone,
        CASE
            WHEN pz.timezone IS NOT NULL THEN 'provider_lab'
            WHEN ez.timezone IS NOT NULL THEN 'equipment_lab'
            ELSE 'default'
        END AS timezone_source,
        coalesce(n.end_utc > n.start_utc, FALSE) AS has_valid_interval
    FROM normalised AS n
    CROSS JOIN mart__settings AS s
    LEFT JOIN mart__status_map AS sm ON sm.status = n.status
    LEFT JOIN mart__maintenance_types AS mt ON mt.booking_type = n.booking_type
    LEFT JOIN mart__lab_zones AS pz ON pz.lab_id = n.provider_lab_id
    LEFT JOIN mart__lab_zones AS ez ON ez.lab_id = n.equipment_lab_id
)
SELECT
    c.*,
    CASE
        WHEN c.has_valid_interval
            THEN CAST(date_diff('microsecond', c.start_utc, c.end_utc) AS DOUBLE) / 3600e6
        ELSE 0.0
    END AS hours,
    -- Which occupancy stream the booking feeds; NULL = none (excluded, unknown, invalid).
    CASE
        WHEN NOT c.has_valid_interval OR c.equipment_id IS NULL THEN NULL
        WHEN c.is_maintenance AND (
            c.status_category = 'counted'
            OR (c.status_category = 'tentative' AND s.maintenance_includes_tentative)
        ) THEN 'maintenance'
        WHEN c.is_maintenance THEN NULL
        WHEN c.status_category = 'counted' THEN 'use'
        WHEN c.status_category = 'tentative' THEN 'tentative'
    END AS usage_role
FROM classified AS c
CROSS JOIN mart__settings AS s;

