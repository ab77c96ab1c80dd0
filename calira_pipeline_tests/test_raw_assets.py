from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from calira_pipeline import connect
from calira_pipeline.storage.schema import RAW_TABLES
from calira_pipeline.wiring.raw import RAW_ASSETS
from calira_pipeline.wiring.resources import WarehouseResource
from calira_pipeline.wiring.sandbox_source import SandboxApiResource, sandbox_for

SCALE = "tiny"


def _materialize(data_dir: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        RAW_ASSETS,
        resources={
            "calira": SandboxApiResource(data_dir=str(data_dir), sandbox_scale=SCALE),
            "warehouse": WarehouseResource(data_dir=str(data_dir)),
        },
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    data_dir = tmp_path_factory.mktemp("data")
    return data_dir, _materialize(data_dir)


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def test_every_raw_table_lands_with_its_declared_types(first_run: Any) -> None:
    data_dir, result = first_run
    assert result.success
    with connect(data_dir) as con:
        for spec in RAW_TABLES.values():
            types = dict(
                con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_name = ?",
                    [spec.name],
                ).fetchall()
            )
            assert list(types) == spec.column_names, spec.name
            for key in spec.primary_key:
                assert types[key] == "BIGINT"
        bookings = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'bookings'"
            ).fetchall()
        )
        assert bookings["cost"] == "DECIMAL(18,2)"
        assert bookings["start_time"] == "TIMESTAMP WITH TIME ZONE"


def test_row_counts_match_the_sandbox_truth(first_run: Any) -> None:
    data_dir, _ = first_run
    truth = sandbox_for(SCALE, 0).dataset
    with connect(data_dir) as con:

        def ids(table: str) -> set[int]:
            return {r[0] for r in con.execute(f"select id from {table}").fetchall()}

        assert ids("accounts") == {a["id"] for a in truth.accounts}
        assert ids("equipment") == {e["id"] for e in truth.equipment}
        assert ids("bookings") == {b["id"] for b in truth.bookings}
        assert ids("groups") == {g["id"] for g in truth.groups}
        assert con.execute("select count(*) from bookings where raw_json is null").fetchone() == (
            0,
        )


def test_materialisations_carry_table_and_fetch_metadata(first_run: Any) -> None:
    _, result = first_run
    metadata = _materializations(result)
    assert set(RAW_TABLES) <= set(metadata)
    bookings = metadata["bookings"]
    assert bookings["dagster/row_count"].value == len(sandbox_for(SCALE, 0).dataset.bookings)
    assert bookings["dagster/table_name"].value == "calira.main.bookings"
    assert "cost" in {c.name for c in bookings["dagster/column_schema"].schema.columns}
    assert bookings["data_source"].value == "sandbox"
    assert bookings["api_total"].value == len(sandbox_for(SCALE, 0).dataset.bookings)
    assert bookings["fetch/requests"].value > 0
    assert "| id |" in bookings["preview"].value


def test_every_check_ran_and_error_checks_pass(first_run: Any) -> None:
    _, result = first_run
    evaluations = result.get_asset_check_evaluations()
    names = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations}
    assert ("bookings", "loaded_count_matches_api_total") in names
    assert ("bookings", "primary_key_unique_not_null") in names
    assert ("accounts", "lab_has_timezone") in names
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for e in evaluations
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert failed == []


def test_second_run_is_identical_in_content(first_run: Any) -> None:
    data_dir, _ = first_run

    def read_all() -> dict[str, Any]:
        return {
            t: pq.read_table(data_dir / "parquet" / f"{t}.parquet").replace_schema_metadata(None)
            for t in RAW_TABLES
        }

    before = read_all()
    assert _materialize(data_dir).success
    after = read_all()
    for table in RAW_TABLES:
        assert before[table].equals(after[table]), table


def test_personal_data_is_hashed_by_default_everywhere_it_lands(first_run: Any) -> None:
    data_dir, _ = first_run
    truth = sandbox_for(SCALE, 0).dataset
    emails = {b["requester"]["email"] for b in truth.bookings if b.get("requester")}
    emails.discard(None)
    assert emails
    with connect(data_dir) as con:
        stored = {r[0] for r in con.execute("select requester_email from bookings").fetchall()}
        raw = " ".join(r[0] for r in con.execute("select raw_json from bookings").fetchall())
    assert not stored & emails
    assert all(e.startswith("pii:") for e in stored if e)
    assert not any(email in raw for email in emails)
    # Same person, same token: counts per person still work.
    assert 1 < len(stored) <= len(emails) + 1


def test_run_succeeds_while_a_notebook_holds_the_file_open(first_run: Any) -> None:
    data_dir, _ = first_run
    reader = duckdb.connect(str(data_dir / "calira.duckdb"), read_only=True)
    try:
        before = reader.execute("select count(*) from bookings").fetchone()
        assert _materialize(data_dir).success
        assert reader.execute("select count(*) from bookings").fetchone() == before
    finally:
        reader.close()
