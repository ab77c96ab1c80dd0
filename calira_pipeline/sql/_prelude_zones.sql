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

