-- Shared temp tables for every mart: bookings normalised once (status category, usage role,
-- provider-lab time zone) and one resolved zone per instrument.
-- Timestamps become naive UTC here (via epoch microseconds, no ICU call) so no later step depends
-- on the session's TimeZone; marts emit naive UTC and build_mart labels those columns UTC.

-- Zone names ICU knows, matched case-insensitively; anything else (e.g. a Rails zone name such as
-- "Eastern Time (US & Canada)") is an unknown zone and falls back.
CREATE OR REPLACE TEMP TABLE mart__zones AS
SELECT lower(name) AS zone_key, min(name) AS timezone
FROM pg_timezone_names()
GROUP BY 1;

CREATE OR REPLACE TEMP TABLE mart__lab_zones AS
SELECT a.id AS lab_id, a.timezone AS timezone_raw, z.timezone
FROM accounts AS a
LEFT JOIN mart__zones AS z ON z.zone_key = lower(trim(a.timezone));

CREATE OR REPLACE TEMP TABLE mart__bookings AS
WITH normalised AS (
    SELECT
        b.id AS booking_id,
        b.equipment_id,
        make_timestamp(epoch_us(b.start_time)) AS start_utc,
        make_timestamp(epoch_us(b.end_time)) AS end_utc,
        b.duration_minutes,
        b.cost,
        upper(trim(b.currency)) AS currency,
        lower(trim(b.status)) AS status,
        b.status AS status_raw,
        lower(trim(b.booking_type)) AS booking_type,
        b.provider_lab_id,
        b.requester_lab_id,
        b.requester_group_name,
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

-- Parent chains (children of children too); the depth cap stops a cyclic parent_id.
CREATE OR REPLACE TEMP TABLE mart__ancestors AS
WITH RECURSIVE chain(equipment_id, ancestor_id, depth) AS (
    SELECT id, parent_id, 1
    FROM equipment
    WHERE parent_id IS NOT NULL AND parent_id <> id
    UNION ALL
    SELECT c.equipment_id, e.parent_id, c.depth + 1
    FROM chain AS c
    JOIN equipment AS e ON e.id = c.ancestor_id
    WHERE e.parent_id IS NOT NULL AND c.depth < 16
)
SELECT DISTINCT equipment_id, ancestor_id
FROM chain
WHERE ancestor_id <> equipment_id;

-- One zone per instrument so its days are consistent: the provider lab seen most often on its
-- bookings (with a known zone), else its own lab's zone, else the configured default.
CREATE OR REPLACE TEMP TABLE mart__instruments AS
WITH ids AS (
    SELECT id AS equipment_id FROM equipment
    UNION
    SELECT equipment_id FROM mart__bookings WHERE equipment_id IS NOT NULL
    UNION
    SELECT ancestor_id FROM mart__ancestors
),
provider_counts AS (
    SELECT equipment_id, provider_lab_id, provider_timezone, count(*) AS n
    FROM mart__bookings
    WHERE equipment_id IS NOT NULL AND provider_lab_id IS NOT NULL
    GROUP BY ALL
),
usual_provider AS (
    SELECT equipment_id, provider_lab_id
    FROM provider_counts
    QUALIFY row_number() OVER (PARTITION BY equipment_id ORDER BY n DESC, provider_lab_id) = 1
),
usual_provider_zone AS (
    SELECT equipment_id, provider_timezone
    FROM provider_counts
    WHERE provider_timezone IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY equipment_id ORDER BY n DESC, provider_lab_id) = 1
),
resolved AS (
    SELECT
        ids.equipment_id,
        coalesce(e.lab_id, up.provider_lab_id) AS lab_id,
        coalesce(upz.provider_timezone, ez.timezone, s.default_timezone) AS timezone,
        CASE
            WHEN upz.provider_timezone IS NOT NULL THEN 'provider_lab'
            WHEN ez.timezone IS NOT NULL THEN 'equipment_lab'
            ELSE 'default'
        END AS timezone_source
    FROM ids
    CROSS JOIN mart__settings AS s
    LEFT JOIN equipment AS e ON e.id = ids.equipment_id
    LEFT JOIN usual_provider AS up ON up.equipment_id = ids.equipment_id
    LEFT JOIN usual_provider_zone AS upz ON upz.equipment_id = ids.equipment_id
    LEFT JOIN mart__lab_zones AS ez ON ez.lab_id = e.lab_id
)
SELECT
    r.*,
    CASE
        WHEN lab_profile.profile IS NOT NULL THEN lab_profile.profile
        WHEN default_profile.profile IS NOT NULL THEN default_profile.profile
    END AS operating_profile
FROM resolved AS r
LEFT JOIN mart__operating_profiles AS lab_profile ON lab_profile.lab_id = r.lab_id
LEFT JOIN mart__operating_profiles AS default_profile
    ON default_profile.lab_id IS NULL AND default_profile.profile = 'default';
