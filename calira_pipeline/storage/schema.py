"""Every raw table's columns, declared once as Arrow types (DuckDB types follow from them).

Rows produced by ``calira_pipeline.api.records`` use exactly these column names with plain Python
values: ``int``, ``str``, ``bool``, ``decimal.Decimal`` (money), timezone-aware UTC ``datetime``,
``datetime.date`` and ``None``. Every column except the primary key is nullable because the live
API sends ``null`` for fields the documentation calls required.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 1

ID = pa.int64()
TEXT = pa.string()
MONEY = pa.decimal128(18, 2)
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
DATE = pa.date32()


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    grain: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(c.name, c.type, nullable=c.name not in self.primary_key)
                for c in self.columns
            ]
        )

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _ref(prefix: str, what: str) -> tuple[Column, Column]:
    return (
        Column(f"{prefix}_id", ID, f"Id of the {what}."),
        Column(f"{prefix}_name", TEXT, f"Name of the {what}."),
    )


RAW_JSON = Column(
    "raw_json", TEXT, "The record exactly as the API sent it (JSON), so no field is lost."
)

ACCOUNTS = TableSpec(
    name="accounts",
    grain="One row per account (organisation, department or lab) visible to the integration.",
    primary_key=("id",),
    columns=(
        Column("id", ID, "Account id."),
        Column("name", TEXT, "Account name."),
        Column("account_type", TEXT, "organisation, department or lab."),
        Column("sector", TEXT, "academia or industry."),
        Column("description", TEXT, "Free text."),
        Column("timezone", TEXT, "IANA time zone of the account, e.g. Europe/London."),
        *_ref("department", "department the account belongs to (labs only)"),
        *_ref("organisation", "organisation the account belongs to (null for independent labs)"),
        RAW_JSON,
    ),
)

EQUIPMENT = TableSpec(
    name="equipment",
    grain="One row per piece of equipment (parents and children both appear).",
    primary_key=("id",),
    columns=(
        Column("id", ID, "Equipment id."),
        Column("name", TEXT, "Equipment name."),
        Column("room", TEXT, "Room; empty strings stored as null."),
        Column("manufacturer", TEXT, "Manufacturer."),
        Column("model", TEXT, "Model (the live API calls it model_number)."),
        Column("city", TEXT, "City."),
        Column("country", TEXT, "Country."),
        Column("currency", TEXT, "Currency its bookings are charged in."),
        Column("charging_type", TEXT, "e.g. Per Hour, Per Day."),
        Column("description", TEXT, "Free text."),
        Column(
            "availability_status",
            TEXT,
            "Availability (the list schema spells it availabity_status).",
        ),
        Column("category_name", TEXT, "Category (the API gives a name only)."),
        *_ref("sub_category", "sub-category"),
        *_ref("contact_person", "contact person"),
        *_ref("lab", "lab that owns the equipment"),
        *_ref("parent", "parent equipment (null for top-level equipment)"),
        Column("manufacturing_year", TEXT, "Manufacturing year as sent."),
        Column("serial_number", TEXT, "Serial number."),
        RAW_JSON,
    ),
)

BOOKINGS = TableSpec(
    name="bookings",
    grain="One row per booking, of any status and type.",
    primary_key=("id",),
    columns=(
        Column("id", ID, "Booking id."),
        *_ref("equipment", "booked equipment"),
        Column("start_time", UTC_TIMESTAMP, "Start, UTC."),
        Column("end_time", UTC_TIMESTAMP, "End, UTC."),
        Column("requested_at", UTC_TIMESTAMP, "When the booking was requested, UTC."),
        Column("local_start_time", TEXT, "local_start_time as sent by older API versions."),
        Column("local_end_time", TEXT, "local_end_time as sent by older API versions."),
        Column("booking_type", TEXT, "internal, external or maintenance (as sent)."),
        Column("status", TEXT, "Status as sent (case varies)."),
        Column("cost", MONEY, "Cost in `currency`, exact decimal."),
        Column("currency", TEXT, "ISO currency code of `cost`."),
        Column("charging_type", TEXT, "e.g. Per Hour."),
        Column("duration_minutes", pa.int64(), "The API's `duration` field, minutes."),
        Column("add_ons", TEXT, "Add-ons, free text."),
        Column("requester_group_name", TEXT, "Requester group (the API gives a name only)."),
        *_ref("requester_lab", "requesting lab"),
        *_ref("requester_organisation", "requesting organisation (the lab itself if independent)"),
        *_ref("provider_lab", "lab providing the equipment"),
        *_ref("provider_organisation", "providing organisation (the lab itself if independent)"),
        *_ref("creator", "user who created the booking"),
        *_ref("requester", "user the booking is for"),
        Column("requester_email", TEXT, "Requester email."),
        Column("requester_sector", TEXT, "Requester sector."),
        Column("user_id", ID, "user_id of the slim list shape."),
        Column("last_public_note", TEXT, "Message of the last public note."),
        Column(
            "list_detail_fields",
            TEXT,
            "Fields on which the list item and the detail disagreed, comma-separated (the "
            "columns hold the detail's values; raw_json keeps the list's under _list_values); "
            "null when they agreed.",
        ),
        RAW_JSON,
    ),
)

PROJECTS = TableSpec(
    name="projects",
    grain="One row per project of an account.",
    primary_key=("id",),
    columns=(
        Column("id", ID, "Project id."),
        Column("account_id", ID, "Account the project belongs to."),
        Column("name", TEXT, "Project name."),
        Column("supervisor", TEXT, "Supervisor, free text."),
        Column("additional_information", TEXT, "Free text."),
        RAW_JSON,
    ),
)

PROJECT_FUNDING_CODES = TableSpec(
    name="project_funding_codes",
    grain="One row per funding code of a project.",
    primary_key=("project_id", "position"),
    columns=(
        Column("project_id", ID, "Project id."),
        Column("position", pa.int64(), "Position in the project's funding_codes list."),
        Column("funding_code_id", ID, "Funding code id, when sent."),
        Column("code", TEXT, "The funding code."),
        Column("description", TEXT, "Description, when sent."),
        Column("amount", MONEY, "Amount, when sent."),
        Column("expiry_date", DATE, "Expiry date, when sent."),
        RAW_JSON,
    ),
)

PROJECT_USERS = TableSpec(
    name="project_users",
    grain="One row per user selected on a project.",
    primary_key=("project_id", "user_id"),
    columns=(
        Column("project_id", ID, "Project id."),
        *_ref("user", "user"),
        Column("user_email", TEXT, "User email, when sent."),
    ),
)

GROUPS = TableSpec(
    name="groups",
    grain="One row per group.",
    primary_key=("id",),
    columns=(
        Column("id", ID, "Group id."),
        Column("name", TEXT, "Group name."),
        Column("account_id", ID, "Lab the group was listed under."),
        RAW_JSON,
    ),
)

GROUP_EQUIPMENT = TableSpec(
    name="group_equipment",
    grain="One row per (group, equipment) membership.",
    primary_key=("group_id", "equipment_id"),
    columns=(
        Column("group_id", ID, "Group id."),
        *_ref("equipment", "equipment in the group"),
    ),
)

CURRENT_USER = TableSpec(
    name="current_user",
    grain="One row: the user who authorised the integration (empty for client credentials).",
    primary_key=("id",),
    columns=(
        Column("id", ID, "User id."),
        Column("first_name", TEXT, "First name."),
        Column("last_name", TEXT, "Last name."),
        Column("email", TEXT, "Email, when sent."),
        RAW_JSON,
    ),
)

RAW_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        ACCOUNTS,
        EQUIPMENT,
        BOOKINGS,
        PROJECTS,
        PROJECT_FUNDING_CODES,
        PROJECT_USERS,
        GROUPS,
        GROUP_EQUIPMENT,
        CURRENT_USER,
    )
}
