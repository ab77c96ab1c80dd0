"""Tolerant record parsing into schema rows."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calira_pipeline.api import RecordError, fields
from calira_pipeline.api.fields import Where, coerce_id, opt_money
from calira_pipeline.api.records import (
    parse_account,
    parse_booking,
    parse_equipment,
    parse_group,
    parse_project,
)
from calira_pipeline.api.results import UnknownFields
from calira_pipeline.storage.schema import RAW_TABLES

WHERE = Where("GET /v1/bookings page 3", "booking", 123)


def booking(**fields: Any) -> dict[str, Any]:
    return {"id": 123, **fields}


def test_only_id_is_required_and_columns_are_exact() -> None:
    row = parse_booking(booking(), WHERE, UnknownFields())
    assert list(row) == RAW_TABLES["bookings"].column_names or set(row) == set(
        RAW_TABLES["bookings"].column_names
    )
    assert all(v is None for k, v in row.items() if k not in ("id", "raw_json"))


def test_missing_id_is_record_error() -> None:
    with pytest.raises(RecordError, match="booking 123 has id None"):
        parse_booking({"status": "x"}, WHERE, UnknownFields())


def test_live_booking_shapes() -> None:
    record = booking(
        id="123",
        equipment_id=None,
        asset={"name": "SEM"},
        asset_id="77",
        start_time="2022-03-29T09:45:00.000+01:00",
        end_time="2022-03-29T10:45:00Z",
        requested_at="2022-03-20T10:00:00.123Z",
        cost="150.00",
        duration=120.0,
        room="",
        add_ons="",
        requester_group={"name": "G"},
        creator={"id": "5", "name": "C"},
        requester={"id": 9, "name": "Ada", "email": "a@x", "sector": "industry"},
        requester_organisation={"id": 3, "name": "Lab"},
        last_public_note={"message": "hi"},
        status="Completed",
        user_id="4",
    )
    unknown = UnknownFields()
    row = parse_booking(record, WHERE, unknown)
    assert row["id"] == 123 and row["equipment_id"] == 77 and row["equipment_name"] == "SEM"
    assert row["start_time"] == dt.datetime(2022, 3, 29, 8, 45, tzinfo=dt.UTC)
    assert row["end_time"].tzinfo == dt.UTC
    assert row["requested_at"].microsecond == 123000
    assert row["cost"] == Decimal("150.00") and row["duration_minutes"] == 120
    assert row["add_ons"] is None and row["requester_group_name"] == "G"
    assert (row["creator_id"], row["requester_email"], row["requester_sector"]) == (
        5,
        "a@x",
        "industry",
    )
    assert row["requester_organisation_name"] == "Lab" and row["last_public_note"] == "hi"
    assert row["user_id"] == 4
    assert row["raw_json"] == json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert dict(unknown.counts) == {"bookings.room": 1}


def test_equipment_id_from_nested_equipment() -> None:
    row = parse_booking(booking(equipment={"id": 8, "name": "TEM"}), WHERE, UnknownFields())
    assert (row["equipment_id"], row["equipment_name"]) == (8, "TEM")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("start_time", "garbage", "start_time 'garbage', not an ISO-8601 timestamp"),
        ("start_time", "2022-03-29T09:45:00", "has no"),
        ("cost", "free", "cost 'free', not a decimal amount"),
        ("cost", "NaN", "finite"),
        ("duration", "long", "duration 'long', not an integer"),
        ("creator", {"id": "abc"}, "creator.id 'abc'"),
    ],
)
def test_bad_values_name_endpoint_record_and_fix(field: str, value: Any, expected: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_booking(booking(**{field: value}), WHERE, UnknownFields())
    message = str(info.value)
    assert message.startswith("GET /v1/bookings page 3: booking 123 has ")
    assert expected in message and "report the payload" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.0", Decimal("0.00")),
        ("150", Decimal("150.00")),
        (12.5, Decimal("12.50")),
        (3, Decimal("3.00")),
        ("1.234", Decimal("1.234")),
        ("", None),
        (None, None),
    ],
)
def test_money(value: Any, expected: Decimal | None) -> None:
    result = opt_money(value, "cost", WHERE)
    assert result == expected
    if expected is not None and value != "1.234":
        assert result is not None and result.as_tuple().exponent == -2


@given(st.integers(-(10**12), 10**12))
def test_ids_from_ints_and_strings(n: int) -> None:
    assert coerce_id(n) == n and coerce_id(str(n)) == n
    assert coerce_id(True) is None and coerce_id("7a") is None and coerce_id(None) is None


def test_equipment_aliases_and_refs() -> None:
    where = Where("GET /v1/equipment page 1", "equipment", 5)
    record = {
        "id": 5,
        "name": "SEM",
        "model_number": "M1",
        "availabity_status": "available",
        "category": {"name": "Microscopy"},
        "sub_category": {"id": 2, "name": "EM"},
        "contact_person": {"id": 3, "name": "Bo"},
        "parent_id": "4",
        "parent_name": "Big",
        "room": "",
        "manufacturing_year": 2019,
    }
    row = parse_equipment(record, where, UnknownFields(), listed_lab_id=42)
    assert set(row) == set(RAW_TABLES["equipment"].column_names)
    assert row["model"] == "M1" and row["availability_status"] == "available"
    assert row["category_name"] == "Microscopy" and row["sub_category_id"] == 2
    assert row["contact_person_name"] == "Bo" and row["parent_id"] == 4
    assert row["room"] is None and row["lab_id"] == 42 and row["manufacturing_year"] == "2019"
    record["model"] = "Doc"
    record["lab"] = {"id": 1, "name": "L"}
    row = parse_equipment(record, where, UnknownFields(), listed_lab_id=42)
    assert row["model"] == "Doc" and (row["lab_id"], row["lab_name"]) == (1, "L")


def test_account_refs() -> None:
    row = parse_account(
        {
            "id": 1,
            "name": "Lab",
            "account_type": "lab",
            "department": {"id": 2, "name": "Dep"},
            "organisation": None,
            "labs": [],
        },
        Where("GET /v1/accounts page 1", "account", 1),
        UnknownFields(),
    )
    assert set(row) == set(RAW_TABLES["accounts"].column_names)
    assert row["department_id"] == 2 and row["organisation_id"] is None


def test_project_children() -> None:
    project, codes, users = parse_project(
        {
            "id": 7,
            "name": "P",
            "funding_codes": [
                {"id": 1, "code": "FC", "amount": "10.5", "expiry_date": "2025-12-31"},
                "PLAIN",
            ],
            "selected_users": [{"id": 9, "first_name": "Ada", "last_name": "L", "email": "e"}, 10],
        },
        Where("GET /v1/accounts/3/projects/7", "project", 7),
        UnknownFields(),
        account_id=3,
    )
    assert project["account_id"] == 3
    assert codes[0]["amount"] == Decimal("10.50")
    assert codes[0]["expiry_date"] == dt.date(2025, 12, 31) and codes[1]["code"] == "PLAIN"
    assert [c["position"] for c in codes] == [0, 1]
    assert users[0]["user_name"] == "Ada L" and users[1]["user_id"] == 10
    for table, rows in (("project_funding_codes", codes), ("project_users", users)):
        assert set(rows[0]) == set(RAW_TABLES[table].column_names)


def test_group_members_deduplicated() -> None:
    group, members = parse_group(
        {"id": 4, "name": "G", "equipment": [{"id": 1, "name": "A"}, {"id": 1, "name": "A"}, 2]},
        Where("GET /v1/groups/4", "group", 4),
        UnknownFields(),
        account_id=8,
    )
    assert group["account_id"] == 8 and [m["equipment_id"] for m in members] == [1, 2]


# --- raw_json and the fast booking parser must match the plain implementations exactly --------

# Lone surrogates (Cs), control characters, line/paragraph separators, quotes, emoji, CJK.
_CHARS = st.characters(
    categories=["Cs", "Cc", "Ll", "Lu", "Lo", "Nd", "Po", "So", "Zs", "Zl", "Zp"]
)
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(_CHARS)
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(_CHARS, max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


def _plain_raw_json(record: Any) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "record",
    [
        {"b": "é ü 日本 😀", "a": '\u2028\u2029\x00\x1f\x7f"\\/\b\f\n\r\t', "Z": None, "é": 1},
        {"small": 1e-05, "big": 1e16, "neg0": -0.0, "nan": float("nan"), "inf": -float("inf")},
        {"n": 2**64, "m": -(2**63), "t": True, "l": [1, {"z": 0.1, "a": [None, "x"]}]},
        {"surrogate": "\ud800", "nested": {"deep": [[[{"k": "v"}]]]}},
        {"float_inside": {"a": [1, 2, {"b": 1.5}]}, "cost": "93.75"},
    ],
)
def test_raw_json_matches_json_dumps_byte_for_byte(record: dict[str, Any]) -> None:
    assert fields.raw_json(record) == _plain_raw_json(record)


@given(st.dictionaries(st.text(_CHARS, max_size=8), _JSON_VALUES, max_size=8))
def test_raw_json_matches_json_dumps_for_any_json_object(record: dict[str, Any]) -> None:
    assert fields.raw_json(record) == _plain_raw_json(record)


def _reference_booking(record: dict[str, Any], where: Where) -> dict[str, Any]:
    """The straightforward parser the optimised ``parse_booking`` must agree with."""
    requester = fields.sub(record, "requester")
    value = fields.opt_int(record.get("id"), "id", where)
    if value is None:
        raise where.error("id", record.get("id"), "an integer id")
    nested = fields.sub(record, "equipment") or fields.sub(record, "asset")
    id_key, equipment_id = fields.first_present(record, "equipment_id", "asset_id")
    if equipment_id is None:
        id_key, equipment_id = "equipment.id", nested.get("id")
    row: dict[str, Any] = {
        "id": value,
        "equipment_id": fields.opt_int(equipment_id, id_key, where),
        "equipment_name": fields.opt_text(nested.get("name"), "equipment.name", where),
    }
    for col in ("start_time", "end_time", "requested_at"):
        row[col] = fields.opt_timestamp(record.get(col), col, where)
    for col in _BOOKING_TEXT_COLUMNS:
        row[col] = fields.opt_text(record.get(col), col, where)
    row["cost"] = fields.opt_money(record.get("cost"), "cost", where)
    row["duration_minutes"] = fields.opt_int(record.get("duration"), "duration", where)
    row["requester_group_name"] = fields.opt_text(
        fields.sub(record, "requester_group").get("name"), "requester_group.name", where
    )
    for key in _BOOKING_REF_KEYS:
        row.update(fields.ref(record, key, key, where))
    row["requester_email"] = fields.opt_text(requester.get("email"), "requester.email", where)
    row["requester_sector"] = fields.opt_text(requester.get("sector"), "requester.sector", where)
    row["user_id"] = fields.opt_int(record.get("user_id"), "user_id", where)
    row["last_public_note"] = fields.opt_text(
        fields.sub(record, "last_public_note").get("message"), "last_public_note.message", where
    )
    listed = record.get("_list_values")
    row["list_detail_fields"] = ", ".join(sorted(listed)) if isinstance(listed, dict) else None
    row["raw_json"] = _plain_raw_json(record)
    return row


_BOOKING_TEXT_COLUMNS = (
    "local_start_time",
    "local_end_time",
    "booking_type",
    "status",
    "currency",
    "charging_type",
    "add_ons",
)
_BOOKING_REF_KEYS = (
    "requester_lab",
    "requester_organisation",
    "provider_lab",
    "provider_organisation",
    "creator",
    "requester",
)
_ODD_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [None, "", " ", "7", "x", 0, 7, -3, True, False, 7.0, 7.5, "2022-03-29T10:45:00Z", [], {}]
)
_NESTED = (
    st.none()
    | _ODD_VALUES
    | st.dictionaries(
        st.sampled_from(["id", "name", "email", "sector", "message"]), _ODD_VALUES, max_size=5
    )
)


@given(
    st.fixed_dictionaries(
        {"id": st.sampled_from([123, "123", 123.0, True, None, "x"])},
        optional={
            **{key: _ODD_VALUES for key in ("start_time", "end_time", "requested_at", "cost")},
            **{key: _ODD_VALUES for key in (*_BOOKING_TEXT_COLUMNS, "duration", "user_id")},
            **{key: _ODD_VALUES for key in ("equipment_id", "asset_id", "room")},
            **{
                key: _NESTED
                for key in (*_BOOKING_REF_KEYS, "equipment", "asset", "requester_group")
            },
            "last_public_note": _NESTED,
        },
    )
)
def test_parse_booking_matches_reference_parser(record: dict[str, Any]) -> None:
    try:
        expected: dict[str, Any] | str = _reference_booking(record, WHERE)
    except RecordError as error:
        expected = str(error)
    try:
        actual: dict[str, Any] | str = parse_booking(record, WHERE, UnknownFields())
    except RecordError as error:
        actual = str(error)
    assert actual == expected
    if isinstance(actual, dict) and isinstance(expected, dict):
        assert list(actual) == list(expected)  # same column order too
