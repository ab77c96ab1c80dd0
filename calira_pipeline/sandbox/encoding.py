"""A booking's API JSON written straight from its integer row.

Everything but the row's own numbers and times (equipment, people, labels) is encoded once up
front, so a cold page costs a fraction of building dicts and encoding them. ``BookingStore.detail``
stays the readable truth; the tests hold the two byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from calira_pipeline.sandbox import names
from calira_pipeline.sandbox.generate import KINDS, STATUSES
from calira_pipeline.sandbox.world import JSON
from calira_pipeline.sandbox.zones import iso_seconds, iso_utc_ms


def format_cost(cents: int, fmt: int) -> str:
    """Decimal strings in the spellings the API mixes: ``"150.00"``, ``"12.5"``, ``"0.0"``."""
    if cents == 0:
        return "0.0"
    whole, frac = divmod(cents, 100)
    text = f"{whole}.{frac:02d}"
    if fmt == 0:
        return text
    text = text.rstrip("0")
    return text + "0" if text.endswith(".") else text


def cased(status: str, case: int) -> str:
    return (status, status.lower(), status.upper())[case]


@dataclass(frozen=True)
class EquipmentFacts:
    ref: JSON
    lab: JSON
    org: JSON
    zone: str
    currency: str
    charging_type: str
    lab_id: int


@dataclass(frozen=True)
class UserFacts:
    requester: JSON
    creator: JSON
    group: str | None
    lab: JSON
    org: JSON


def _text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_KINDS = [_text(k) for k in KINDS]
_STATUSES = [[_text(cased(s, case)) for case in range(3)] for s in STATUSES]
_ADD_ONS = [_text(a) for a in names.ADD_ONS]
_NOTES = [_text({"message": n}) for n in names.NOTES]


class BookingEncoder:
    """``encode(row)`` gives the bytes of ``encode_json(BookingStore.detail(pos))``."""

    def __init__(self, equipment: Sequence[EquipmentFacts], users: Sequence[UserFacts]) -> None:
        self._zones = [e.zone for e in equipment]
        self._money = [
            f',"currency":{_text(e.currency)},"charging_type":{_text(e.charging_type)}'
            for e in equipment
        ]
        self._equipment = [f',"equipment":{_text(e.ref)}' for e in equipment]
        self._provider = [
            f',"provider_lab":{_text(e.lab)},"provider_organisation":{_text(e.org)}'
            for e in equipment
        ]
        self._requester_labs = [
            f',"requester_lab":{_text(u.lab)},"requester_organisation":{_text(u.org)}'
            for u in users
        ]
        self._groups = [_text(None if u.group is None else {"name": u.group}) for u in users]
        self._creators = [f',"creator":{_text(u.creator)}' for u in users]
        self._requesters = [f',"requester":{_text(u.requester)}' for u in users]

    def encode(self, row: tuple[int, ...]) -> bytes:
        (bid, eq_i, start, end, req_ms, kind, status, case, cents, fmt, delta, requester,
         creator, group_null, add_on, note, local_form) = row
        zone = self._zones[eq_i] if local_form else None
        # Timestamps and costs are plain ASCII (digits, ".", ":", "-", "+", "T", "Z"): quoting
        # them is their JSON encoding.
        return "".join((
            f'{{"id":{bid},"cost":"{format_cost(cents, fmt)}"', self._money[eq_i],
            f',"start_time":"{iso_seconds(start, zone)}","end_time":"{iso_seconds(end, zone)}"',
            f',"requested_at":"{iso_utc_ms(req_ms)}","booking_type":{_KINDS[kind]}',
            f',"status":{_STATUSES[status][case]},"duration":{(end - start) // 60 + delta}',
            f',"add_ons":{_ADD_ONS[add_on]},"requester_group":',
            "null" if group_null else self._groups[requester],
            self._equipment[eq_i], self._requester_labs[requester], self._provider[eq_i],
            self._creators[creator], self._requesters[requester],
            ',"last_public_note":', "null" if note < 0 else _NOTES[note], "}",
        )).encode("utf-8")
