"""Issue 17: hostile and broken inputs, one test per numbered case, against a hostile API on a
real loopback socket and the run contract (`dagster asset materialize`) in a subprocess.

Every case starts from a copy of one good baseline data directory and a fresh DAGSTER_HOME and
asserts (a) the stored tables are unchanged after a failed run (or hold exactly what the hostile
API sent, as text, after a run that must succeed) and (b) no 8-character piece of any secret
appears in the run output, the Dagster storage or the data directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import dagster as dg
import pytest
from markdown_it import MarkdownIt

from calira_pipeline import connect
from calira_pipeline.sandbox import ClientApp, Sandbox, SandboxConfig
from calira_pipeline.sandbox.server import serve_in_thread
from calira_pipeline_tests.integration.conftest import BIN, pipeline_env, run
from calira_pipeline_tests.integration.hostile_server import (
    BOOKINGS,
    DOLLAR_NAMES,
    HUGE_ID,
    MARKDOWN_NAMES,
    HostileApi,
    Mode,
)

pytestmark = pytest.mark.integration

CLIENT_ID = "hostile-input-client"
CLIENT_SECRET = "Zq7vX2kP9wLm4RtY8sNc3HbF6jD1gTuA"
URL_PASSWORD = "Pw9xQ4zL7mK2vB8n"  # also in the hostile redirect's Location
Tables = dict[str, list[tuple[object, ...]]]


@dataclass
class World:
    sandbox: Sandbox
    api: HostileApi
    base_url: str
    baseline: Path


@dataclass
class Outcome:
    done: subprocess.CompletedProcess[str]
    data_dir: Path
    home: Path
    before: Tables

    @property
    def output(self) -> str:
        return self.done.stdout + self.done.stderr

    def tables(self) -> Tables:
        return content(self.data_dir)


def content(data_dir: Path) -> Tables:
    with connect(data_dir) as con:
        tables = [r[0] for r in con.execute("select name from _calira_tables").fetchall()]
        return {t: con.execute(f'select * from "{t}" order by all').fetchall() for t in tables}


def command(select: str) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "calira_pipeline.definitions"] + [
        "--select",
        select,
    ]


def env_for(world: World, data_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    return pipeline_env(
        world.base_url,
        data_dir,
        dagster_home=home,
        CALIRA_CLIENT_ID=CLIENT_ID,
        CALIRA_CLIENT_SECRET=CLIENT_SECRET,
        **extra,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sandbox = Sandbox(SandboxConfig(scale="tiny", clients={CLIENT_ID: ClientApp(CLIENT_SECRET)}))
    api = HostileApi(sandbox.app)
    with serve_in_thread(api) as base_url:
        root = tmp_path_factory.mktemp("hostile-baseline")
        world = World(sandbox, api, base_url, root / "data")
        done = run(command("*"), env_for(world, world.baseline, root / "home"))
        assert done.returncode == 0, done.stderr[-3000:]
        yield world


def run_case(
    world: World,
    tmp_path: Path,
    mode: Mode,
    select: str,
    extra_secrets: tuple[str, ...] = (),
    prepare: Callable[[Path], None] | None = None,
    **env: str,
) -> Outcome:
    data_dir, home = tmp_path / "data", tmp_path / "home"
    shutil.copytree(world.baseline, data_dir)
    before = content(data_dir)
    if prepare is not None:
        prepare(data_dir)
    world.api.reset(mode)
    done = run(command(select), env_for(world, data_dir, home, **env), timeout=300)
    outcome = Outcome(done, data_dir, home, before)
    assert_no_piece_of_a_secret_anywhere(world, outcome, extra_secrets)
    return outcome


def assert_no_piece_of_a_secret_anywhere(
    world: World, outcome: Outcome, extra: tuple[str, ...]
) -> None:
    secrets = {CLIENT_SECRET, URL_PASSWORD, *world.sandbox.issued_tokens(), *extra}
    pieces = {s[i : i + 8].encode() for s in secrets for i in range(len(s) - 7)}
    places = {"run output": outcome.output.encode()}
    for folder in (outcome.home, outcome.data_dir):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                places[str(path)] = path.read_bytes()
    assert len(places) > 5  # the run really wrote storage and data
    for where, blob in places.items():
        leaked = [piece for piece in pieces if piece in blob]
        assert not leaked, f"{leaked[0]!r} of a secret is in {where}"


def assert_failed_and_unchanged(outcome: Outcome, *patterns: str) -> None:
    assert outcome.done.returncode != 0, outcome.output[-2000:]
    for pattern in patterns:
        assert re.search(pattern, outcome.output), (pattern, outcome.output[-3000:])
    assert outcome.tables() == outcome.before


# -- 1. partial secret leak ----------------------------------------------------------------------


def test_1_a_token_error_echoing_the_client_secret_leaks_no_part_of_it(
    world: World, tmp_path: Path
) -> None:
    outcome = run_case(world, tmp_path, "echo_secret", "accounts")
    assert_failed_and_unchanged(
        outcome, r"POST /oauth/token rejected the client_credentials grant with HTTP 401"
    )
    assert "Client authentication failed" in outcome.output  # the body was excerpted


# -- 2. a password in CALIRA_BASE_URL ------------------------------------------------------------


def test_2_a_password_in_the_base_url_is_refused_in_one_sentence(
    world: World, tmp_path: Path
) -> None:
    with_userinfo = world.base_url.replace("http://", f"http://calira:{URL_PASSWORD}@")
    outcome = run_case(world, tmp_path, "benign", "*", CALIRA_BASE_URL=f"{with_userinfo}/v1")
    assert_failed_and_unchanged(
        outcome, r"base_url \(CALIRA_BASE_URL\) must not contain a user name or password"
    )
    assert sum(world.api.requests.values()) == 0  # refused before any request


# -- 3. beacons in the UI ------------------------------------------------------------------------


def test_3_markdown_in_api_names_renders_as_text_in_dagster_metadata(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = run_case(world, tmp_path, "markdown_names", "accounts,equipment")
    assert outcome.done.returncode == 0, outcome.output[-3000:]
    names = {row[1] for row in outcome.tables()["equipment"]}
    assert set(MARKDOWN_NAMES) <= names  # stored as sent: the data is not altered
    monkeypatch.setenv("DAGSTER_HOME", str(outcome.home))
    with dg.DagsterInstance.get() as instance:
        for table in ("equipment", "accounts"):
            event = instance.get_latest_materialization_event(dg.AssetKey(table))
            assert event is not None and event.asset_materialization is not None
            preview = str(event.asset_materialization.metadata["preview"].value)
            rendered = MarkdownIt("commonmark").enable("table").render(preview)
            tags = set(re.findall(r"<([a-z0-9]+)", rendered))
            assert tags <= {"table", "thead", "tbody", "tr", "th", "td"}, (table, tags)
            assert "![x](" not in preview and "http://" not in preview


# -- 4. a trickling server -----------------------------------------------------------------------


def test_4_a_trickling_server_fails_at_the_request_deadline(world: World, tmp_path: Path) -> None:
    outcome = run_case(
        world,
        tmp_path,
        "trickle",
        "bookings",
        CALIRA_TIMEOUT_S="3",
        CALIRA_MAX_RETRY_WAIT_S="0",
    )
    assert_failed_and_unchanged(
        outcome,
        r"GET /v1/bookings\?\S+ still failing with timeout error: no complete response within "
        r"timeout_s=3 \(CALIRA_TIMEOUT_S\)",
    )
    assert world.api.trickled_bytes >= 1


def test_4_a_fetch_past_its_maximum_runtime_is_stopped(world: World, tmp_path: Path) -> None:
    outcome = run_case(
        world,
        tmp_path,
        "trickle",
        "bookings",
        CALIRA_TIMEOUT_S="600",
        CALIRA_MAX_RUNTIME_S="4",
    )
    assert_failed_and_unchanged(
        outcome, r"Fetching bookings took longer than max_runtime_s=4s \(CALIRA_MAX_RUNTIME_S\)"
    )


# -- 5. pages that never end ---------------------------------------------------------------------


def test_5_pages_past_the_total_stop_at_the_margin_with_few_log_lines(
    world: World, tmp_path: Path
) -> None:
    outcome = run_case(world, tmp_path, "endless", "bookings")
    assert_failed_and_unchanged(
        outcome, r"GET /bookings keeps sending full pages of new records past its X-Total-Records"
    )
    total_pages = -(-len(world.sandbox.dataset.bookings) // 100)
    assert world.api.requests[BOOKINGS] <= total_pages + 10  # the margin, not 100,000 pages
    # Past the total every page is "the last page"; lines still come at most every 5 s.
    stamps = [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        for stamp in re.findall(
            r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d).*bookings: \d+/\d+ pages", outcome.output, re.M
        )
    ]
    assert 1 <= len(stamps) < world.api.requests[BOOKINGS]
    assert all((later - earlier).total_seconds() >= 4 for earlier, later in pairwise(stamps))


# -- 6. paired $ in names ------------------------------------------------------------------------


def test_6_paired_dollars_in_names_draw_as_text_in_every_chart(
    world: World, tmp_path: Path
) -> None:
    outcome = run_case(world, tmp_path, "dollar_names", "*")
    assert outcome.done.returncode == 0, outcome.output[-3000:]
    tables = outcome.tables()
    assert DOLLAR_NAMES[0] in {row[1] for row in tables["equipment"]}
    assert tables["booking_cost_monthly"] and tables["equipment_utilisation_monthly"]
    assert (outcome.data_dir / "reports" / "report.html").stat().st_size > 10_000


# -- 7. bare Python errors -----------------------------------------------------------------------

BARE_ERRORS: list[tuple[Mode, str, str]] = [
    ("deep_json", "bookings", r"GET /v1/bookings\?\S+ answered HTTP 200 with JSON nested deeper"),
    (
        "edge_timestamp",
        "bookings",
        r"GET /v1/bookings page 1: booking \d+ has start_time '0001-01-01T00:00:00\+01:00', not "
        r"a timestamp between years 1 and 9999 in UTC",
    ),
    (
        "huge_cost",
        "bookings",
        r"GET /v1/bookings page 1: booking \d+ has cost '1e400', not an amount below 10\^16",
    ),
    (
        "huge_id",
        "bookings",
        rf"GET /v1/bookings\?\S+: item #0 has id {HUGE_ID}, not an integer id within the 64-bit",
    ),
    (
        "huge_id_slim",
        "bookings",
        rf"GET /v1/bookings\?\S+: item #0 has id {HUGE_ID}, not an integer id within the 64-bit",
    ),
    (
        "huge_expires_in",
        "accounts",
        r"POST /oauth/token answered with expires_in 9{30}.*, not a number of seconds between 0",
    ),
    (
        "redirect",
        "bookings",
        r"GET /v1/bookings\?\S+ was redirected \(HTTP 302\) to 'https://elsewhere.example/v1'",
    ),
]


@pytest.mark.parametrize(
    ("mode", "select", "expected"), BARE_ERRORS, ids=[m for m, _, _ in BARE_ERRORS]
)
def test_7_broken_values_are_clear_errors_naming_endpoint_record_and_field(
    world: World, tmp_path: Path, mode: Mode, select: str, expected: str
) -> None:
    outcome = run_case(world, tmp_path, mode, select)
    assert_failed_and_unchanged(outcome, expected)
    for bare in ("RecursionError", "OverflowError", "InvalidOperation", "X-Total-Records header"):
        assert bare not in outcome.output, bare
    assert world.api.requests[f"{BOOKINGS}/{HUGE_ID}"] == 0  # never dropped as "deleted"


# -- 8. token-file hygiene -----------------------------------------------------------------------


def token_file_with_seed(world: World, folder: Path) -> tuple[Path, str]:
    seed = world.sandbox.issue_refresh_token(CLIENT_ID)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "calira-token.json"
    path.write_text(f'{{"access_token": "", "refresh_token": "{seed}"}}')
    return path, seed


def test_8_a_token_file_others_can_read_is_made_private_with_a_warning(
    world: World, tmp_path: Path
) -> None:
    token_file, seed = token_file_with_seed(world, tmp_path / "tokens")
    token_file.chmod(0o644)
    outcome = run_case(
        world, tmp_path, "benign", "accounts", (seed,), CALIRA_TOKEN_FILE=str(token_file)
    )
    assert outcome.done.returncode == 0, outcome.output[-3000:]
    assert "was readable by other users (mode 644); it is now 0600" in outcome.output
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert outcome.tables() == outcome.before  # same API data, same tables


@pytest.mark.parametrize("planted", ["token file", "lock file"])
def test_8_planted_symlinks_are_never_followed(world: World, tmp_path: Path, planted: str) -> None:
    token_file, seed = token_file_with_seed(world, tmp_path / "tokens")
    target = tmp_path / "attacker" / "target.json"
    target.parent.mkdir()
    target.write_text(token_file.read_text())
    if planted == "token file":
        token_file.unlink()
        token_file.symlink_to(target)
    else:
        token_file.with_name(token_file.name + ".lock").symlink_to(target)
    outcome = run_case(
        world, tmp_path, "benign", "accounts", (seed,), CALIRA_TOKEN_FILE=str(token_file)
    )
    assert_failed_and_unchanged(outcome, r"is a symbolic link, which is never followed")
    assert target.read_text() == f'{{"access_token": "", "refresh_token": "{seed}"}}'


def make_read_only(folder: Path) -> None:
    """chmod for ordinary users; root ignores modes, so the immutable attribute for root."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)


def make_writable(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_8_a_read_only_data_directory_fails_before_any_request(
    world: World, tmp_path: Path
) -> None:
    def prepare(data_dir: Path) -> None:
        make_read_only(data_dir)
        with pytest.raises(OSError):
            (data_dir / "probe").write_text("the folder really is read-only")

    try:
        outcome = run_case(world, tmp_path, "benign", "*", prepare=prepare)
        assert_failed_and_unchanged(
            outcome, r"cannot write to \S+data \(.+\), so nothing was fetched; set CALIRA_DATA_DIR"
        )
        assert sum(world.api.requests.values()) == 0
    finally:
        make_writable(tmp_path / "data")
