-- One row per organisation per local month. An independent lab (no organisation) rolls up to
-- itself, as the API itself reports the lab as its own organisation.
WITH labs AS (
    SELECT
        m.*,
        coalesce(a.organisation_id, m.lab_id) AS org_key,
        a.organisation_id IS NULL AS is_independent_lab,
        coalesce(o.name, a.organisation_name, CASE WHEN a.organisation_id IS NULL THEN a.name END)
            AS org_name
    FROM equipment_utilisation_monthly AS m
    LEFT JOIN accounts AS a ON a.id = m.lab_id
    LEFT JOIN accounts AS o ON o.id = a.organisation_id
    WHERE m.lab_id IS NOT NULL
)
SELECT
    CAST(m.org_key AS BIGINT) AS organisation_id,
    m.month,
    any_value(m.org_name) AS organisation_name,
    bool_and(m.is_independent_lab) AS is_independent_lab,
    count(DISTINCT m.lab_id) AS lab_count,
    unnest(mart__utilisation_sums(m))
FROM labs AS m
GROUP BY m.org_key, m.month;
