-- Rows carrying money without a known currency: their cost cannot be kept apart from others.
SELECT count(*)
FROM mart__target
WHERE (currency IS NULL OR trim(currency) = '') AND coalesce(total_cost, 0) <> 0;
