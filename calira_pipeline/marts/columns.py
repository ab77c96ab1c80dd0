"""Column meanings of the staging tables and marts, shared by their specs (MART_SPECS)."""

from __future__ import annotations

HOURS = "Hours (DOUBLE)."
UTILISATION = {
    "booked_hours": "Union of counted use bookings (overlaps count once). " + HOURS,
    "booked_hours_sum": "Plain sum of counted use bookings; above booked_hours = overbooking. "
    + HOURS,
    "available_hours": "Calendar length in local time (23/24/25 h days, DST-aware). " + HOURS,
    "utilisation": "booked_hours / available_hours, in [0, 1].",
    "maintenance_hours": "Union of counted maintenance bookings: downtime, never use. " + HOURS,
    "tentative_hours": "Plain sum of requested (not yet confirmed) use bookings. " + HOURS,
    "booking_count": "Counted use bookings touching the period.",
    "operating_hours_available": "Staffed hours from OperatingHours; null when not configured.",
    "operating_hours_booked": "booked_hours inside the staffed windows; null when not configured.",
    "operating_utilisation": "operating_hours_booked / operating_hours_available.",
}
INSTRUMENT = {
    "equipment_id": "Equipment id.",
    "lab_id": "Lab owning the equipment (else the provider lab seen most on its bookings).",
    "timezone": "IANA zone the instrument's days are bucketed in.",
}
COST = {
    "currency": "Upper-cased ISO currency: the booking's, else its equipment's (null when "
    "neither has one, a row of its own); never summed across currencies.",
    "booking_type": "Case-folded booking type.",
    "status": "Case-folded, trimmed status.",
    "status_category": "counted, tentative, excluded or unknown (from MartSettings).",
    "booking_count": "Bookings in the row.",
    "total_cost": "Sum of cost, DECIMAL(18,2); null when every cost is null.",
    "null_cost_count": "Bookings in the row without a cost.",
    "booked_hours_sum": "Sum of end - start over bookings with a positive duration.",
    "month": "First day of the provider lab's local month of start_time.",
    "provider_lab_id": "Lab providing the equipment.",
}
NO_PROJECT_NOTE = (
    " Cost per project or funding code is not built: the API's bookings carry no project link."
)

BOOKING_FACTS = {
    "booking_id": "Booking id.",
    "equipment_id": "Equipment id.",
    "start_utc": "Start, UTC.",
    "end_utc": "End, UTC.",
    "status": "Case-folded, trimmed status.",
    "status_raw": "Status as sent.",
    "status_category": "counted, tentative, excluded or unknown.",
    "is_maintenance": "booking_type is a maintenance type.",
    "usage_role": "use, tentative, maintenance or null (feeds no occupancy).",
    "booking_timezone": "Provider lab's zone, else the equipment lab's, else the default.",
    "timezone_source": "provider_lab, equipment_lab or default (CALIRA_DEFAULT_TIMEZONE: "
    "the lab has no zone, or one DuckDB does not recognise).",
    "provider_timezone_raw": "The provider lab's time zone as the API sent it.",
    "currency": "Upper-cased ISO currency: the booking's, else its equipment's.",
    "currency_source": "Where currency came from: booking, equipment or unknown.",
    "list_detail_fields": "Fields on which the list item and the detail disagreed.",
    "hours": "end - start in hours; 0 when not positive or missing.",
}

INTERVAL_DAYS = {
    "kind": "booking, tentative, parent_booking (single bookings) or occupancy, "
    "maintenance, parent_occupancy, parent_maintenance (unions).",
    "equipment_id": "Equipment (the parent for parent_* kinds).",
    "interval_id": "Booking id for single bookings; island number for unions.",
    "timezone": "Zone of the local day.",
    "day": "Local day (DATE).",
    "start_time": "Piece start, UTC.",
    "end_time": "Piece end, UTC.",
    "hours": "Piece length. " + HOURS,
}

HOUR_OF_WEEK = {
    **INSTRUMENT,
    "weekday": "ISO weekday, 1 = Monday.",
    "weekday_name": "Monday .. Sunday.",
    "hour": "Local hour 0-23.",
    "booked_hours": "Union-booked hours in this cell over the window.",
    "available_hours": "Length of this cell summed over the window's days (DST-aware).",
    "occupancy": "booked_hours / available_hours; null when the cell never occurred.",
}

QUALITY_ISSUES = {
    "booking_id": "Booking id.",
    "equipment_id": "Equipment id.",
    "provider_lab_id": "Provider lab.",
    "issue": "Issue code.",
    "severity": "error, warning or info.",
    "detail": "Human-readable detail.",
    "status": "Status as sent.",
    "start_time": "Start, UTC.",
    "end_time": "End, UTC.",
}
