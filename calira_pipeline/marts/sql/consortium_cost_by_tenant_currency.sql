-- One row per tenant, currency and provider-local month: counted cost only (the headline
-- definition), DECIMAL(18,2), never summed across currencies or tenants.
SELECT
    tenant,
    currency,
    month,
    CAST(sum(total_cost) AS DECIMAL(18, 2)) AS counted_cost,
    CAST(sum(booking_count) AS BIGINT) AS booking_count,
    CAST(sum(null_cost_count) AS BIGINT) AS null_cost_count
FROM booking_cost_monthly
WHERE status_category = 'counted'
GROUP BY tenant, currency, month
ORDER BY tenant, currency NULLS LAST, month
