-- One row per department per local month. Labs with no department (independent labs, labs
-- directly under an organisation) are left out here; they appear in the lab and organisation marts.
SELECT
    CAST(a.department_id AS BIGINT) AS department_id,
    m.month,
    coalesce(any_value(d.name), any_value(a.department_name)) AS department_name,
    CAST(any_value(a.organisation_id) AS BIGINT) AS organisation_id,
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
FROM equipment_utilisation_monthly AS m
JOIN accounts AS a ON a.id = m.lab_id
LEFT JOIN accounts AS d ON d.id = a.department_id
WHERE a.department_id IS NOT NULL
GROUP BY a.department_id, m.month
ORDER BY department_id, month;
