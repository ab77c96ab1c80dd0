-- One row per tenant, organisation and local month, over every tenant's
-- organisation_utilisation_monthly. Ids are a tenant's own: every key includes the tenant, so
-- one tenant's organisation 5 is never another tenant's organisation 5.
SELECT
    tenant,
    organisation_id,
    month,
    organisation_name,
    is_independent_lab,
    lab_count,
    instrument_count,
    booked_hours,
    available_hours,
    utilisation,
    maintenance_hours,
    booking_count
FROM organisation_utilisation_monthly
ORDER BY tenant, organisation_id, month
