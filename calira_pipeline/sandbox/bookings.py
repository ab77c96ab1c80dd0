"""Bookings kept as integer columns and turned into API JSON only when read.

A million bookings as Python dicts would cost gigabytes; as columns they cost ~150 MB. A row
never changes once created (head inserts add rows with new ids), so each booking's encoded JSON
is cached on first read and a page body is those bytes joined.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from calira_pipeline.sandbox import names
from calira_pipeline.sandbox.encoding import (
    BookingEncoder,
    EquipmentFacts,
    UserFacts,
    cased,
    format_cost,
)
from calira_pipeline.sandbox.generate import COLUMNS, KINDS, STATUSES, Columns
from calira_pipeline.sandbox.world import JSON, USER_ID0, World, ref
from calira_pipeline.sandbox.zones import iso_seconds, iso_utc_ms, local_wall

Positions = Sequence[int] | npt.NDArray[np.int64]
# Caps the encoded-JSON cache: a full medium walk needs ~35 MB, a full large one ~700 MB.
JSON_CACHE_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class RowSet:
    """Row positions matching a filter, oldest first; ``newest(k)`` reads from the other end."""

    base: Positions
    extra: Sequence[int]

    def __len__(self) -> int:
        return len(self.base) + len(self.extra)

    def newest(self, k: int) -> int:
        if k < len(self.extra):
            return int(self.extra[len(self.extra) - 1 - k])
        return int(self.base[len(self.base) - 1 - (k - len(self.extra))])


class BookingStore(Sequence[JSON]):
    """The booking truth: ``store[i]`` is the canonical full-detail JSON of the i-th oldest."""

    def __init__(self, columns: Columns, world: World) -> None:
        # One row-major table (reading a row is one ``tolist``); the columns are views into it.
        self._table = np.stack([columns[c] for c in COLUMNS], axis=1).astype(np.int64, copy=False)
        self._cols = {c: self._table[:, i] for i, c in enumerate(COLUMNS)}
        self._ids = np.ascontiguousarray(columns["id"], dtype=np.int64)  # for searchsorted
        self._base_n = len(self._ids)
        self._json: dict[int, bytes] = {}
        self._json_bytes = 0
        self._extra: list[tuple[int, ...]] = []
        lab_id = [lab.account["id"] for lab in world.labs]
        self._eq = [
            EquipmentFacts(ref(e), ref(world.labs[li].account),
                           world.labs[li].org_ref, world.labs[li].zone, e["currency"],
                           e["charging_type"], lab_id[li])
            for e, li in zip(world.equipment, world.equipment_lab, strict=True)
        ]
        self._users = [
            UserFacts({"id": u["id"], "name": u["name"], "email": u["email"],
                       "sector": u["sector"]}, ref(u), world.user_group_name.get(u["id"]),
                      ref(world.labs[li].account), world.labs[li].org_ref)
            for u, li in zip(world.users, world.user_lab, strict=True)
        ]
        # The lab manager (first user of the providing lab) books on behalf of newcomers.
        self._managers = [world.labs[li].user_ids[0] - USER_ID0 for li in world.equipment_lab]
        self._eq_lab = np.array([f.lab_id for f in self._eq], dtype=np.int64)
        self._encoder = BookingEncoder(self._eq, self._users)
        self._by_eq: dict[int, Positions] | None = None
        self._by_lab: dict[int, Positions] | None = None
        self._merged: dict[frozenset[int], Positions] = {}

    # -- Sequence protocol ------------------------------------------------------------------
    def __len__(self) -> int:
        return self._base_n + len(self._extra)

    @overload
    def __getitem__(self, index: int) -> JSON: ...
    @overload
    def __getitem__(self, index: slice) -> list[JSON]: ...
    def __getitem__(self, index: int | slice) -> JSON | list[JSON]:
        if isinstance(index, slice):
            return [self.detail(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.detail(index)

    def __iter__(self) -> Iterator[JSON]:
        return (self.detail(i) for i in range(len(self)))

    # -- rows --------------------------------------------------------------------------------
    def row(self, pos: int) -> tuple[int, ...]:
        if pos >= self._base_n:
            return self._extra[pos - self._base_n]
        return tuple(self._table[pos].tolist())

    def append_row(self, values: dict[str, int]) -> int:
        self._extra.append(tuple(values[c] for c in COLUMNS))
        return len(self) - 1

    def insert_newest(self, equipment_index: int, requested_ms: int, start: int) -> int:
        """Append a just-requested two-hour booking with a new highest id."""
        new_id = self.max_id + 1
        self.append_row({
            "id": new_id, "equipment": equipment_index, "start": start, "end": start + 7200,
            "requested_ms": requested_ms, "kind": 0, "status": 0, "case": 0,
            "cost_cents": 7500, "cost_fmt": 0, "duration_delta": 0,
            "requester": self._managers[equipment_index],
            "creator": self._managers[equipment_index], "group_null": 0, "add_on": 0,
            "note": -1, "local_form": 1,
        })
        return new_id

    @property
    def max_id(self) -> int:
        if self._extra:
            return self._extra[-1][0]
        return int(self._ids[-1]) if self._base_n else 100_000

    def position_of(self, booking_id: int) -> int | None:
        ids = self._ids
        pos = int(np.searchsorted(ids, booking_id))
        if pos < self._base_n and int(ids[pos]) == booking_id:
            return pos
        for j, extra in enumerate(self._extra):
            if extra[0] == booking_id:
                return self._base_n + j
        return None

    def select(self, lab_ids: Sequence[int] | None = None,
               equipment_index: int | None = None) -> RowSet:
        """Positions of bookings provided by ``lab_ids`` or made on one piece of equipment."""
        if lab_ids is None and equipment_index is None:
            return RowSet(range(self._base_n), range(self._base_n, len(self)))
        if equipment_index is not None:
            base = self._index(by_lab=False).get(equipment_index, ())
            extra = [self._base_n + j for j, r in enumerate(self._extra) if r[1] == equipment_index]
            return RowSet(base, extra)
        labs = frozenset(lab_ids or ())
        if labs not in self._merged:  # an organisation's labs: merge once, not per page
            by_lab = self._index(by_lab=True)
            parts = [np.asarray(by_lab[lab], dtype=np.int64) for lab in labs if lab in by_lab]
            self._merged[labs] = np.sort(np.concatenate(parts)) if len(parts) > 1 else (
                parts[0] if parts else ())
        base_arr = self._merged[labs]
        extra = [self._base_n + j for j, r in enumerate(self._extra)
                 if self._eq[r[1]].lab_id in labs]
        return RowSet(base_arr, extra)

    def _index(self, by_lab: bool) -> dict[int, Positions]:
        cached = self._by_lab if by_lab else self._by_eq
        if cached is not None:
            return cached
        keys = self._cols["equipment"]
        if by_lab:
            keys = self._eq_lab[keys] if self._base_n else keys
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        uniq, first = np.unique(sorted_keys, return_index=True)
        bounds = [*first.tolist(), len(order)]
        built: dict[int, Positions] = {
            int(k): order[bounds[i]:bounds[i + 1]].astype(np.int64)
            for i, k in enumerate(uniq.tolist())
        }
        if by_lab:
            self._by_lab = built
        else:
            self._by_eq = built
        return built

    # -- JSON --------------------------------------------------------------------------------
    def detail_json(self, pos: int) -> bytes:
        """``detail(pos)`` encoded as the API sends it; cached, up to a memory budget."""
        encoded = self._json.get(pos)
        if encoded is None:
            encoded = self._encoder.encode(self.row(pos))
            if self._json_bytes < JSON_CACHE_BUDGET_BYTES:
                self._json[pos] = encoded
                self._json_bytes += len(encoded)
        return encoded

    def detail(self, pos: int) -> JSON:
        (bid, eq_i, start, end, req_ms, kind, status, case, cents, fmt, delta, requester,
         creator, group_null, add_on, note, local_form) = self.row(pos)
        eq, req, cre = self._eq[eq_i], self._users[requester], self._users[creator]
        zone = eq.zone if local_form else None
        group = None if group_null or req.group is None else {"name": req.group}
        return {
            "id": bid, "cost": format_cost(cents, fmt), "currency": eq.currency,
            "charging_type": eq.charging_type, "start_time": iso_seconds(start, zone),
            "end_time": iso_seconds(end, zone), "requested_at": iso_utc_ms(req_ms),
            "booking_type": KINDS[kind], "status": cased(STATUSES[status], case),
            "duration": (end - start) // 60 + delta, "add_ons": names.ADD_ONS[add_on],
            "requester_group": group, "equipment": eq.ref, "requester_lab": req.lab,
            "requester_organisation": req.org, "provider_lab": eq.lab,
            "provider_organisation": eq.org, "creator": cre.creator, "requester": req.requester,
            "last_public_note": None if note < 0 else {"message": names.NOTES[note]},
        }

    def slim(self, pos: int, equipment_key: str) -> JSON:
        """The 0.1.3 list item, plus that version's ``local_*_time`` fields."""
        (bid, eq_i, start, end, _req, kind, status, case, *_rest) = self.row(pos)
        requester, note, local_form = _rest[4], _rest[7], _rest[8]
        eq = self._eq[eq_i]
        zone = eq.zone if local_form else None
        return {
            "id": bid, equipment_key: eq.ref["id"], "start_time": iso_seconds(start, zone),
            "end_time": iso_seconds(end, zone), "status": cased(STATUSES[status], case),
            "booking_type": KINDS[kind], "user_id": self._users[requester].requester["id"],
            "asset": {"name": eq.ref["name"]},
            "last_public_note": None if note < 0 else {"message": names.NOTES[note]},
            "local_start_time": local_wall(start, eq.zone),
            "local_end_time": local_wall(end, eq.zone),
        }
