-- What every utilisation roll-up (lab, department, organisation) sums over its instruments'
-- equipment_utilisation_monthly rows, declared once: `m` is such a row as a struct (the roll-up's
-- table alias) and the roll-up unnests the result into these columns, in this order.
CREATE OR REPLACE TEMP MACRO mart__utilisation_sums(m) AS struct_pack(
    instrument_count := count(DISTINCT m.equipment_id),
    booked_hours := sum(m.booked_hours),
    booked_hours_sum := sum(m.booked_hours_sum),
    available_hours := sum(m.available_hours),
    utilisation := sum(m.booked_hours) / nullif(sum(m.available_hours), 0),
    maintenance_hours := sum(m.maintenance_hours),
    tentative_hours := sum(m.tentative_hours),
    booking_count := CAST(sum(m.booking_count) AS BIGINT),
    operating_hours_available := sum(m.operating_hours_available),
    operating_hours_booked := sum(m.operating_hours_booked),
    operating_utilisation :=
        sum(m.operating_hours_booked) / nullif(sum(m.operating_hours_available), 0)
);
