-- Zone names ICU knows, matched case-insensitively; anything else (e.g. a Rails zone name such as
-- "Eastern Time (US & Canada)") is an unknown zone and falls back. zone_id is a small integer key
-- so later joins and sorts never compare zone-name strings.
CREATE OR REPLACE TEMP TABLE mart__zones AS
SELECT
    lower(name) AS zone_key,
    min(name) AS timezone,
    CAST(row_number() OVER (ORDER BY lower(name)) AS INTEGER) AS zone_id
FROM pg_timezone_names()
GROUP BY 1;

CREATE OR REPLACE TEMP TABLE mart__lab_zones AS
SELECT a.id AS lab_id, a.timezone AS timezone_raw, z.timezone, z.zone_id
FROM accounts AS a
LEFT JOIN mart__zones AS z ON z.zone_key = lower(trim(a.timezone));
