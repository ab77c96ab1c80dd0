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
    count(DISTINCT m.equipment_id) AS instrument_count,
    sum(m.booked_hours) AS booked_hours,
    sum(m.booked_hours_sum) AS booked_hours_sum,
    sum(m.available_hours) AS available_hours,
    sum(m.booked_hours) / nullif(sum(m.available_hours), 0) AS utilisation,
    sum(m.maintenance_hours) AS maintenance_hours,
    sum(m.tentative_hours) AS tentative_hours,
    CAST(sum(m.booking_count) AS BIGINT) AS booking_count,
    sum(m.operating_hours_available) AS operating_hours_available,
    sum(m.operating_hours_booked) AS operating_hours_booked,
    sum(m.operating_hours_booked) / nullif(sum(m.operating_hours_available), 0)
        AS operating_utilisation
FROM labs AS m
GROUP BY m.org_key, m.month
ORDER BY organisation_id, month;
