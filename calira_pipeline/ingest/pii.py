"""Personal data policy (CALIRA_PII): keep, hash (default) or drop names and emails.

Booking payloads carry requester names and emails. Hashing uses HMAC-SHA256 with a salt kept in
the data directory, so the same person always gets the same token (counts per person still work)
while the token cannot be reversed or matched against another installation's data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from calira_pipeline.api.endpoints import pii_columns
from calira_pipeline.api.fields import loads_exact, raw_json
from calira_pipeline.storage import StorageError

PiiMode = Literal["keep", "hash", "drop"]
PII_MODES: tuple[PiiMode, ...] = ("keep", "hash", "drop")
SALT_FILE = ".calira-pii-salt"

# The same data inside each record's raw JSON: top-level keys and nested objects' keys.
_RAW_TOP_LEVEL = ("first_name", "last_name", "email", "supervisor")
_RAW_NESTED = {"requester": ("name", "email"), "creator": ("name",), "contact_person": ("name",)}
_RAW_LISTS = {"selected_users": ("name", "email")}
_LIST_VALUES = "_list_values"  # calira_pipeline.api.merge.LIST_VALUES_KEY
# Tokens remembered per run: a facility has thousands of people, a large load millions of values.
_MASK_CACHE_SIZE = 100_000


class PiiConfigError(ValueError):
    """CALIRA_PII has a value other than keep, hash or drop."""


@dataclass(frozen=True)
class PiiPolicy:
    mode: PiiMode
    key: bytes = b""
    _tokens: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_data_dir(cls, mode: str, data_dir: str | os.PathLike[str]) -> PiiPolicy:
        if mode not in PII_MODES:
            raise PiiConfigError(
                f"CALIRA_PII={mode!r} is not one of keep, hash, drop; "
                "unset it for the default (hash)"
            )
        if mode != "hash":
            return cls("keep" if mode == "keep" else "drop")
        return cls("hash", _load_or_create_salt(Path(data_dir) / SALT_FILE))

    def mask(self, value: Any) -> Any:
        if value is None or self.mode == "keep":
            return value
        if self.mode == "drop":
            return None
        text = str(value).strip().lower()
        token = self._tokens.get(text)
        if token is None:
            if len(self._tokens) >= _MASK_CACHE_SIZE:
                self._tokens.clear()
            digest = hmac.digest(self.key, text.encode(), hashlib.sha256)
            token = self._tokens[text] = "pii:" + digest.hex()[:20]
        return token

    def apply(self, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with personal columns and the matching raw JSON fields masked."""
        if self.mode == "keep":
            return rows
        columns = pii_columns().get(table, ())
        masked = []
        for row in rows:
            new = dict(row)
            for column in columns:
                if column in new:
                    new[column] = self.mask(new[column])
            if new.get("raw_json"):
                new["raw_json"] = mask_raw_json(new["raw_json"], self.mask)
            masked.append(new)
        return masked


def mask_raw_json(raw: str, mask: Callable[[Any], Any]) -> str:
    record = loads_exact(raw)
    if isinstance(record, dict):
        _mask_record(record, mask)
    return raw_json(record)  # json.dumps(sort_keys, compact, ensure_ascii=False), faster


def _mask_record(record: dict[str, Any], mask: Callable[[Any], Any]) -> None:
    for key in _RAW_TOP_LEVEL:
        if key in record:
            record[key] = mask(record[key])
    for key, fields in _RAW_NESTED.items():
        nested = record.get(key)
        if isinstance(nested, dict):
            for name in fields:
                if name in nested:
                    nested[name] = mask(nested[name])
    for key, fields in _RAW_LISTS.items():
        for item in record.get(key) or []:
            if isinstance(item, dict):
                for name in fields:
                    if name in item:
                        item[name] = mask(item[name])
    listed = record.get(_LIST_VALUES)  # what the list said where its detail disagreed
    if isinstance(listed, dict):
        _mask_record(listed, mask)


def _load_or_create_salt(path: Path) -> bytes:
    try:
        return _read_or_create_salt(path)
    except OSError as exc:
        raise StorageError(
            f"cannot keep the personal-data salt in {path.parent}: {exc.strerror}; "
            "set CALIRA_DATA_DIR to a writable directory"
        ) from exc


def _read_or_create_salt(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".salt-{secrets.token_hex(8)}.partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        # link() never replaces: when two runs race, exactly one salt wins and both read it.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def mask_tables(
    policy: PiiPolicy, rows: Mapping[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    return {table: policy.apply(table, table_rows) for table, table_rows in rows.items()}
