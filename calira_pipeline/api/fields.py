"""Lenient coercion of single API values into table-ready Python values.

Every helper takes a ``Where`` so a bad value becomes a RecordError naming the endpoint, the record
and the fix instead of a bare ValueError deep inside a pipeline run.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from .errors import RecordError, safe_excerpt

_CENTS = Decimal("0.01")
# DECIMAL(18,2): 16 digits before the point.
_MONEY_LIMIT = Decimal(10) ** 16
# Ids and counts are BIGINT: a larger integer cannot be stored (pyarrow raised a bare
# OverflowError for an id of 2**70). Hot paths repeat these as hex literals, which are faster.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_UTC = dt.UTC
# Same settings as ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``;
# built once instead of per record.
_RAW_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_FAST_RAW_MAX_CONTAINERS = 1000
# Where orjson's numbers may differ from json's: a run of 19+ digits anywhere in the text. Found by
# mapping every digit to "0" (`bytes.translate`, C speed) and looking for 19 zeros: a tenth of the
# CPU of the equivalent regex `[0-9]{19}`, which cost more than decoding the page itself.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19


@dataclass(frozen=True)
class Where:
    endpoint: str  # e.g. "GET /v1/bookings page 3"
    kind: str  # e.g. "booking"
    record_id: object

    def error(self, field: str, value: object, expected: str) -> RecordError:
        shown = safe_excerpt(repr(value), (), 80)
        return RecordError(
            f"{self.endpoint}: {self.kind} {self.record_id} has {field} {shown}, not {expected}; "
            "the API sent something the parser does not understand — check the record in Calira "
            "and report the payload so the parser can learn this shape."
        )


def loads_exact(text: str, encoded: bytes | None = None) -> Any:
    """``json.loads(text)``, by orjson where that gives the same values (a third of the CPU of a
    page): not for numbers of 19+ digits (orjson turns integers past 64 bits into floats) nor for
    what it refuses (NaN, lone surrogates, deep nesting), which get json's own answer.

    ``encoded``: ``text`` as UTF-8 when the caller has it already (a response body), which spares
    encoding it again for the digit check and lets orjson read the bytes.
    """
    if encoded is None:
        try:
            encoded = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: orjson refuses it anyway
            return json.loads(text)
    if _LONG_NUMBER not in encoded.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(encoded)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def raw_json(record: dict[str, Any]) -> str:
    """``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

    orjson writes the same text for dicts/lists of str, int, bool and None (pinned by a test), at
    a fraction of the cost; floats (it spells some differently, e.g. ``1e-05`` and NaN), other
    types, 64-bit+ ints and lone surrogates go through ``json`` itself.
    """
    if _orjson_safe(record):
        try:
            return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:
            pass
    return _RAW_ENCODER.encode(record)


def _orjson_safe(record: dict[str, Any]) -> bool:
    """Only exact dict/list/str/int/bool/None inside (bounded, so a cycle falls back too)."""
    pending: list[Any] = [record]
    containers = 0
    while pending:
        containers += 1
        if containers > _FAST_RAW_MAX_CONTAINERS:
            return False
        container = pending.pop()
        for item in container.values() if container.__class__ is dict else container:
            kind = item.__class__
            if kind is str or kind is int or item is None or kind is bool:
                continue
            if kind is dict or kind is list:
                pending.append(item)
                continue
            return False
    return True


def coerce_id(value: object) -> int | None:
    """``7`` or ``"7"`` -> 7; anything else (None, "", "x", True, 7.5) -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def opt_int(value: object, field: str, where: Where) -> int | None:
    if value is None or value == "":
        return None
    result = coerce_id(value)
    if result is None:
        raise where.error(field, value, "an integer")
    if not INT64_MIN <= result <= INT64_MAX:
        raise where.error(field, value, "an integer within the 64-bit range (BIGINT)")
    return result


def opt_text(value: object, field: str, where: Where) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    raise where.error(field, value, "a text value")


def opt_timestamp(value: object, field: str, where: Where) -> dt.datetime | None:
    """ISO-8601 with ``Z`` or an offset (lab-local in the live API) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise where.error(field, value, "an ISO-8601 timestamp")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise where.error(field, value, "an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise where.error(field, value, "a timestamp with a UTC offset (it has none)")
    # ``Z`` and ``+00:00`` parse to the UTC singleton, for which astimezone is a no-op.
    if parsed.tzinfo is _UTC:
        return parsed
    try:
        return parsed.astimezone(_UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise where.error(field, value, "a timestamp between years 1 and 9999 in UTC") from None


def opt_date(value: object, field: str, where: Where) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise where.error(field, value, "an ISO date (YYYY-MM-DD)")


def opt_money(value: object, field: str, where: Where) -> Decimal | None:
    """Decimal strings (``"150.00"``) or numbers -> Decimal, 2 places when that is exact."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise where.error(field, value, "a decimal amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise where.error(field, value, "a decimal amount") from None
    if not amount.is_finite():
        raise where.error(field, value, "a finite decimal amount")
    if abs(amount) >= _MONEY_LIMIT:  # "1e400" made quantize raise InvalidOperation
        raise where.error(field, value, "an amount below 10^16 (DECIMAL(18,2))")
    quantized = amount.quantize(_CENTS)
    return quantized if quantized == amount else amount


def sub(record: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested ``{id, name}``-style object, or ``{}`` when absent/null/not an object."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def ref(record: dict[str, Any], key: str, prefix: str, where: Where) -> dict[str, Any]:
    """``{"lab": {"id": 3, "name": "X"}}`` -> ``{"lab_id": 3, "lab_name": "X"}``."""
    value = record.get(key)
    if isinstance(value, dict):
        return {
            f"{prefix}_id": opt_int(value.get("id"), f"{key}.id", where),
            f"{prefix}_name": opt_text(value.get("name"), f"{key}.name", where),
        }
    if value is None or value == "":
        return {f"{prefix}_id": None, f"{prefix}_name": None}
    return {f"{prefix}_id": opt_int(value, key, where), f"{prefix}_name": None}


@dataclass(frozen=True)
class RefColumns:
    """Precomputed names for ``ref``-style columns, so hot parsers build no strings per record."""

    key: str
    prefix: str
    id_col: str
    name_col: str
    id_field: str
    name_field: str

    @classmethod
    def of(cls, key: str, prefix: str | None = None) -> RefColumns:
        prefix = prefix or key
        return cls(key, prefix, f"{prefix}_id", f"{prefix}_name", f"{key}.id", f"{key}.name")


def ref_into(row: dict[str, Any], record: dict[str, Any], cols: RefColumns, where: Where) -> None:
    """``row.update(ref(record, key, prefix, where))`` with a fast path for the usual shapes."""
    value = record.get(cols.key)
    if value.__class__ is not dict:
        row.update(ref(record, cols.key, cols.prefix, where))
        return
    ident = value.get("id")
    row[cols.id_col] = (
        ident
        if ident.__class__ is int and -0x8000000000000000 <= ident <= 0x7FFFFFFFFFFFFFFF
        else opt_int(ident, cols.id_field, where)
    )
    name = value.get("name")
    row[cols.name_col] = (
        (name or None) if name.__class__ is str else opt_text(name, cols.name_field, where)
    )


def first_present(record: dict[str, Any], *keys: str) -> tuple[str, object]:
    """The first alias that is present and non-null, e.g. ``model`` then ``model_number``."""
    for key in keys:
        if record.get(key) not in (None, ""):
            return key, record[key]
    return keys[0], None
