"""Completing a list item from its detail without losing what the list said.

Lists and details of one record can disagree (a booking ``Completed`` in the list, ``Booked`` in
its detail). The detail is the fuller, later read, so it wins the columns; the list's differing
values are kept in the record under ``LIST_VALUES_KEY`` so ``raw_json`` still holds both.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

LIST_VALUES_KEY = "_list_values"


def merge_detail(
    listed: dict[str, Any], detail: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(merged record, {field: list value} where the list disagreed with the detail)``.

    Fields only the list has survive (project details carry no id; the 2022 booking details no
    start/end time). A null in the list says nothing, so it never counts as a disagreement.
    """
    differences = {
        key: value
        for key, value in listed.items()
        if key in detail and value is not None and not same_value(value, detail[key])
    }
    merged = {**listed, **detail, "id": listed["id"]}
    if differences:
        merged[LIST_VALUES_KEY] = differences
    return merged, differences


def same_value(listed: object, detail: object) -> bool:
    """Equal, or the same thing spelt differently (an instant in two offsets, ``"150.0"`` and
    ``150``, a ``{id, name}`` reference and the fuller object the detail sends)."""
    if listed == detail:
        return True
    if isinstance(listed, dict) and isinstance(detail, dict):
        shared = listed.keys() & detail.keys()
        return bool(shared) and all(same_value(listed[k], detail[k]) for k in shared)
    if isinstance(listed, str) and isinstance(detail, str):
        first, second = _instant(listed), _instant(detail)
        if first is not None and second is not None:
            return first == second
    first_amount, second_amount = _amount(listed), _amount(detail)
    return first_amount is not None and first_amount == second_amount


def _instant(text: str) -> dt.datetime | None:
    if len(text) < 16 or text[4:5] != "-":  # not a timestamp: skip the parse attempt
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _amount(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None
