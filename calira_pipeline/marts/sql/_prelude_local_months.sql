-- Every booking with the first day of the provider-local month of its start: what the cost marts
-- group by. A view: each cost mart reads it once.
CREATE OR REPLACE TEMP VIEW mart__bookings_by_local_month AS
SELECT
    b.*,
    CAST(date_trunc('month', mart__to_local(
        b.start_utc, h.offset_us, h.change_at, h.offset_after_us
    )) AS DATE) AS month
FROM mart__bookings AS b
LEFT JOIN mart__calendar_zones AS z ON z.timezone = b.booking_timezone
LEFT JOIN mart__zone_utc_days AS h
    ON h.utc_day_key = mart__utc_day_key(z.zone_id, b.start_utc);
