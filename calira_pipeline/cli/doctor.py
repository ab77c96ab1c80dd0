"""`calira-pipeline doctor`: check the configuration against the real API and say what to fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from calira_pipeline.api import CaliraClient, CaliraError, MissingScopeError
from calira_pipeline.api.endpoints import ENDPOINTS, Endpoint
from calira_pipeline.api.settings import display_url
from calira_pipeline.config import API_VARIABLES, calira_environment, data_dir_setting
from calira_pipeline.storage import DEFAULT_DATA_DIR
from calira_pipeline.wiring.sandbox_source import resource_from_env

SECRET_VARIABLES = {
    "CALIRA_CLIENT_SECRET",
    "CALIRA_REFRESH_TOKEN",
    "CALIRA_ACCESS_TOKEN",
}


@dataclass(frozen=True)
class Finding:
    ok: bool
    check: str
    detail: str

    def line(self) -> str:
        return f"[{'ok' if self.ok else 'FIX'}] {self.check}: {self.detail}"


def _variables(environ: Mapping[str, str]) -> Finding:
    shown = []
    for var in sorted({*API_VARIABLES.values(), "CALIRA_CONCURRENCY", "CALIRA_PII"}):
        if environ.get(var):
            value = environ[var]
            if var.endswith("_URL"):
                value = display_url(value)  # never a password from user:password@host
            shown.append(f"{var}={'(set)' if var in SECRET_VARIABLES else value}")
    return Finding(True, "variables", ", ".join(shown) or "none set (the sandbox will be used)")


def _data_dir(environ: Mapping[str, str]) -> Finding:
    path = Path(data_dir_setting(environ) or DEFAULT_DATA_DIR).resolve()
    probe = path / ".doctor-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Finding(
            False,
            "data directory",
            f"{path} is not writable ({exc.strerror}); set CALIRA_DATA_DIR to a writable directory",
        )
    return Finding(True, "data directory", f"{path} is writable")


def _probe(name: str, scope: str, call: Callable[[], str]) -> Finding:
    try:
        return Finding(True, f"scope {scope}", call())
    except MissingScopeError as exc:
        return Finding(False, f"scope {scope}", str(exc))
    except CaliraError as exc:
        return Finding(False, f"{name} ({scope})", str(exc))


def _reader(client: CaliraClient, endpoint: Endpoint, first_lab: list[int]) -> Callable[[], str]:
    """A cheap read of one endpoint: the newest page of an incremental list, else one lab's."""
    if endpoint.incremental:
        return lambda: (
            f"{endpoint.name} readable, "
            f"{client.fetch_bookings_incremental(lambda _: True, 0).api_total} in all"
        )
    ids = first_lab if endpoint.fan_out in ("lab", "account") else None
    where = " in one lab" if ids else ""
    own_table = endpoint.tables[0]

    def read() -> str:
        return f"{len(client.fetch(endpoint.name, ids).rows[own_table])} {endpoint.kind}(s){where}"

    return read


def _api_findings(client: CaliraClient) -> list[Finding]:
    findings: list[Finding] = []
    try:
        accounts = client.fetch("accounts").rows["accounts"]
    except MissingScopeError as exc:
        return [Finding(False, "scope read_accounts", str(exc))]
    except CaliraError as exc:
        return [Finding(False, "token and API hosts", str(exc))]
    labs = [a for a in accounts if (a.get("account_type") or "").lower() == "lab"]
    findings.append(Finding(True, "token and API hosts", "reached; a token was issued"))
    findings.append(
        Finding(
            bool(labs),
            "labs visible",
            ", ".join(
                f"{a['name']} ({a['id']}, {a.get('timezone') or 'no time zone!'})"
                for a in labs[:20]
            )
            + (" …" if len(labs) > 20 else "")
            if labs
            else "none: authorise the app for your labs in Calira (labs added later need "
            "re-authorisation)",
        )
    )
    findings.append(Finding(True, "scope read_accounts", f"{len(accounts)} accounts"))
    first = [labs[0]["id"]] if labs else []
    for endpoint in ENDPOINTS.values():
        if endpoint.name != "accounts":  # read above: it names the labs the others are read in
            findings.append(_probe(endpoint.name, endpoint.scope, _reader(client, endpoint, first)))
    return findings


def run_doctor(environ: Mapping[str, str] | None = None) -> tuple[bool, list[Finding]]:
    environ = calira_environment(environ)
    findings = [_variables(environ), _data_dir(environ)]
    resource = resource_from_env(environ)
    if not resource.base_url:
        findings.append(
            Finding(
                True,
                "API",
                "CALIRA_BASE_URL is unset, so runs use the built-in "
                "sandbox; set it (and credentials) to read your real data",
            )
        )
    try:
        client = resource.client()
    except CaliraError as exc:
        findings.append(Finding(False, "credentials", str(exc)))
        return False, findings
    host = urlsplit(resource.settings().base_url).netloc
    findings.append(Finding(True, "auth", f"{client.auth_mode} against {host}"))
    findings.extend(_api_findings(client))
    return all(f.ok for f in findings), findings
