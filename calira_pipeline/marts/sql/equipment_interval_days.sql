-- One row per (kind, equipment, interval, local day the interval covers). Kinds:
--   booking / tentative / parent_booking : individual bookings (sums and counts)
--   occupancy / maintenance / parent_occupancy / parent_maintenance : unions (gaps and islands),
--     so overlapping bookings on one instrument count once.
-- The pieces come from the pieces and parent_pieces preludes (views streamed into this COPY);
-- the daily, parent and hour-of-week marts read this table back (_prelude_staged_pieces.sql).
SELECT
    CAST(kind AS VARCHAR) AS kind,
    CAST(equipment_id AS BIGINT) AS equipment_id,
    CAST(interval_id AS BIGINT) AS interval_id,
    CAST(z.timezone AS VARCHAR) AS timezone,
    CAST(day AS DATE) AS day,
    piece_start AS start_time,
    piece_end AS end_time,
    CAST(hours AS DOUBLE) AS hours
FROM (
    SELECT * FROM mart__day_pieces
    UNION ALL
    SELECT * FROM mart__parent_day_pieces
) AS p
JOIN mart__calendar_zones AS z ON z.zone_id = p.zone_id;
