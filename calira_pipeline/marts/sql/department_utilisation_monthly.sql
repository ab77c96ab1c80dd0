-- One row per department per local month. Labs with no department (independent labs, labs
-- directly under an organisation) are left out here; they appear in the lab and organisation marts.
SELECT
    CAST(a.department_id AS BIGINT) AS department_id,
    m.month,
    coalesce(any_value(d.name), any_value(a.department_name)) AS department_name,
    CAST(any_value(a.organisation_id) AS BIGINT) AS organisation_id,
    count(DISTINCT m.lab_id) AS lab_count,
    unnest(mart__utilisation_sums(m))
FROM equipment_utilisation_monthly AS m
JOIN accounts AS a ON a.id = m.lab_id
LEFT JOIN accounts AS d ON d.id = a.department_id
WHERE a.department_id IS NOT NULL
GROUP BY a.department_id, m.month;
