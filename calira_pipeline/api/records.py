"""API records -> rows keyed exactly by ``calira_pipeline.storage.schema`` column names.

Tolerant by design: aliases between API versions, every field but ``id`` optional, ``""`` as
null. Anything the parser does not know stays in ``raw_json`` and is counted, never dropped.
"""

from __future__ import annotations

from typing import Any

from .fields import (
    RefColumns,
    Where,
    first_present,
    opt_date,
    opt_int,
    opt_money,
    opt_text,
    opt_timestamp,
    raw_json,
    ref,
    ref_into,
    sub,
)
from .merge import LIST_VALUES_KEY
from .results import UnknownFields

Row = dict[str, Any]

KNOWN_FIELDS: dict[str, frozenset[str]] = {
    "accounts": frozenset(
        (
            "id",
            "name",
            "account_type",
            "sector",
            "description",
            "timezone",
            "department",
            "organisation",
            "labs",
            "departments",
        )
    ),
    "equipment": frozenset(
        (
            "id",
            "name",
            "room",
            "manufacturer",
            "model",
            "model_number",
            "city",
            "country",
            "currency",
            "charging_type",
            "description",
            "availability_status",
            "availabity_status",
            "category",
            "sub_category",
            "contact_person",
            "lab",
            "parent",
            "parent_id",
            "parent_name",
            "manufacturing_year",
            "serial_number",
        )
    ),
    "bookings": frozenset(
        (
            "id",
            "equipment_id",
            "asset_id",
            "equipment",
            "asset",
            "start_time",
            "end_time",
            "requested_at",
            "local_start_time",
            "local_end_time",
            "booking_type",
            "status",
            "cost",
            "currency",
            "charging_type",
            "duration",
            "add_ons",
            "requester_group",
            "requester_lab",
            "requester_organisation",
            "provider_lab",
            "provider_organisation",
            "creator",
            "requester",
            "user_id",
            "last_public_note",
        )
    ),
    "projects": frozenset(
        (
            "id",
            "account_id",
            "name",
            "supervisor",
            "additional_information",
            "funding_codes",
            "selected_users",
        )
    ),
    "groups": frozenset(("id", "name", "equipment")),
    "current_user": frozenset(("id", "first_name", "last_name", "email")),
}
# Added by the client itself when a list item and its detail disagree (see api.merge).
KNOWN_FIELDS = {name: fields | {LIST_VALUES_KEY} for name, fields in KNOWN_FIELDS.items()}


# Fast paths below check BIGINT range with literals (INT64_MIN/INT64_MAX in fields.py): half
# the cost of global lookups, on every booking.


def _required_id(record: dict[str, Any], where: Where) -> int:
    raw = record.get("id")
    if raw.__class__ is int and -0x8000000000000000 <= raw <= 0x7FFFFFFFFFFFFFFF:
        return raw
    value = opt_int(raw, "id", where)
    if value is None:
        raise where.error("id", record.get("id"), "an integer id")
    return value


def parse_account(record: dict[str, Any], where: Where, unknown: UnknownFields) -> Row:
    unknown.note("accounts", record, KNOWN_FIELDS["accounts"])
    return {
        "id": _required_id(record, where),
        **{
            col: opt_text(record.get(col), col, where)
            for col in ("name", "account_type", "sector", "description", "timezone")
        },
        **ref(record, "department", "department", where),
        **ref(record, "organisation", "organisation", where),
        "raw_json": raw_json(record),
    }


