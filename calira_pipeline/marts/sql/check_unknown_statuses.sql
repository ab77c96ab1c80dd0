-- Raw bookings whose status is in none of MartSettings' status sets.
SELECT count(*) FROM mart__bookings WHERE status_category = 'unknown';
