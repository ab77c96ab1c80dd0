-- One row per raw booking, normalised once for every downstream mart.
SELECT * FROM mart__bookings;
