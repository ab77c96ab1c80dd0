-- Parent chains and one resolved zone (and operating-hours profile) per instrument.

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

-- One pass over the bookings for everything the instruments and the calendar window need: per
-- instrument, provider lab and zones, the bookings' count and time bounds (a few rows per
-- instrument; the calendar prelude reads its window from here instead of scanning again).
CREATE OR REPLACE TEMP TABLE mart__booking_summary AS
SELECT
    equipment_id,
    provider_lab_id,
    provider_timezone,
    booking_timezone,
    count(*) AS n,
    min(start_utc) AS min_start,
    min(end_utc) AS min_end,
    max(start_utc) AS max_start,
    max(end_utc) AS max_end
FROM mart__bookings
GROUP BY ALL;

-- One zone per instrument so its days are consistent: the provider lab seen most often on its
-- bookings (with a known zone), else its own lab's zone, else the configured default.
CREATE OR REPLACE TEMP TABLE mart__instruments AS
WITH ids AS (
    SELECT id AS equipment_id FROM equipment
    UNION
    SELECT equipment_id FROM mart__booking_summary WHERE equipment_id IS NOT NULL
    UNION
    SELECT ancestor_id FROM mart__ancestors
),
provider_counts AS (
    SELECT equipment_id, provider_lab_id, provider_timezone, sum(n) AS n
    FROM mart__booking_summary
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
    z.zone_id,
    CASE
        WHEN lab_profile.profile IS NOT NULL THEN lab_profile.profile
        WHEN default_profile.profile IS NOT NULL THEN default_profile.profile
    END AS operating_profile
FROM resolved AS r
JOIN mart__zones AS z ON z.timezone = r.timezone
LEFT JOIN mart__operating_profiles AS lab_profile ON lab_profile.lab_id = r.lab_id
LEFT JOIN mart__operating_profiles AS default_profile
    ON default_profile.lab_id IS NULL AND default_profile.profile = 'default';

-- The daily mart keys an (instrument, day) as one BIGINT, id * 2^22 + day number, so an id must
-- lie within +-2^41 (2,199,023,255,552). Real ids are far smaller; a larger one (a corrupt or
-- hostile payload) is named here instead of overflowing deep inside a join with DuckDB's bare
-- "Overflow in multiplication of INT64". A table, so the check runs now, before any mart.
CREATE OR REPLACE TEMP TABLE mart__id_range_checked AS
SELECT CAST(error(
    'equipment id ' || equipment_id || ' (from the equipment table or a booking''s equipment) '
    || 'is outside +-2199023255552, the ids the daily mart''s (instrument, day) key can hold; '
    || 'real Calira ids are far smaller: check the raw equipment and bookings tables for a '
    || 'corrupt id (calira_pipeline.connect(): SELECT * FROM equipment WHERE id = '
    || equipment_id || ')'
) AS VARCHAR) AS failure
FROM mart__instruments
WHERE equipment_id NOT BETWEEN -2199023255552 AND 2199023255551;
