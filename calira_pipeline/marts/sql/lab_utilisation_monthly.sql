-- One row per lab per local month: its instruments' hours summed.
SELECT
    CAST(m.lab_id AS BIGINT) AS lab_id,
    m.month,
    any_value(a.name) AS lab_name,
    CAST(any_value(a.department_id) AS BIGINT) AS department_id,
    CAST(any_value(a.organisation_id) AS BIGINT) AS organisation_id,
    unnest(mart__utilisation_sums(m))
FROM equipment_utilisation_monthly AS m
LEFT JOIN accounts AS a ON a.id = m.lab_id
WHERE m.lab_id IS NOT NULL
GROUP BY m.lab_id, m.month;