def parse_equipment(
    record: dict[str, Any], where: Where, unknown: UnknownFields, listed_lab_id: int | None
) -> Row:
    unknown.note("equipment", record, KNOWN_FIELDS["equipment"])
    text_cols = (
        "name",
        "room",
        "manufacturer",
        "city",
        "country",
        "currency",
        "charging_type",
        "description",
        "manufacturing_year",
        "serial_number",
    )
    row: Row = {"id": _required_id(record, where)}
    row.update({col: opt_text(record.get(col), col, where) for col in text_cols})
    model_key, model = first_present(record, "model", "model_number")
    row["model"] = opt_text(model, model_key, where)
    status_key, status = first_present(record, "availability_status", "availabity_status")
    row["availability_status"] = opt_text(status, status_key, where)
    category = record.get("category")
    category_name = category.get("name") if isinstance(category, dict) else category
    row["category_name"] = opt_text(category_name, "category.name", where)
    row.update(ref(record, "sub_category", "sub_category", where))
    row.update(ref(record, "contact_person", "contact_person", where))
    row.update(ref(record, "lab", "lab", where))
    if row["lab_id"] is None:  # lab-scoped list: the lab we listed under owns it
        row["lab_id"] = listed_lab_id
    if isinstance(record.get("parent"), dict):
        row.update(ref(record, "parent", "parent", where))
    else:
        row["parent_id"] = opt_int(record.get("parent_id"), "parent_id", where)
        row["parent_name"] = opt_text(record.get("parent_name"), "parent_name", where)
    row["raw_json"] = raw_json(record)
    return row


_BOOKING_TIMESTAMPS = ("start_time", "end_time", "requested_at")
_BOOKING_TEXTS = (
    "local_start_time",
    "local_end_time",
    "booking_type",
    "status",
    "currency",
    "charging_type",
    "add_ons",
)
_BOOKING_REFS = tuple(
    RefColumns.of(key)
    for key in (
        "requester_lab",
        "requester_organisation",
        "provider_lab",
        "provider_organisation",
        "creator",
        "requester",
    )
)


def _booking_equipment(record: dict[str, Any], where: Where) -> Row:
    nested = sub(record, "equipment") or sub(record, "asset")
    id_key, equipment_id = first_present(record, "equipment_id", "asset_id")
    if equipment_id is None:
        id_key, equipment_id = "equipment.id", nested.get("id")
    return {
        "equipment_id": opt_int(equipment_id, id_key, where),
        "equipment_name": opt_text(nested.get("name"), "equipment.name", where),
    }


def _nested_text(record: dict[str, Any], key: str, inner: str, field: str, where: Where) -> Any:
    """``opt_text(sub(record, key).get(inner), field, where)``, fast for the usual shapes."""
    nested = record.get(key)
    value = nested.get(inner) if nested.__class__ is dict else sub(record, key).get(inner)
    return (value or None) if value.__class__ is str else opt_text(value, field, where)


def parse_booking(record: dict[str, Any], where: Where, unknown: UnknownFields) -> Row:
    # Hot path (one call per booking): fields are checked in the same order as before, with
    # exact-type fast paths that fall back to the lenient helpers for anything unusual.
    unknown.note("bookings", record, KNOWN_FIELDS["bookings"])
    get = record.get
    row: Row = {"id": _required_id(record, where), **_booking_equipment(record, where)}
    for col in _BOOKING_TIMESTAMPS:
        row[col] = opt_timestamp(get(col), col, where)
    for col in _BOOKING_TEXTS:
        value = get(col)
        row[col] = (value or None) if value.__class__ is str else opt_text(value, col, where)
    row["cost"] = opt_money(get("cost"), "cost", where)
    duration = get("duration")
    row["duration_minutes"] = (
        duration
        if duration.__class__ is int and -0x8000000000000000 <= duration <= 0x7FFFFFFFFFFFFFFF
        else opt_int(duration, "duration", where)
    )
    row["requester_group_name"] = _nested_text(
        record, "requester_group", "name", "requester_group.name", where
    )
    for cols in _BOOKING_REFS:
        ref_into(row, record, cols, where)
    row["requester_email"] = _nested_text(record, "requester", "email", "requester.email", where)
    row["requester_sector"] = _nested_text(record, "requester", "sector", "requester.sector", where)
    user_id = get("user_id")
    row["user_id"] = (
        user_id
        if user_id.__class__ is int and -0x8000000000000000 <= user_id <= 0x7FFFFFFFFFFFFFFF
        else opt_int(user_id, "user_id", where)
    )
    row["last_public_note"] = _nested_text(
        record, "last_public_note", "message", "last_public_note.message", where
    )
    listed = get(LIST_VALUES_KEY)
    row["list_detail_fields"] = ", ".join(sorted(listed)) if isinstance(listed, dict) else None
    row["raw_json"] = raw_json(record)
    return row


