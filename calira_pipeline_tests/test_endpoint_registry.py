"""The endpoint registry: one declaration drives the fetcher, scopes, masking and the sandbox.

The toy endpoint below is everything a new collection needs: one `Endpoint`, one parser, one
table spec and one sandbox handler. Nothing else in the package is edited, and it materialises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from starlette.requests import Request
from starlette.responses import Response

from calira_pipeline.api import CaliraClient, MissingScopeError
from calira_pipeline.api.endpoints import (
    COLLECTION_TABLES,
    ENDPOINTS,
    Endpoint,
    endpoint_for_path,
    pii_columns,
    scope_collections,
)
from calira_pipeline.api.fields import Where, opt_int, opt_text, raw_json
from calira_pipeline.api.results import UnknownFields
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig
from calira_pipeline.sandbox import views as sandbox_views
from calira_pipeline.sandbox.config import ALL_SCOPES, ClientApp
from calira_pipeline.storage.schema import ID, RAW_JSON, RAW_TABLES, TEXT, Column, TableSpec
from calira_pipeline.wiring.raw import build_fetch_calira
from calira_pipeline.wiring.resources import WarehouseResource
from calira_pipeline.wiring.sandbox_source import SandboxApiResource
from calira_pipeline_tests.fake_calira import FakeCalira, client_for_fake

ROOMS = [
    {"id": n, "name": f"Room {n}", "contact_person": {"name": f"Keeper {n}"}} for n in (1, 2, 3)
]

# 1. the table spec
ROOM_TABLE = TableSpec(
    name="rooms",
    grain="One row per room.",
    primary_key=("id",),
    columns=(
        Column("id", ID, "Room id."),
        Column("name", TEXT, "Room name."),
        Column("keeper_name", TEXT, "Who looks after the room (personal data)."),
        RAW_JSON,
    ),
)


# 2. the parser
def parse_room(
    record: dict[str, Any], where: Where, unknown: UnknownFields, _: int | None
) -> dict[str, list[dict[str, Any]]]:
    keeper = record.get("contact_person") or {}
    row = {
        "id": opt_int(record.get("id"), "id", where),
        "name": opt_text(record.get("name"), "name", where),
        "keeper_name": opt_text(keeper.get("name"), "contact_person.name", where),
        "raw_json": raw_json(record),
    }
    return {"rooms": [row]}


# 3. the declaration
ROOM_ENDPOINT = Endpoint(
    "rooms", "/rooms", "read_rooms", "room", parse_room, ("rooms",),
    detail_needs=(("contact_person",),), pii_columns={"rooms": ("keeper_name",)},
)  # fmt: skip


# 4. the sandbox route (list and detail)
def list_rooms(request: Request, _: object) -> Response:
    slim = [{"id": room["id"], "name": room["name"]} for room in ROOMS]  # details carry the rest
    return sandbox_views.paginate(request.query_params, len(slim), lambda k: slim[-1 - k])


def room_detail(request: Request, _: object) -> Response:
    room_id = sandbox_views.parse_id(request.path_params["id"], "room")
    return sandbox_views.json_response(next(r for r in ROOMS if r["id"] == room_id))


@pytest.fixture
def rooms_registered(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setitem(ENDPOINTS, "rooms", ROOM_ENDPOINT)
    monkeypatch.setitem(RAW_TABLES, "rooms", ROOM_TABLE)
    app = ClientApp(SANDBOX_CLIENT_SECRET, ALL_SCOPES | {"read_rooms"})
    config = SandboxConfig(scale="tiny", clients={SANDBOX_CLIENT_ID: app})
    return Sandbox(config, extra_handlers={"rooms": (list_rooms, room_detail)})


def test_a_toy_endpoint_declared_once_materialises(
    rooms_registered: Sandbox, tmp_path: Path
) -> None:
    sandbox = rooms_registered

    class ToySandbox(SandboxApiResource):
        def sandbox(self) -> Sandbox:
            return sandbox

    data_dir = str(tmp_path / "data")
    result = dg.materialize(
        [build_fetch_calira()],
        selection=["rooms"],
        resources={
            "calira": ToySandbox(data_dir=data_dir),
            "warehouse": WarehouseResource(data_dir=data_dir),
        },
    )
    assert result.success
    (materialisation,) = result.asset_materializations_for_node("fetch_calira")
    assert materialisation.asset_key == dg.AssetKey("rooms")
    assert materialisation.metadata["dagster/row_count"].value == 3
    (count_check,) = result.get_asset_check_evaluations()
    assert count_check.passed
    with duckdb.connect(str(tmp_path / "data" / "calira.duckdb"), read_only=True) as con:
        rows = con.sql("select id, name, keeper_name, raw_json from rooms order by id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(1, "Room 1"), (2, "Room 2"), (3, "Room 3")]
    # Personal data masked by default, in the column and in the raw JSON.
    assert all(r[2].startswith("pii:") and "Keeper" not in r[3] for r in rows)
    # Slim list items lacked contact_person: each detail was read once, only from the sandbox.
    assert sandbox.stats.count(route="/v1/rooms/{id}") == 3


def test_everything_that_loops_over_endpoints_sees_a_registered_one(
    rooms_registered: Sandbox,
) -> None:
    assert COLLECTION_TABLES["rooms"] == ("rooms",)
    assert scope_collections()["read_rooms"] == ("rooms",)
    assert endpoint_for_path("/rooms/3") is ROOM_ENDPOINT
    assert pii_columns()["rooms"] == ("keeper_name",)


def test_the_sandbox_enforces_a_registered_endpoint_s_scope(rooms_registered: Sandbox) -> None:
    without_rooms = Sandbox(
        SandboxConfig(scale="tiny"), extra_handlers={"rooms": (list_rooms, room_detail)}
    )
    settings = SandboxApiResource(sandbox_scale="tiny").settings()
    client = CaliraClient(settings, transport=without_rooms.transport())
    with pytest.raises(MissingScopeError, match="read_rooms") as raised:
        client.fetch("rooms")
    assert "rooms" in str(raised.value)
    assert without_rooms.stats.count(route="/v1/rooms", status=403) == 1
    allowed = CaliraClient(settings, transport=rooms_registered.transport()).fetch("rooms")
    assert sorted(row["id"] for row in allowed.rows["rooms"]) == [1, 2, 3]


def test_the_declarations_agree_with_the_table_specs() -> None:
    for endpoint in ENDPOINTS.values():
        for table in endpoint.tables:
            assert table in RAW_TABLES, (endpoint.name, table)
        for table, columns in endpoint.pii_columns.items():
            assert table in endpoint.tables
            assert set(columns) <= set(RAW_TABLES[table].column_names), (table, columns)
    filled = [table for endpoint in ENDPOINTS.values() for table in endpoint.tables]
    assert sorted(filled) == sorted(RAW_TABLES)  # every raw table comes from exactly one endpoint


@pytest.mark.parametrize(
    ("path", "scope", "blocked"),
    [
        ("/accounts/7/projects/3", "read_projects", ("projects",)),
        ("/equipment/5/bookings", "read_equipment", ("equipment",)),
        ("/groups", "read_accounts", ("accounts", "equipment", "projects", "groups")),
        ("/me", "read_user", ("current_user",)),
    ],
)
def test_scopes_come_from_the_declarations(path: str, scope: str, blocked: tuple[str, ...]) -> None:
    endpoint = endpoint_for_path(path)
    assert endpoint is not None and endpoint.scope == scope
    assert scope_collections()[scope] == blocked


def test_the_unit_tests_fake_serves_a_registered_endpoint_from_data_alone(
    rooms_registered: Sandbox,
) -> None:
    fake = FakeCalira(extra={"rooms": ROOMS}, slim=lambda name, r: {"id": r["id"]})
    result = client_for_fake(fake).fetch("rooms")  # client credentials against the fake
    assert sorted((row["id"], row["name"]) for row in result.rows["rooms"]) == [
        (1, "Room 1"),
        (2, "Room 2"),
        (3, "Room 3"),
    ]
    assert fake.count(r"/v1/rooms/\d+") == 3  # slim items completed from their details
