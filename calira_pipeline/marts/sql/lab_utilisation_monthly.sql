-- One row per lab per local month: its instruments' hours summed.
SELECT
    CAST(m.lab_id AS BIGINT) AS lab_id,
    m.month,
    any_value(a.name) AS lab_name,
    CAST(any_value(a.department_id) AS BIGINT) AS department_id,
    CAST(any_value(a.organisation_id) AS BIGINT) AS organisation_id,
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
LEFT JOIN accounts AS a ON a.id = m.lab_id
WHERE m.lab_id IS NOT NULL
GROUP BY m.lab_id, m.month
ORDER BY lab_id, month;
