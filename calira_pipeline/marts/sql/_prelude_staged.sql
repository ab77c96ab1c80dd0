-- The booking_facts mart read back, timestamps naive UTC again (zone-independent arithmetic).
CREATE OR REPLACE TEMP VIEW mart__bookings AS
SELECT * REPLACE (
    make_timestamp(epoch_us(start_utc)) AS start_utc,
    make_timestamp(epoch_us(end_utc)) AS end_utc
)
FROM booking_facts;
