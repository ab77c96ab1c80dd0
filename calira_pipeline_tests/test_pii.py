from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest

from calira_pipeline.ingest.pii import SALT_FILE, PiiConfigError, PiiPolicy

BOOKING = {
    "id": 1,
    "requester_name": "Ada Lovelace",
    "requester_email": "Ada@Example.org",
    "creator_name": "Grace Hopper",
    "status": "Booked",
    "raw_json": json.dumps(
        {
            "id": 1,
            "requester": {"id": 5, "name": "Ada Lovelace", "email": "Ada@Example.org"},
            "creator": {"id": 6, "name": "Grace Hopper"},
            "status": "Booked",
        }
    ),
}


def test_hash_masks_columns_and_raw_json_with_a_stable_keyed_token(tmp_path: Path) -> None:
    policy = PiiPolicy.for_data_dir("hash", tmp_path)
    (row,) = policy.apply("bookings", [BOOKING])
    assert row["requester_email"].startswith("pii:")
    assert row["status"] == "Booked"
    raw = row["raw_json"]
    assert "Ada" not in raw and "Grace" not in raw and "Example" not in raw
    assert json.loads(raw)["requester"]["id"] == 5
    # Case and spacing do not split one person into two.
    assert policy.mask(" ada@example.org") == row["requester_email"]
    # Another installation (another salt) gets unrelated tokens.
    other = PiiPolicy.for_data_dir("hash", tmp_path / "elsewhere")
    assert other.mask("Ada@Example.org") != row["requester_email"]


def test_salt_is_created_once_owner_only_and_reused(tmp_path: Path) -> None:
    first = PiiPolicy.for_data_dir("hash", tmp_path)
    assert stat.S_IMODE((tmp_path / SALT_FILE).stat().st_mode) == 0o600
    assert PiiPolicy.for_data_dir("hash", tmp_path).key == first.key


def test_drop_and_keep(tmp_path: Path) -> None:
    (dropped,) = PiiPolicy.for_data_dir("drop", tmp_path).apply("bookings", [BOOKING])
    assert dropped["requester_name"] is None
    assert json.loads(dropped["raw_json"])["requester"]["email"] is None
    (kept,) = PiiPolicy.for_data_dir("keep", tmp_path).apply("bookings", [BOOKING])
    assert kept == BOOKING
    assert not (tmp_path / SALT_FILE).exists()  # no salt needed unless hashing


def test_unknown_mode_is_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(PiiConfigError, match="CALIRA_PII='maybe' is not one of keep, hash, drop"):
        PiiPolicy.for_data_dir("maybe", tmp_path)


def test_tokens_and_masked_json_are_the_same_as_ever(tmp_path: Path) -> None:
    # Tokens are remembered per run and JSON is re-encoded by orjson where it can be: both must
    # give what the plain HMAC and json.dumps gave, or stored tokens would split one person in two.
    policy = PiiPolicy.for_data_dir("hash", tmp_path)
    expected = "pii:" + hmac.new(policy.key, b"ada@example.org", hashlib.sha256).hexdigest()[:20]
    assert policy.mask("Ada@Example.org") == policy.mask("ada@example.org ") == expected
    record = {
        "requester": {"name": "Ada", "email": "Ada@Example.org"},
        "cost": 12.5,
        "tiny": 1e-05,
        "huge": 2**70,
        "text": "Zürich ✓",
        "nested": [{"b": 1, "a": None}],
    }
    (row,) = policy.apply("bookings", [{"id": 1, "raw_json": json.dumps(record)}])
    record["requester"] = {"name": policy.mask("Ada"), "email": expected}
    assert row["raw_json"] == json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
