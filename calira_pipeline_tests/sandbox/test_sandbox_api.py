"""The sandbox's /v1 endpoints: shapes, pagination arithmetic, filters and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from calira_pipeline.sandbox import Sandbox, SandboxConfig, Scale
from calira_pipeline_tests.sandbox.in_process import InProcessClient


def _client(config: SandboxConfig | None = None) -> InProcessClient:
    sb = Sandbox(config or SandboxConfig(scale="tiny"))
    return InProcessClient(sb, sb.issue_access_token())


@pytest.fixture(scope="module")
def tiny() -> InProcessClient:
    return _client()


def _one_lab(instruments: int, bookings: int) -> Scale:
    # One independent lab with everything, plus the mandatory empty lab.
    return Scale(organisations=0, departments_per_org=0, labs_per_department=0, labs_per_org=0,
                 independent_labs=2, instruments=instruments, bookings=bookings,
                 projects_per_lab=1, groups_per_lab=1, users_per_lab=2)


def _fetch_all(client: InProcessClient, path: str, per_page: int) -> tuple[list[int], int]:
    ids: list[int] = []
    page = 1
    while True:
        r = client.get(path, params={"page": page, "per_page": per_page})
        assert r.status_code == 200
        total = int(r.headers["X-Total-Records"])
        assert int(r.headers["X-Current-Page"]) == page
        assert int(r.headers["X-Per-Page"]) == min(per_page, 100)
        ids += [item["id"] for item in r.json()]
        if page * min(per_page, 100) >= total:
            return ids, total
        page += 1


@pytest.mark.parametrize("count", [0, 1, 100, 101])
@pytest.mark.parametrize("per_page", [1, 100, 101])
def test_booking_pagination_boundaries(count: int, per_page: int) -> None:
    client = _client(SandboxConfig(scale=_one_lab(instruments=1, bookings=count)))
    truth = [b["id"] for b in client.sandbox.dataset.bookings]
    ids, total = _fetch_all(client, "/v1/bookings", per_page)
    assert total == count
    assert ids == sorted(truth, reverse=True)  # newest (highest id) first, no gaps or repeats
    pages = max(1, -(-count // min(per_page, 100)))
    past = client.get("/v1/bookings", params={"page": pages + 1, "per_page": per_page})
    assert past.status_code == 200 and past.json() == []
    assert past.headers["X-Total-Records"] == str(count)
    assert past.headers["X-Current-Page"] == str(pages + 1)


@pytest.mark.parametrize("count", [0, 1, 100, 101])
def test_equipment_pagination_boundaries(count: int) -> None:
    client = _client(SandboxConfig(scale=_one_lab(instruments=count, bookings=0)))
    ids, total = _fetch_all(client, "/v1/equipment", 100)
    assert total == count
    assert ids == sorted((e["id"] for e in client.sandbox.dataset.equipment), reverse=True)
    default = client.get("/v1/equipment")
    assert default.headers["X-Per-Page"] == "100" and default.headers["X-Current-Page"] == "1"
    assert len(default.json()) == min(count, 100)


@pytest.mark.parametrize("params", [{"per_page": "0"}, {"per_page": "x"}, {"page": "0"},
                                    {"page": "-1"}, {"page": "1.5"}, {"provider_account": "x"}])
def test_bad_pagination_parameters_are_400(tiny: InProcessClient, params: dict[str, str]) -> None:
    r = tiny.get("/v1/bookings", params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_request" and body["error_description"]


def test_per_page_above_100_is_clamped(tiny: InProcessClient) -> None:
    r = tiny.get("/v1/bookings", params={"per_page": 250})
    assert r.headers["X-Per-Page"] == "100" and len(r.json()) == 100


def test_accounts_list_and_details(tiny: InProcessClient) -> None:
    ds = tiny.sandbox.dataset
    listed = tiny.get("/v1/accounts").json()
    assert [a["id"] for a in listed] == sorted((a["id"] for a in ds.accounts), reverse=True)
    kinds = {a["account_type"] for a in listed}
    assert kinds == {"organisation", "department", "lab"}
    lab = next(a for a in listed if a["account_type"] == "lab" and a["department"])
    detail = tiny.get(f"/v1/accounts/{lab['id']}").json()
    assert detail == lab
    assert set(detail["department"]) == {"id", "name"}
    assert set(detail["organisation"]) == {"id", "name"}
    org = tiny.get(f"/v1/accounts/{detail['organisation']['id']}").json()
    assert {"id": lab["id"], "name": lab["name"]} in org["labs"]
    assert org["departments"] and all(set(d) == {"id", "name"} for d in org["departments"])


def test_bookings_filter_and_details(tiny: InProcessClient) -> None:
    ds = tiny.sandbox.dataset
    lab = ds.bookings[0]["provider_lab"]["id"]
    r = tiny.get("/v1/bookings", params={"provider_account": lab})
    expected = [b["id"] for b in ds.bookings if b["provider_lab"]["id"] == lab]
    assert int(r.headers["X-Total-Records"]) == len(expected)
    assert [b["id"] for b in r.json()] == sorted(expected, reverse=True)[:100]
    org = ds.bookings[0]["provider_organisation"]["id"]
    by_org = tiny.get("/v1/bookings", params={"provider_account": org, "per_page": 1})
    in_org = [b for b in ds.bookings if b["provider_organisation"]["id"] == org]
    assert int(by_org.headers["X-Total-Records"]) == len(in_org)
    assert tiny.get("/v1/bookings", params={"provider_account": 999999}).json() == []
    one = r.json()[0]
    detail = tiny.get(f"/v1/bookings/{one['id']}").json()
    assert detail == one
    assert isinstance(detail["cost"], str) and isinstance(detail["duration"], int)
    assert set(detail["requester"]) == {"id", "name", "email", "sector"}
    assert set(detail["creator"]) == {"id", "name"}
    assert detail["requester_group"] is None or set(detail["requester_group"]) == {"name"}


def test_equipment_endpoints(tiny: InProcessClient) -> None:
    ds = tiny.sandbox.dataset
    children = tiny.get("/v1/equipment", params={"exclude_parents": "true"}).json()
    assert children and all(e["parent_id"] is not None for e in children)
    assert len(children) == sum(e["parent_id"] is not None for e in ds.equipment)
    lab = ds.equipment[0]["lab"]["id"]
    of_lab = tiny.get("/v1/equipment", params={"account": lab}).json()
    assert {e["id"] for e in of_lab} == {e["id"] for e in ds.equipment if e["lab"]["id"] == lab}
    detail = tiny.get(f"/v1/equipment/{children[0]['id']}").json()
    assert detail == next(e for e in ds.equipment if e["id"] == children[0]["id"])
    assert set(detail["category"]) == {"name"} and set(detail["sub_category"]) == {"id", "name"}
    eq_id = ds.bookings[0]["equipment"]["id"]
    r = tiny.get(f"/v1/equipment/{eq_id}/bookings")
    expected = [b["id"] for b in ds.bookings if b["equipment"]["id"] == eq_id]
    assert int(r.headers["X-Total-Records"]) == len(expected)
    assert [b["id"] for b in r.json()] == sorted(expected, reverse=True)


def test_groups_projects_and_me(tiny: InProcessClient) -> None:
    ds = tiny.sandbox.dataset
    groups = tiny.get("/v1/groups").json()
    assert groups and all(set(g) == {"id", "name"} for g in groups)
    lab = next(iter(ds.projects))
    of_lab = tiny.get("/v1/groups", params={"account": lab}).json()
    assert {g["id"] for g in of_lab} == {g for g, a in ds.group_account.items() if a == lab}
    detail = tiny.get(f"/v1/groups/{groups[0]['id']}").json()
    assert set(detail) == {"id", "name", "equipment"}
    projects = tiny.get(f"/v1/accounts/{lab}/projects").json()
    assert projects and set(projects[0]) == {"id", "name", "supervisor", "additional_information"}
    project = tiny.get(f"/v1/accounts/{lab}/projects/{projects[0]['id']}").json()
    assert "id" not in project  # as the docs' sample shows
    assert set(project) >= {"name", "funding_codes", "selected_users"}
    me = InProcessClient(tiny.sandbox, tiny.sandbox.issue_access_token()).get("/v1/me")
    assert me.json() == ds.me and set(me.json()) == {"id", "first_name", "last_name", "email"}
    cc = tiny.sandbox.issue_access_token(has_owner=False)
    no_owner = InProcessClient(tiny.sandbox, cc).get("/v1/me")
    assert no_owner.status_code == 404 and "resource owner" in no_owner.json()["error_description"]


@pytest.mark.parametrize("path", ["/v1/accounts/1", "/v1/bookings/5", "/v1/equipment/1",
                                  "/v1/groups/99999", "/v1/accounts/3001/projects/1",
                                  "/v1/accounts/77/projects", "/v1/equipment/7/bookings",
                                  "/v1/bookings/abc"])
def test_unknown_ids_are_404(tiny: InProcessClient, path: str) -> None:
    r = tiny.get(path)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found" and r.json()["error_description"]


def test_slim_list_shape() -> None:
    client = _client(SandboxConfig(scale="tiny", list_shape="slim"))
    item = client.get("/v1/bookings").json()[0]
    assert set(item) == {"id", "equipment_id", "start_time", "end_time", "status",
                         "booking_type", "user_id", "asset", "last_public_note",
                         "local_start_time", "local_end_time"}
    assert "cost" in client.get(f"/v1/bookings/{item['id']}").json()  # details stay full
    eq = client.get("/v1/equipment").json()[0]
    assert not {"parent_id", "parent_name", "manufacturing_year", "serial_number"} & set(eq)
    assert "serial_number" in client.get(f"/v1/equipment/{eq['id']}").json()


def test_live_aliases() -> None:
    client = _client(SandboxConfig(scale="tiny", list_shape="slim", live_aliases=True))
    eq = client.get("/v1/equipment").json()[0]
    assert "model_number" in eq and "model" not in eq
    assert "availabity_status" in eq and "availability_status" not in eq
    detail = client.get(f"/v1/equipment/{eq['id']}").json()
    assert "model_number" in detail and "availability_status" in detail
    eq_id = client.sandbox.dataset.bookings[0]["equipment"]["id"]
    per_eq = client.get(f"/v1/equipment/{eq_id}/bookings").json()[0]
    assert per_eq["asset_id"] == eq_id and "equipment_id" not in per_eq
    assert "equipment_id" in client.get("/v1/bookings").json()[0]


def _encoded(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_cached_booking_bytes_match_a_fresh_encoding_after_head_inserts() -> None:
    client = _client(SandboxConfig(scale="small"))
    bookings = client.sandbox.dataset.bookings
    warm = [client.get("/v1/bookings", params={"page": p}).content for p in (1, 2, 1)]
    assert warm[0] == warm[2] == _encoded(bookings[-100:][::-1])  # cached == encoded dicts
    new_ids = client.sandbox.add_bookings(7)
    after = client.get("/v1/bookings", params={"page": 1}).content
    assert after == _encoded(bookings[-100:][::-1])
    assert [b["id"] for b in json.loads(after)[:7]] == new_ids[::-1]
    assert json.loads(after)[7:] == json.loads(warm[0])[:93]  # old rows moved down, unchanged
    newest = client.get(f"/v1/bookings/{new_ids[-1]}")
    assert newest.content == _encoded(bookings[-1])
    cold = _client(SandboxConfig(scale="small"))  # nothing cached yet: same bytes
    assert cold.get("/v1/bookings", params={"page": 1}).content == warm[2]
