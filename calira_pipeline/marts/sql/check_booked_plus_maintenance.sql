-- Periods where use plus downtime exceed the hours there are: maintenance overlapping counted
-- use in the source calendar (each union is right on its own; together they double count).
SELECT count(*)
FROM mart__target AS t
CROSS JOIN mart__settings AS s
WHERE t.booked_hours + t.maintenance_hours > t.available_hours + s.hours_tolerance;