def parse_project(
    record: dict[str, Any], where: Where, unknown: UnknownFields, account_id: int
) -> tuple[Row, list[Row], list[Row]]:
    """One project row plus its funding-code and selected-user rows."""
    unknown.note("projects", record, KNOWN_FIELDS["projects"])
    project_id = _required_id(record, where)
    project = {
        "id": project_id,
        "account_id": opt_int(record.get("account_id"), "account_id", where) or account_id,
        **{
            col: opt_text(record.get(col), col, where)
            for col in ("name", "supervisor", "additional_information")
        },
        "raw_json": raw_json(record),
    }
    codes = record.get("funding_codes")
    funding = [
        _funding_code(project_id, position, item, where)
        for position, item in enumerate(codes if isinstance(codes, list) else [])
    ]
    users_raw = record.get("selected_users")
    users = [
        _project_user(project_id, item, where)
        for item in (users_raw if isinstance(users_raw, list) else [])
    ]
    return project, funding, [u for u in users if u is not None]


def _funding_code(project_id: int, position: int, item: object, where: Where) -> Row:
    data = item if isinstance(item, dict) else {"code": item}
    return {
        "project_id": project_id,
        "position": position,
        "funding_code_id": opt_int(data.get("id"), "funding_codes.id", where),
        "code": opt_text(data.get("code", data.get("name")), "funding_codes.code", where),
        "description": opt_text(data.get("description"), "funding_codes.description", where),
        "amount": opt_money(data.get("amount"), "funding_codes.amount", where),
        "expiry_date": opt_date(data.get("expiry_date"), "funding_codes.expiry_date", where),
        "raw_json": raw_json(data),
    }


def _project_user(project_id: int, item: object, where: Where) -> Row | None:
    data = item if isinstance(item, dict) else {"id": item}
    user_id = opt_int(data.get("id", data.get("user_id")), "selected_users.id", where)
    if user_id is None:
        return None
    name = data.get("name")
    if name in (None, "") and (data.get("first_name") or data.get("last_name")):
        name = " ".join(str(data[k]) for k in ("first_name", "last_name") if data.get(k))
    return {
        "project_id": project_id,
        "user_id": user_id,
        "user_name": opt_text(name, "selected_users.name", where),
        "user_email": opt_text(data.get("email"), "selected_users.email", where),
    }


def parse_group(
    record: dict[str, Any], where: Where, unknown: UnknownFields, account_id: int | None
) -> tuple[Row, list[Row]]:
    unknown.note("groups", record, KNOWN_FIELDS["groups"])
    group_id = _required_id(record, where)
    group = {
        "id": group_id,
        "name": opt_text(record.get("name"), "name", where),
        "account_id": account_id,
        "raw_json": raw_json(record),
    }
    members: dict[int, Row] = {}
    equipment = record.get("equipment")
    for item in equipment if isinstance(equipment, list) else []:
        data = item if isinstance(item, dict) else {"id": item}
        equipment_id = opt_int(data.get("id"), "equipment.id", where)
        if equipment_id is not None:
            members[equipment_id] = {
                "group_id": group_id,
                "equipment_id": equipment_id,
                "equipment_name": opt_text(data.get("name"), "equipment.name", where),
            }
    return group, list(members.values())


def parse_current_user(record: dict[str, Any], where: Where, unknown: UnknownFields) -> Row:
    unknown.note("current_user", record, KNOWN_FIELDS["current_user"])
    return {
        "id": _required_id(record, where),
        **{
            col: opt_text(record.get(col), col, where)
            for col in ("first_name", "last_name", "email")
        },
        "raw_json": raw_json(record),
    }
