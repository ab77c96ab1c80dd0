"""Properties of the sandbox's synthetic data, and its determinism."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calira_pipeline.sandbox import Sandbox, SandboxConfig
from calira_pipeline.storage import schema
from calira_pipeline_tests.sandbox.in_process import InProcessClient

STATUSES = {"requested", "booked", "completed", "confirmed", "approved", "ordered", "declined",
            "cancelled", "canceled"}
UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OFFSET_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


@pytest.fixture(scope="module")
def small() -> Sandbox:
    return Sandbox(SandboxConfig(seed=0, scale="small"))


@pytest.fixture(scope="module")
def bookings(small: Sandbox) -> list[dict[str, Any]]:
    return list(small.dataset.bookings)


def _zone_of_lab(sb: Sandbox) -> dict[int, str]:
    return {a["id"]: a["timezone"] for a in sb.dataset.accounts if a["account_type"] == "lab"}


def _dst_switches(zone: str, start: datetime, end: datetime) -> list[datetime]:
    """Independent of the sandbox: hour-by-hour scan of zoneinfo offsets."""
    tz, found = ZoneInfo(zone), []
    t, last = start, start.astimezone(tz).utcoffset()
    while t < end:
        t += timedelta(hours=1)
        off = t.astimezone(tz).utcoffset()
        if off != last:
            found.append(t)
            last = off
    return found


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_small_builds_fast() -> None:
    started = time.perf_counter()
    Sandbox(SandboxConfig(seed=5, scale="small"))
    assert time.perf_counter() - started < 1.0


def test_accounts_structure(small: Sandbox) -> None:
    ds = small.dataset
    labs = [a for a in ds.accounts if a["account_type"] == "lab"]
    zones = {_zone_of_lab(small)[b["provider_lab"]["id"]] for b in ds.bookings}
    assert {"Europe/London", "America/New_York", "Australia/Sydney", "Asia/Tokyo"} <= zones
    independent = [a for a in labs if a["organisation"] is None and a["department"] is None]
    direct = [a for a in labs if a["organisation"] and a["department"] is None]
    assert independent and direct
    used = {b["provider_lab"]["id"] for b in ds.bookings} | {e["lab"]["id"] for e in ds.equipment}
    assert any(a["id"] not in used for a in labs)  # a lab with no equipment or bookings
    own = [b for b in ds.bookings if b["provider_lab"]["id"] in {a["id"] for a in independent}]
    assert own and all(b["provider_organisation"] == b["provider_lab"] for b in own)
    currencies: dict[int, set[str]] = defaultdict(set)
    for e in ds.equipment:
        lab = next(a for a in labs if a["id"] == e["lab"]["id"])
        if lab["organisation"]:
            currencies[lab["organisation"]["id"]].add(e["currency"])
    assert all(2 <= len(c) <= 3 for c in currencies.values())
    per_lab: dict[int, set[str]] = defaultdict(set)
    for e in ds.equipment:
        per_lab[e["lab"]["id"]].add(e["currency"])
    assert all(len(c) == 1 for c in per_lab.values())


def test_equipment_variety(small: Sandbox) -> None:
    eq = small.dataset.equipment
    by_id = {e["id"]: e for e in eq}
    children = [e for e in eq if e["parent_id"] is not None]
    assert children and all(by_id[c["parent_id"]]["name"] == c["parent_name"] for c in children)
    assert any(e["room"] == "" for e in eq) and any(e["description"] is None for e in eq)


def test_booking_enumerations_and_formats(bookings: list[dict[str, Any]]) -> None:
    assert {b["status"].lower() for b in bookings} == STATUSES
    assert any(b["status"].islower() for b in bookings)
    assert any(b["status"].isupper() for b in bookings)
    assert {b["booking_type"] for b in bookings} == {"internal", "external", "maintenance"}
    assert all(b["cost"] == "0.0" for b in bookings if b["booking_type"] == "maintenance")
    costs = {b["cost"] for b in bookings}
    assert all(Decimal(c) >= 0 for c in costs)
    assert "0.0" in costs
    assert any(re.fullmatch(r"\d+\.\d\d", c) and c != "0.0" for c in costs)
    assert any(re.fullmatch(r"\d+\.\d", c) and c != "0.0" for c in costs)
    assert all(UTC_MS.match(b["requested_at"]) for b in bookings)
    starts = [b["start_time"] for b in bookings]
    assert any(UTC_MS.match(s) for s in starts) and any(OFFSET_MS.match(s) for s in starts)
    assert any(b["add_ons"] is None for b in bookings) and any(b["add_ons"] == "" for b in bookings)
    assert any(b["requester_group"] is None for b in bookings)
    assert any(b["last_public_note"] is None for b in bookings)
    assert any(b["last_public_note"] for b in bookings)
    external = [b for b in bookings if b["booking_type"] == "external"]
    assert any(b["requester_organisation"] != b["provider_organisation"] for b in external)


def test_local_offsets_are_correct_for_dst(small: Sandbox, bookings: list[dict[str, Any]]) -> None:
    zone_of = _zone_of_lab(small)
    for b in bookings:
        for field in ("start_time", "end_time"):
            if b[field].endswith("Z"):
                continue
            local = _parse(b[field])
            expected = local.astimezone(ZoneInfo(zone_of[b["provider_lab"]["id"]]))
            assert local.utcoffset() == expected.utcoffset(), (b["id"], b[field])


def test_bookings_span_every_dst_switch(small: Sandbox, bookings: list[dict[str, Any]]) -> None:
    zone_of = _zone_of_lab(small)
    ref = small.config.reference_time
    start, end = ref - timedelta(days=730), ref + timedelta(days=60)
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for b in bookings:
        spans[zone_of[b["provider_lab"]["id"]]].append((_parse(b["start_time"]),
                                                       _parse(b["end_time"])))
    checked = 0
    for zone, intervals in spans.items():
        for switch in _dst_switches(zone, start, end):
            assert any(s < switch < e for s, e in intervals), (zone, switch)
            checked += 1
    assert checked >= 12  # London, New York and Sydney each switch ~4 times in the window


def test_timing_edge_cases(small: Sandbox, bookings: list[dict[str, Any]]) -> None:
    zone_of = _zone_of_lab(small)
    ref = small.config.reference_time
    crossing = multi_day = retro = odd_duration = 0
    by_eq: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for b in bookings:
        s, e = _parse(b["start_time"]), _parse(b["end_time"])
        assert ref - timedelta(days=740) < s < ref + timedelta(days=75)
        assert _parse(b["requested_at"]) <= ref
        tz = ZoneInfo(zone_of[b["provider_lab"]["id"]])
        crossing += s.astimezone(tz).date() != e.astimezone(tz).date()
        multi_day += (e - s) > timedelta(days=1)
        retro += _parse(b["requested_at"]) > s
        odd_duration += b["duration"] != (e - s) // timedelta(minutes=1)
        by_eq[b["equipment"]["id"]].append((s, e))
    assert crossing and multi_day and retro and odd_duration
    assert odd_duration < len(bookings) * 0.1
    nested = overlapping = 0
    for intervals in by_eq.values():
        intervals.sort()
        for (_s1, e1), (s2, e2) in zip(intervals, intervals[1:], strict=False):
            overlapping += s2 < e1
            nested += s2 < e1 and e2 <= e1
    assert nested and overlapping
    blocks = [b for b in bookings if b["booking_type"] == "maintenance"
              and _parse(b["end_time"]) - _parse(b["start_time"]) >= timedelta(days=2)]
    assert blocks


def test_realistic_distributions(small: Sandbox, bookings: list[dict[str, Any]]) -> None:
    zone_of = _zone_of_lab(small)
    use = [b for b in bookings if b["booking_type"] != "maintenance"]
    hours = sorted((_parse(b["end_time"]) - _parse(b["start_time"])).total_seconds() / 3600
                   for b in use)
    assert 1.5 <= statistics.median(hours) <= 3
    assert 5 <= hours[int(len(hours) * 0.9)] <= 13
    local = [_parse(b["start_time"]).astimezone(ZoneInfo(zone_of[b["provider_lab"]["id"]]))
             for b in bookings]
    assert sum(t.weekday() >= 5 for t in local) / len(local) < 0.03
    assert sum(8 <= t.hour < 11 for t in local) / len(local) > 0.3
    assert sum(t.minute in (0, 30) for t in local) / len(local) > 0.75
    cancelled = sum(b["status"].lower() in ("cancelled", "canceled") for b in bookings)
    assert 0.08 <= cancelled / len(bookings) <= 0.2


def _value(item: dict[str, Any], column: str) -> Any:
    aliases = {"duration_minutes": ("duration", None), "category_name": ("category", "name"),
               "requester_group_name": ("requester_group", "name"),
               "requester_email": ("requester", "email"),
               "requester_sector": ("requester", "sector"),
               "last_public_note": ("last_public_note", "message")}
    if column in aliases:
        key, sub = aliases[column]
        value = item.get(key)
        return value.get(sub) if sub and isinstance(value, dict) else value
    if column in item:
        return item[column]
    prefix, _, part = column.rpartition("_")
    nested = item.get(prefix)
    return nested.get(part) if isinstance(nested, dict) else None


def test_data_exercises_every_schema_column(small: Sandbox) -> None:
    ds = small.dataset
    slim = [ds.bookings.slim(i, "equipment_id") for i in range(50)]
    sources: dict[str, list[dict[str, Any]]] = {
        "accounts": ds.accounts, "equipment": ds.equipment,
        "bookings": list(ds.bookings)[:500] + slim,
        "projects": [{**p, "account_id": a} for a, ps in ds.projects.items() for p in ps],
        "groups": [{**g, "account_id": ds.group_account[g["id"]]} for g in ds.groups],
        "current_user": [ds.me],
    }
    for table, items in sources.items():
        for column in schema.RAW_TABLES[table].column_names:
            if column in ("raw_json", "list_detail_fields"):  # the client writes these
                continue
            assert any(_value(i, column) not in (None, "") for i in items), (table, column)
    codes = [c for ps in ds.projects.values() for p in ps for c in p["funding_codes"]]
    for key in ("id", "code", "description", "amount", "expiry_date"):
        assert any(c[key] is not None for c in codes)
    assert any(c["amount"] is None for c in codes)
    assert any(g["equipment"] for g in ds.groups)
    assert any(u["email"] for p in sum(ds.projects.values(), []) for u in p["selected_users"])


PAGES = ["/v1/bookings?per_page=50", "/v1/bookings?per_page=50&page=7", "/v1/accounts",
         "/v1/equipment?per_page=30&page=2", "/v1/groups", "/v1/accounts/3001/projects",
         "/v1/accounts/3001/projects/701", "/v1/bookings/100500", "/v1/equipment/5003/bookings"]


def _bodies(seed: int) -> list[bytes]:
    sb = Sandbox(SandboxConfig(seed=seed, scale="small"))
    client = InProcessClient(sb, sb.issue_access_token())
    return [client.get(p).content for p in PAGES]


def test_same_seed_gives_byte_identical_responses() -> None:
    first, again, other = _bodies(11), _bodies(11), _bodies(12)
    assert first == again
    assert all(body.startswith((b"[", b"{")) and len(body) > 20 for body in first)
    assert first != other
    assert sum(a != b for a, b in zip(first, other, strict=True)) >= len(PAGES) - 2


def test_reference_time_moves_the_window() -> None:
    later = datetime(2027, 6, 1, tzinfo=UTC)
    sb = Sandbox(SandboxConfig(scale="tiny", reference_time=later))
    assert max(_parse(b["requested_at"]) for b in sb.dataset.bookings) <= later
    assert min(_parse(b["start_time"]) for b in sb.dataset.bookings) > later - timedelta(days=740)


def test_every_encoded_booking_equals_its_encoded_detail() -> None:
    # The list endpoints serve pre-encoded bytes; they must be exactly json.dumps of the dict.
    sb = Sandbox(SandboxConfig(seed=5, scale="small"))
    sb.add_bookings(25)
    store = sb.dataset.bookings
    for pos, detail in enumerate(store):
        expected = json.dumps(detail, ensure_ascii=False, separators=(",", ":")).encode()
        assert store.detail_json(pos) == expected, pos
        assert store.detail_json(pos) == expected, pos  # and again, from the cache


@pytest.mark.parametrize(
    "epoch_s",
    [0, -1, 59, 86_399, 86_400, -86_400, 951_782_400, 1_709_164_799, 4_102_444_799, -9_000_000_000],
)
def test_utc_timestamps_are_formatted_as_strftime_formats_them(epoch_s: int) -> None:
    from calira_pipeline.sandbox.zones import iso_seconds, iso_utc_ms

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch_s)
    assert iso_seconds(epoch_s, None) == moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    at_ms = moment + timedelta(milliseconds=987)
    assert iso_utc_ms(epoch_s * 1000 + 987) == at_ms.strftime("%Y-%m-%dT%H:%M:%S.") + "987Z"
