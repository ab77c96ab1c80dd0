"""`calira-pipeline`: demo, sandbox, auth login."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from calira_pipeline.config import (
    calira_environment,
    load_dotenv_file,
    operating_hours,
    sandbox_scale,
)
from calira_pipeline.ingest import progress
from calira_pipeline.ingest.progress import TextProgressBar
from calira_pipeline.storage import connect, default_data_dir

if TYPE_CHECKING:  # the wiring imports dagster: loaded only by the commands that need it
    from calira_pipeline.wiring.token_stores import TenantTokenTarget


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="materialise every asset against the built-in sandbox and print a summary",
        description=(
            "Runs every asset and check in one Dagster run against the in-process sandbox "
            "(no credentials, no network) and prints what landed in the DuckDB file."
        ),
    )
    demo.add_argument(
        "--data-dir",
        default=None,
        help="where to write (default: CALIRA_DATA_DIR, else data/ under the project root; "
        "the same place calira_pipeline.connect() reads)",
    )
    demo.add_argument(
        "--scale",
        default=sandbox_scale(),
        help="sandbox size: tiny, small, demo, medium or large (default demo)",
    )
    demo.add_argument("--seed", type=int, default=0, help="sandbox data seed")
    demo.set_defaults(handler=_run_demo)


def _add_sandbox(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from calira_pipeline.sandbox.server import add_arguments, run_from_args

    sandbox = sub.add_parser(
        "sandbox",
        help="serve the sandbox Calira API over real HTTP",
        description="Serves the sandbox API (under /v1) and its OAuth endpoints on a local port.",
    )
    add_arguments(sandbox)
    sandbox.set_defaults(handler=run_from_args)


def _add_auth(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = sub.add_parser("auth", help="OAuth helpers")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True)
    login = auth_sub.add_parser(
        "login",
        help="authorise this app in a browser and store the first refresh token",
        description=(
            "Runs the OAuth authorization-code flow with a loopback redirect (for apps that "
            "cannot use client credentials) and stores the refresh token in CALIRA_TOKEN_FILE. "
            "Needs CALIRA_BASE_URL, CALIRA_CLIENT_ID and CALIRA_CLIENT_SECRET. Register "
            "http://127.0.0.1:<port>/callback as the app's redirect URI."
        ),
    )
    login.add_argument("--port", type=int, default=8976, help="loopback port for the redirect")
    login.add_argument("--no-browser", action="store_true", help="print the URL instead")
    login.add_argument(
        "--tenant",
        default=None,
        help="a refresh_token tenant of CALIRA_TENANTS_FILE: use its app and store its token "
        "where its runs read it (the registry's token_store)",
    )
    login.set_defaults(handler=_run_login)
    seed = auth_sub.add_parser(
        "seed",
        help="store a tenant's refresh token from its variable as the current one",
        description=(
            "Reads the refresh token from the variable the tenant's registry entry names for "
            "its refresh_token and stores it in the tenant's token store (replacing what is "
            "there), e.g. after a lockout. The token is never printed."
        ),
    )
    seed.add_argument("--tenant", required=True, help="a refresh_token tenant key")
    seed.set_defaults(handler=_run_seed)


def _run_login(args: argparse.Namespace) -> int:
    from calira_pipeline.api import CaliraError
    from calira_pipeline.api.login import authorization_code_login
    from calira_pipeline.wiring.sandbox_source import resource_from_env

    if args.tenant:
        try:
            settings = _tenant_target(args.tenant).settings
        except (CaliraError, ValueError) as exc:
            print(f"auth login failed: {exc}", file=sys.stderr)
            return 2
    else:
        # A placeholder refresh token selects refresh-token settings (and the token file).
        environ = {**calira_environment(), "CALIRA_REFRESH_TOKEN": "pending-login"}
        resource = resource_from_env(environ)
        if not resource.base_url:
            print("auth login needs CALIRA_BASE_URL (the sandbox needs no login)", file=sys.stderr)
            return 2
        settings = resource.settings()

    def open_browser(url: str) -> None:
        print(f"Open this URL to authorise calira_pipeline:\n  {url}", flush=True)
        if not args.no_browser:
            webbrowser.open(url)

    try:
        authorization_code_login(settings, open_browser=open_browser, port=args.port)
    except CaliraError as exc:
        print(f"auth login failed: {exc}", file=sys.stderr)
        return 1
    print("Stored the refresh token; runs will now rotate it automatically.")
    return 0


def _tenant_target(key: str) -> TenantTokenTarget:
    from calira_pipeline.wiring.token_stores import tenant_token_target

    return tenant_token_target(key, str(default_data_dir()[0]))


def _run_seed(args: argparse.Namespace) -> int:
    from calira_pipeline.api import CaliraError, Secret
    from calira_pipeline.api.token_store import replace_tokens
    from calira_pipeline.api.tokens import TokenSet
    from calira_pipeline.config import tenant_secret

    try:
        target = _tenant_target(args.tenant)
        variable = target.tenant.secret_variables["refresh_token"]
        token = tenant_secret(variable)
        if token is None:
            print(f"auth seed: the variable {variable} (tenant {args.tenant}'s refresh_token) "
                  "is not set; set it to a fresh refresh token first", file=sys.stderr)  # fmt: skip
            return 2
        # No access token yet: the next run refreshes with this token at once.
        version = replace_tokens(target.store, TokenSet(Secret(""), Secret(token), None))
    except (CaliraError, ValueError) as exc:
        print(f"auth seed failed: {exc}", file=sys.stderr)
        return 1
    print(f"Stored tenant {args.tenant}'s refresh token from {variable} in "
          f"{target.store.describe()} (version {version}).")  # fmt: skip
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from calira_pipeline.wiring.demo import run_demo

    data_dir = str(Path(args.data_dir).resolve() if args.data_dir else default_data_dir()[0])
    print(f"Running every asset against the built-in sandbox ({args.scale}); data in {data_dir}")
    bar = TextProgressBar()
    progress.add_listener(bar)
    succeeded, run_id = run_demo(data_dir, args.scale, args.seed, operating_hours())
    progress.remove_listener(bar)
    bar.close()
    if not succeeded:
        print("The run failed; see the log above.", file=sys.stderr)
        return 1
    print_summary(data_dir, run_id)
    return 0


def print_summary(data_dir: str, run_id: str, source: str = "sandbox") -> None:
    """What landed, and the headline numbers exactly as the charts and report define them."""
    from calira_pipeline.reporting import figures

    with connect(data_dir) as con:
        tables = con.execute("select name, row_count from _calira_tables order by name").fetchall()
        print(f"\nRun {run_id} succeeded. Tables in {Path(data_dir) / 'calira.duckdb'}:")
        for name, rows in tables:
            print(f"  {name:<45} {rows:>10,} rows")
        names = {n for n, _ in tables}
        label = " (SANDBOX DATA: synthetic bookings)" if source == "sandbox" else ""
        print(f"\nSource: {source}{label}")
        if "equipment_utilisation_monthly" in names:
            window = figures.recent_window(con)
            print(f"Busiest instruments, {window.label()}:")
            for row in figures.instrument_utilisation(con, window, limit=5):
                staffed = (
                    f", {row.staffed_utilisation:.1%} of staffed hours"
                    if row.staffed_utilisation is not None
                    else ""
                )
                name = row.instrument if len(row.instrument) <= 34 else row.instrument[:33] + "…"
                print(
                    f"  {name:<34} {row.utilisation:6.1%} of calendar hours"
                    f"{staffed}; {row.overbooked_hours:.1f} h overbooked, "
                    f"{row.maintenance_hours:.1f} h maintenance"
                )
        if "booking_cost_monthly" in names:
            window = figures.recent_window(con, figures.COST_MONTHS)
            print(f"Counted cost, {window.label()}:")
            for total in figures.currency_totals(con, window):
                print(
                    f"  {total.currency} {total.counted_cost:>14,} ({total.counted_bookings:,} "
                    f"bookings; requested {total.requested_cost:,} not included)"
                )
        if {"booking_quality_issues", "booking_facts"} <= names:
            print(
                f"Double-booked: {figures.overlap_share(con):.1%} of counted use bookings, "
                f"{figures.all_bookings_label(con)}"
            )
    report = Path(data_dir) / "reports" / "report.html"
    if report.exists():
        print(f"Report: {report.as_uri()}")
    print(
        f'\nExplore: {sys.executable} -c "import calira_pipeline as c; '
        "print(c.connect().sql('select * from bookings limit 5'))\"\n"
        "     or: python3 tasks.py dev        (the Dagster UI on http://localhost:3000, "
        "with this run)\n"
        "     or: python3 tasks.py notebook   (notebooks/explore.ipynb in JupyterLab)"
    )


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check CALIRA_* settings against the API and say exactly what to fix",
        description=(
            "Checks the variables and the data directory, obtains a token, lists the labs "
            "the app may read and probes each scope (read_accounts, read_bookings, "
            "read_equipment, read_projects, read_user). Exits 1 if anything needs fixing."
        ),
    )
    doctor.set_defaults(handler=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> int:
    from calira_pipeline.cli.doctor import run_doctor

    healthy, findings = run_doctor()
    for finding in findings:
        print(finding.line())
    print("\nAll good." if healthy else "\nFix the [FIX] lines above, then run doctor again.")
    return 0 if healthy else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calira-pipeline",
        description="Calira (Clustermarket) bookings to Parquet and DuckDB, with Dagster.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_sandbox(sub)
    _add_auth(sub)
    _add_doctor(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # The same `.env` that `dg dev` reads, so doctor and the CLI see what the UI's runs see.
    load_dotenv_file()
    args = build_parser().parse_args(argv)
    code = args.handler(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
