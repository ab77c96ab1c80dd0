-- Currencies whose booking count or exact total cost differ between the mart and raw bookings.
WITH mart AS (
    SELECT currency, sum(booking_count) AS bookings, sum(total_cost) AS cost
    FROM mart__target
    GROUP BY ALL
),
raw AS (
    SELECT currency, count(*) AS bookings, sum(cost) AS cost
    FROM mart__bookings
    GROUP BY ALL
)
SELECT count(*)
FROM mart
FULL OUTER JOIN raw ON raw.currency IS NOT DISTINCT FROM mart.currency
WHERE mart.bookings IS DISTINCT FROM raw.bookings
    OR coalesce(mart.cost, 0) <> coalesce(raw.cost, 0);
